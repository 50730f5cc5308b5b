"""``EventInspector`` driven as a user would, over a real client and its real SQLite store."""

from __future__ import annotations

import gzip
import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QFileDialog, QMessageBox
from pytestqt.qtbot import QtBot

import telemetry
from telemetry.qt import EventInspector
from tests.collector_process import start_in_thread
from tests.qt.conftest import (
    assert_readable,
    focusable_controls,
    render,
    start_uploads,
    user_events,
)


def _inspector(qtbot: QtBot, client: Any, **kwargs: Any) -> EventInspector:
    inspector = EventInspector(client, **kwargs)
    qtbot.addWidget(inspector)
    inspector.resize(900, 600)
    inspector.show()
    qtbot.waitExposed(inspector)
    return inspector


def _click_row(qtbot: QtBot, inspector: EventInspector, row: int) -> None:
    view = inspector.views[inspector.current_kind()]
    rect = view.visualRect(view.model().index(row, 1))
    qtbot.mouseClick(view.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())


def _track_some(client: telemetry.Client) -> None:
    client.track("Flash", {"driveCount": 1, "note": "needle-one"})
    client.track("Select drive", {"driveType": "usb-flash"})
    client.track("Flash", {"driveCount": 2})


def test_queued_tab_shows_each_event_exactly_as_stored(
    qtbot: QtBot, client: telemetry.Client
) -> None:
    _track_some(client)
    stored = {e.insert_id: e.json for e in client.queued_events()}
    inspector = _inspector(qtbot, client, refresh_interval=0)
    assert inspector.current_kind() == "queued"
    shown = inspector.shown_rows()
    assert {r.detail: r.json for r in shown} == stored
    # newest first; clicking a row shows its exact JSON
    _click_row(qtbot, inspector, 0)
    selected = inspector.selected_row()
    assert selected is not None
    assert selected.json == stored[selected.detail]
    assert inspector.json_view.toPlainText() == stored[selected.detail]
    # pretty-printing only re-indents
    qtbot.mouseClick(inspector.pretty_check, Qt.MouseButton.LeftButton)
    assert json.loads(inspector.json_view.toPlainText()) == json.loads(selected.json)
    assert inspector.json_view.toPlainText().count("\n") > 3


def test_type_filter_and_search_narrow_the_rows(qtbot: QtBot, client: telemetry.Client) -> None:
    _track_some(client)
    inspector = _inspector(qtbot, client, refresh_interval=0)
    types = [inspector.type_combo.itemText(i) for i in range(inspector.type_combo.count())]
    assert types[1:] == sorted({"Flash", "Select drive", "$identify"} & set(types[1:]))
    assert "Flash" in types and "Select drive" in types
    # choose "Flash" with the keyboard: focus the combo, then select by typing
    inspector.type_combo.setFocus()
    inspector.type_combo.setCurrentIndex(inspector.type_combo.findText("Flash"))
    assert {r.event_type for r in inspector.shown_rows()} == {"Flash"}
    assert len(inspector.shown_rows()) == 2
    qtbot.keyClicks(inspector.search_edit, "NEEDLE-ONE")  # case-insensitive
    rows = inspector.shown_rows()
    assert len(rows) == 1 and '"needle-one"' in rows[0].json
    inspector.search_edit.clear()
    inspector.type_combo.setCurrentIndex(0)
    assert len(inspector.shown_rows()) == len(list(client.queued_events()))


@pytest.fixture
def uploading_client(tmp_path: Path) -> Iterator[tuple[telemetry.Client, Path]]:
    database = tmp_path / "collector.db"
    url, stop = start_in_thread(database)
    client = telemetry.create_client(
        "test-project", "test-app", "1.2.3", endpoint=url, data_dir=tmp_path / "client"
    )
    start_uploads(client)
    try:
        yield client, tmp_path / "client" / "telemetry.db"
    finally:
        client.close()
        stop()


