"""The inspector's Reports tab, driven as a user would, over a real client, its real SQLite store
and a :class:`~telemetry.testing.RecordingDestination`: each error report waiting or sent is
one row, and the JSON pane shows exactly what is or was sent."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import Qt
from pytestqt.qtbot import QtBot

import telemetry
from telemetry._inspection import ReportRow
from telemetry.qt import EventInspector
from telemetry.testing import RecordingDestination
from tests.qt.conftest import assert_readable, render


class DriveGone(Exception):
    """The error the tests report."""


#: The exception type as reports name it (with its module).
DRIVE_GONE = f"{__name__}.DriveGone"


def fail(message: str) -> None:
    raise DriveGone(message)


def capture(client: telemetry.Client, message: str = "the drive went away") -> None:
    try:
        fail(message)
    except DriveGone as exc:
        fingerprint = client.capture_exception(exc)
    assert fingerprint is not None


@pytest.fixture
def recorded(data_dir: Path) -> Iterator[tuple[telemetry.Client, RecordingDestination]]:
    """A client that delivers to a RecordingDestination once the notice is answered."""
    destination = RecordingDestination()
    client = telemetry.create_client(
        "reports-ui", "reports-app", "3.1", "http://127.0.0.1:9",
        data_dir=data_dir, destination=destination,
    )  # fmt: skip
    try:
        yield client, destination
    finally:
        client.close()


def _inspector(qtbot: QtBot, client: Any, **kwargs: Any) -> EventInspector:
    inspector = EventInspector(client, **kwargs)
    qtbot.addWidget(inspector)
    inspector.resize(1000, 600)
    inspector.show()
    qtbot.waitExposed(inspector)
    return inspector


def _open_reports_tab(qtbot: QtBot, inspector: EventInspector) -> None:
    """Click the Reports tab, as the user does."""
    bar = inspector.tabs.tabBar()
    index = next(i for i in range(bar.count()) if "Rep" in bar.tabText(i))
    qtbot.mouseClick(bar, Qt.MouseButton.LeftButton, pos=bar.tabRect(index).center())
    assert inspector.current_kind() == "reports"


def _click_row(qtbot: QtBot, inspector: EventInspector, row: int) -> None:
    view = inspector.views["reports"]
    rect = view.visualRect(view.model().index(row, 1))
    qtbot.mouseClick(view.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())


def _cells(inspector: EventInspector, row: int) -> list[str]:
    model = inspector.views["reports"].model()
    return [str(model.index(row, column).data()) for column in range(model.columnCount())]


def _reports(inspector: EventInspector) -> list[ReportRow]:
    rows = inspector.shown_rows("reports")
    assert all(isinstance(r, ReportRow) for r in rows)
    return [r for r in rows if isinstance(r, ReportRow)]


def test_a_captured_exception_is_one_row_with_its_count_and_the_json_that_will_be_sent(
    qtbot: QtBot, recorded: tuple[telemetry.Client, RecordingDestination]
) -> None:
    client, _destination = recorded
    for _ in range(3):
        capture(client)
    inspector = _inspector(qtbot, client, refresh_interval=0)
    _open_reports_tab(qtbot, inspector)
    assert len(_reports(inspector)) == 1
    level, error, count, first, last, status = _cells(inspector, 0)
    assert (level, error, count, status) == (
        "error",
        f"{DRIVE_GONE}: the drive went away",
        "3",
        "Queued",
    )
    assert first and last and first <= last
    _click_row(qtbot, inspector, 0)
    [waiting] = client.queued_reports()
    shown = inspector.json_view.toPlainText()
    assert json.loads(shown) == waiting
    assert json.loads(shown)["contexts"]["telemetry"]["count"] == 3
    assert inspector.json_caption.text() == "Exact JSON as it will be sent"
    assert "1 error reports waiting, 0 sent" in inspector.summary_label.text()
    # Error reports have no event type: the type filter is off on their tab only.
    assert not inspector.type_combo.isEnabled()
    inspector.set_current_kind("queued")
    assert inspector.type_combo.isEnabled()


def test_after_a_flush_the_report_shows_as_sent_with_the_json_the_destination_received(
    qtbot: QtBot, recorded: tuple[telemetry.Client, RecordingDestination]
) -> None:
    client, destination = recorded
    capture(client)
    capture(client)
    inspector = _inspector(qtbot, client, refresh_interval=0.1)
    _open_reports_tab(qtbot, inspector)
    assert [r.status for r in _reports(inspector)] == ["queued"]
    client.mark_notice_answered()  # the user clicked OK: uploads start
    assert client.flush(15)
    [received] = destination.reports
    # The live refresh turns the row from queued to sent, without a click.
    qtbot.waitUntil(lambda: [r.status for r in _reports(inspector)] == ["sent"], timeout=15_000)
    assert _cells(inspector, 0)[2] == "2"
    assert _cells(inspector, 0)[5] == "Sent · HTTP 200"
    _click_row(qtbot, inspector, 0)
    shown = inspector.json_view.toPlainText()
    assert json.loads(shown) == received
    # The very text sent: compact, UTF-8, in the order the client wrote it.
    assert shown == json.dumps(received, ensure_ascii=False, separators=(",", ":"))
    assert inspector.json_caption.text() == "Exact JSON as sent"
    assert "0 error reports waiting, 1 sent" in inspector.summary_label.text()


def test_a_waiting_and_a_sent_report_are_both_listed_and_search_narrows_them(
    qtbot: QtBot, recorded: tuple[telemetry.Client, RecordingDestination]
) -> None:
    client, destination = recorded
    client.mark_notice_answered()
    client.capture_message("first run finished", level="warning")
    assert client.flush(15)
    assert len(destination.reports) == 1
    destination.fail(times=1_000)  # the collector is unreachable from now on
    capture(client, "needle in the report")
    inspector = _inspector(qtbot, client, refresh_interval=0)
    _open_reports_tab(qtbot, inspector)
    rows = _reports(inspector)
    assert sorted((r.status, r.level, r.error) for r in rows) == [
        ("queued", "error", f"{DRIVE_GONE}: needle in the report"),
        ("sent", "warning", "first run finished"),
    ]
    qtbot.keyClicks(inspector.search_edit, "NEEDLE")  # case-insensitive
    assert [r.status for r in _reports(inspector)] == ["queued"]
    inspector.search_edit.clear()
    assert len(_reports(inspector)) == 2


def test_export_of_the_reports_tab_writes_each_report_as_sent(
    qtbot: QtBot, recorded: tuple[telemetry.Client, RecordingDestination], tmp_path: Path
) -> None:
    client, _destination = recorded
    capture(client)
    client.capture_message("low disk space")
    inspector = _inspector(qtbot, client, refresh_interval=0)
    _open_reports_tab(qtbot, inspector)
    out = tmp_path / "reports.jsonl"
    assert inspector.export_jsonl(out) == 2
    lines = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    key = lambda report: report["event_id"]  # noqa: E731
    assert sorted(lines, key=key) == sorted(client.queued_reports(), key=key)


def test_a_report_captured_while_the_window_is_open_appears_without_a_click(
    qtbot: QtBot, recorded: tuple[telemetry.Client, RecordingDestination]
) -> None:
    client, _destination = recorded
    inspector = _inspector(qtbot, client, refresh_interval=0.1)
    _open_reports_tab(qtbot, inspector)
    assert _reports(inspector) == []
    capture(client)
    qtbot.waitUntil(lambda: len(_reports(inspector)) == 1, timeout=15_000)
    capture(client)
    qtbot.waitUntil(lambda: _reports(inspector)[0].count == 2, timeout=15_000)


def test_opens_on_the_reports_tab_when_it_is_the_only_one_with_rows(
    qtbot: QtBot, recorded: tuple[telemetry.Client, RecordingDestination]
) -> None:
    client, _destination = recorded
    capture(client)
    client.purge()  # no event queued (not even $identify): only the report is left
    inspector = _inspector(qtbot, client, refresh_interval=0)
    assert inspector.current_kind() == "reports"
    assert json.loads(inspector.json_view.toPlainText()) == client.queued_reports()[0]


def test_the_reports_tab_renders_readably_in_light_and_dark(
    qtbot: QtBot,
    recorded: tuple[telemetry.Client, RecordingDestination],
    tmp_path: Path,
    palette_name: str,
) -> None:
    client, _destination = recorded
    capture(client)
    client.capture_message("low disk space", level="warning")
    inspector = _inspector(qtbot, client, refresh_interval=0)
    _open_reports_tab(qtbot, inspector)
    _click_row(qtbot, inspector, 0)
    image = render(inspector, tmp_path / f"inspector-reports-{palette_name}.png")
    assert_readable(image, palette_name)