def test_sent_tab_shows_the_json_that_went_out(
    qtbot: QtBot, uploading_client: tuple[telemetry.Client, Path]
) -> None:
    client, db_path = uploading_client
    _track_some(client)
    assert client.flush(timeout=15)
    assert not user_events(client)
    inspector = _inspector(qtbot, client, refresh_interval=0)
    # Nothing queued of the user's: the window opens where there is something to see.
    assert inspector.current_kind() == "sent"
    rows = inspector.shown_rows()
    assert {r.event_type for r in rows} >= {"Flash", "Select drive"}
    # the exact bytes kept in the sent ring buffer contain each shown event verbatim
    with sqlite3.connect(db_path) as conn:
        bodies = [
            gzip.decompress(b).decode() for (b,) in conn.execute("SELECT body FROM sent_batches")
        ]
    for row in rows:
        assert any(row.json in body for body in bodies), row.json
        assert "HTTP 200" in row.detail
    _click_row(qtbot, inspector, 0)
    assert inspector.json_view.toPlainText() == inspector.selected_row().json  # type: ignore[union-attr]
    assert inspector.json_caption.text() == "Exact JSON as sent"


def test_dropped_tab_shows_the_reason(qtbot: QtBot, data_dir: Path) -> None:
    client = telemetry.create_client(
        "test-project", "test-app", "1.2.3", data_dir=data_dir, upload=False, max_events=3
    )
    try:
        for i in range(6):
            client.track("Flash", {"n": i})
        # The client's housekeeping enforces the cap (oldest dropped first) within a second.
        qtbot.waitUntil(lambda: client.queue_stats().events <= 3, timeout=15_000)
        dropped = client.dropped_events()
        assert dropped
        inspector = _inspector(qtbot, client, refresh_interval=0)
        inspector.set_current_kind("dropped")
        rows = inspector.shown_rows()
        assert len(rows) == len(dropped)
        assert {r.json for r in rows} == {d["payload"] for d in dropped}
        assert {r.detail for r in rows} == {d["reason"] for d in dropped}
    finally:
        client.close()


def test_export_writes_the_filtered_events_as_json_lines(
    qtbot: QtBot, client: telemetry.Client, tmp_path: Path
) -> None:
    _track_some(client)
    inspector = _inspector(qtbot, client, refresh_interval=0)
    out = tmp_path / "all.jsonl"
    assert inspector.export_jsonl(out) == len(list(client.queued_events()))
    lines = out.read_text(encoding="utf-8").splitlines()
    assert lines == [e.json for e in client.queued_events()]
    inspector.type_combo.setCurrentIndex(inspector.type_combo.findText("Select drive"))
    flt = tmp_path / "select.jsonl"
    assert inspector.export_jsonl(flt) == 1
    assert json.loads(flt.read_text(encoding="utf-8"))["event_type"] == "Select drive"


def test_export_button_asks_for_a_file_and_writes_it(
    qtbot: QtBot, client: telemetry.Client, tmp_path: Path
) -> None:
    _track_some(client)
    inspector = _inspector(qtbot, client, refresh_interval=0)
    qtbot.mouseClick(inspector.export_button, Qt.MouseButton.LeftButton)
    dialog = inspector.findChild(QFileDialog, "telemetryExportDialog")
    assert dialog is not None and dialog.isVisible()
    target = tmp_path / "chosen.jsonl"
    dialog.selectFile(str(target))
    dialog.accept()
    qtbot.waitUntil(target.exists, timeout=5000)
    assert target.read_text(encoding="utf-8").splitlines() == [
        e.json for e in client.queued_events()
    ]
    assert "exported" in inspector.summary_label.text()


def _answer_purge(
    qtbot: QtBot,
    inspector: EventInspector,
    client: telemetry.Client,
    button: QMessageBox.StandardButton,
) -> None:
    qtbot.mouseClick(inspector.purge_button, Qt.MouseButton.LeftButton)
    box = inspector.findChild(QMessageBox, "telemetryPurgeConfirmation")
    assert box is not None and box.isVisible()
    assert str(len(list(client.queued_events()))) in box.text()
    qtbot.mouseClick(box.button(button), Qt.MouseButton.LeftButton)
    qtbot.waitUntil(
        lambda: (
            inspector.findChild(QMessageBox, "telemetryPurgeConfirmation") is None
            or not box.isVisible()
        ),
        timeout=5000,
    )


def test_purge_asks_first_and_cancel_keeps_everything(
    qtbot: QtBot, client: telemetry.Client
) -> None:
    _track_some(client)
    before = len(list(client.queued_events()))
    inspector = _inspector(qtbot, client, refresh_interval=0)
    _answer_purge(qtbot, inspector, client, QMessageBox.StandardButton.Cancel)
    assert len(list(client.queued_events())) == before
    assert len(inspector.shown_rows()) == before


def test_purge_confirmed_empties_the_real_queue(qtbot: QtBot, client: telemetry.Client) -> None:
    _track_some(client)
    before = len(list(client.queued_events()))
    inspector = _inspector(qtbot, client, refresh_interval=0)
    with qtbot.waitSignal(inspector.purged, timeout=5000) as signal:
        _answer_purge(qtbot, inspector, client, QMessageBox.StandardButton.Yes)
    assert signal.args == [before]
    assert list(client.queued_events()) == []
    assert client.queue_stats().events == 0
    assert inspector.shown_rows() == []
    assert not inspector.purge_button.isEnabled()


def test_live_refresh_shows_new_events_without_a_click(
    qtbot: QtBot, client: telemetry.Client
) -> None:
    inspector = _inspector(qtbot, client, refresh_interval=0.1)
    assert inspector.live
    before = len(inspector.shown_rows())
    client.track("Flash", {"driveCount": 7})
    qtbot.waitUntil(lambda: len(inspector.shown_rows()) == before + 1, timeout=15_000)
    assert any('"driveCount":7' in r.json for r in inspector.shown_rows())
    # turning live refresh off stops the polling
    qtbot.mouseClick(inspector.live_check, Qt.MouseButton.LeftButton)
    assert not inspector.live


def test_a_large_queue_is_read_one_page_at_a_time(qtbot: QtBot, client: telemetry.Client) -> None:
    for i in range(45):
        client.track("Flash", {"n": i})
    total = len(list(client.queued_events()))
    inspector = _inspector(qtbot, client, refresh_interval=0, page_size=20)
    assert len(inspector.shown_rows()) == 20
    assert inspector.more_button.isEnabled()
    assert f"{total} queued" in inspector.summary_label.text()
    qtbot.mouseClick(inspector.more_button, Qt.MouseButton.LeftButton)
    assert len(inspector.shown_rows()) == 40
    qtbot.mouseClick(inspector.more_button, Qt.MouseButton.LeftButton)
    assert len(inspector.shown_rows()) == total
    assert not inspector.more_button.isEnabled()
    # the export still covers the whole queue, not only the pages read
    assert {r.detail for r in inspector.shown_rows()} == {
        e.insert_id for e in client.queued_events()
    }


def test_every_control_has_an_accessible_name_and_tab_order_follows_the_layout(
    qtbot: QtBot, client: telemetry.Client
) -> None:
    _track_some(client)
    inspector = _inspector(qtbot, client, refresh_interval=0)
    for widget in focusable_controls(inspector):
        assert widget.accessibleName(), widget
    inspector.activateWindow()
    qtbot.waitUntil(inspector.isActiveWindow, timeout=10_000)
    inspector.type_combo.setFocus()
    chain = [inspector.focusWidget()]
    for _ in range(4):
        qtbot.keyClick(inspector.focusWidget(), Qt.Key.Key_Tab)
        chain.append(inspector.focusWidget())
    assert chain[:3] == [inspector.type_combo, inspector.search_edit, inspector.tabs.tabBar()]


@pytest.mark.parametrize("size", [(900, 600)])
def test_renders_readably_in_light_and_dark(
    qtbot: QtBot, client: telemetry.Client, tmp_path: Path, palette_name: str, size: tuple[int, int]
) -> None:
    _track_some(client)
    inspector = _inspector(qtbot, client, refresh_interval=0)
    _click_row(qtbot, inspector, 0)
    image = render(inspector, tmp_path / f"inspector-{palette_name}.png", *size)
    assert (image.width(), image.height()) == size
    assert_readable(image, palette_name)


def test_polling_pauses_while_the_window_is_hidden(qtbot: QtBot, client: telemetry.Client) -> None:
    inspector = _inspector(qtbot, client, refresh_interval=0.1)
    assert inspector.live
    inspector.hide()
    assert not inspector.live
    client.track("Flash", {"driveCount": 9})
    inspector.show()
    qtbot.waitExposed(inspector)
    assert inspector.live
    assert any('"driveCount":9' in r.json for r in inspector.shown_rows())  # caught up on show


def test_export_failure_is_reported_not_raised(
    qtbot: QtBot, client: telemetry.Client, tmp_path: Path
) -> None:
    _track_some(client)
    inspector = _inspector(qtbot, client, refresh_interval=0)
    missing_dir = tmp_path / "no-such-dir" / "out.jsonl"
    inspector._export_selected(str(missing_dir))
    box = inspector.findChild(QMessageBox, "telemetryExportError")
    assert box is not None and "Could not write" in box.text()
    box.close()
    assert not missing_dir.exists()


def test_environment_veto_shows_an_empty_inspector_and_writes_nothing(
    qtbot: QtBot, monkeypatch: pytest.MonkeyPatch, data_dir: Path
) -> None:
    monkeypatch.setenv("DO_NOT_TRACK", "1")
    client = telemetry.create_client("test-project", "test-app", "1.2.3", data_dir=data_dir)
    try:
        client.track("Flash", {"driveCount": 1})
        inspector = _inspector(qtbot, client, refresh_interval=0.1)
        for kind in ("queued", "sent", "dropped"):
            assert inspector.shown_rows(kind) == []
        assert inspector.summary_label.text().startswith("0 queued")
    finally:
        client.close()
    assert not (data_dir / "telemetry.db").exists()


def test_live_refresh_with_a_full_page_only_updates_the_count(
    qtbot: QtBot, client: telemetry.Client
) -> None:
    for i in range(10):
        client.track("Flash", {"n": i})
    inspector = _inspector(qtbot, client, refresh_interval=0.1, page_size=5)
    first_page = {r.key for r in inspector.shown_rows()}
    total = client.queue_stats().events
    client.track("Flash", {"n": 99})
    qtbot.waitUntil(lambda: f"{total + 1} queued" in inspector.summary_label.text(), timeout=15_000)
    assert {r.key for r in inspector.shown_rows()} == first_page  # the oldest five, unchanged
    qtbot.mouseClick(inspector.more_button, Qt.MouseButton.LeftButton)
    assert len(inspector.shown_rows()) == 10


def test_opens_on_a_tab_with_rows_and_the_newest_event_selected(
    qtbot: QtBot, uploading_client: tuple[telemetry.Client, Path]
) -> None:
    client, _db = uploading_client
    _track_some(client)
    assert client.flush(timeout=15)
    client.purge()  # nothing queued at all: Queued is empty, Sent is not
    inspector = _inspector(qtbot, client, refresh_interval=0)
    assert inspector.shown_rows("queued") == []
    assert inspector.current_kind() == "sent"
    selected = inspector.selected_row()
    assert selected is not None and selected == inspector.shown_rows()[0]
    assert inspector.json_view.toPlainText() == selected.json
    # The user's own choice of tab is kept while it has rows.
    inspector.hide()
    client.track("Flash", {"driveCount": 3})
    inspector.show()
    qtbot.waitExposed(inspector)
    assert inspector.current_kind() == "sent"


def test_with_events_queued_it_opens_on_queued(qtbot: QtBot, client: telemetry.Client) -> None:
    _track_some(client)
    inspector = _inspector(qtbot, client, refresh_interval=0)
    assert inspector.current_kind() == "queued"
    assert inspector.selected_row() == inspector.shown_rows()[0]


def test_escape_closes_the_inspector_window(qtbot: QtBot, client: telemetry.Client) -> None:
    _track_some(client)
    inspector = _inspector(qtbot, client, refresh_interval=0)
    view = inspector.views[inspector.current_kind()]
    view.setFocus()
    qtbot.keyClick(view, Qt.Key.Key_Escape)
    assert not inspector.isVisible()
    inspector.show()  # Esc in the search box closes it too
    qtbot.waitExposed(inspector)
    qtbot.keyClicks(inspector.search_edit, "Flash")
    qtbot.keyClick(inspector.search_edit, Qt.Key.Key_Escape)
    assert not inspector.isVisible()


def test_hostile_event_names_show_literally_in_tooltips(
    qtbot: QtBot, client: telemetry.Client
) -> None:
    """Found by an outside audit: tooltips guessed rich text, so an event named ``<b>x</b>``
    showed in bold and ``<img src=x ...>`` as a broken image, hiding the real name."""
    from PySide6.QtGui import QTextDocument

    names = ["<img src=x onerror=alert(1)>", "<b>BOLD</b> event", "a &amp; b"]
    for name in names:
        client.track(name)
    inspector = _inspector(qtbot, client, refresh_interval=0)
    view = inspector.views[inspector.current_kind()]
    model = view.model()
    seen = set()
    for row in range(model.rowCount()):
        index = model.index(row, 1)
        document = QTextDocument()
        document.setHtml(model.data(index, Qt.ItemDataRole.ToolTipRole))
        assert document.toPlainText() == model.data(index, Qt.ItemDataRole.DisplayRole)
        seen.add(document.toPlainText())
    assert set(names) <= seen
