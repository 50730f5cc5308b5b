"""The Sent tab over a large sent log: one more batch updates it in place (only the new rows
added, those of batches beyond the last 100 removed) and sorting is done on the model's
rows, with real widgets, a real client and its real store."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import Qt
from pytestqt.qtbot import QtBot

import telemetry
from telemetry._inspection import SENT, sent_rows
from telemetry.qt import EventInspector
from telemetry.testing import RecordingDestination

BATCH = 500


@pytest.fixture
def sending_client(tmp_path: Path) -> Iterator[telemetry.Client]:
    client = telemetry.create_client(
        "test-project",
        "test-app",
        "1.2.3",
        "http://127.0.0.1:9",
        data_dir=tmp_path / "client",
        destination=RecordingDestination(),
        upload_policy=telemetry.UploadPolicy(max_requests_per_minute=100_000),
    )
    client.mark_notice_answered()
    try:
        yield client
    finally:
        client.close()


def _send_batch(client: Any, number: int) -> None:
    for i in range(BATCH):
        client.track("Flash" if i % 3 else "Select drive", {"i": i, "batch": number})
    assert client.flush(30)


def _newest_first(rows: list[Any]) -> list[Any]:
    return sorted(rows, key=lambda r: r.time or 0, reverse=True)  # stable, as the view's sort


def test_one_more_batch_updates_the_sent_tab_in_place(
    qtbot: QtBot, sending_client: telemetry.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = sending_client
    for number in range(20):
        _send_batch(client, number)
    inspector = EventInspector(client, refresh_interval=0)
    qtbot.addWidget(inspector)
    inspector.show()
    qtbot.waitExposed(inspector)
    inspector.set_current_kind(SENT)
    model, view = inspector.models[SENT], inspector.views[SENT]
    assert inspector.shown_rows() == _newest_first(sent_rows(client))
    inspector.select_row(3)
    selected = inspector.selected_row()
    kept_before = {id(r) for r in model.rows}

    resets: list[bool] = []
    model.modelReset.connect(lambda: resets.append(True))
    _send_batch(client, 20)
    inspector.poll()
    # the rows equal a fresh full read, newest first; no reset, the old rows are the same
    # objects (not read again) and the selection stays on its event
    fresh = sent_rows(client)
    assert inspector.shown_rows() == _newest_first(fresh)
    assert model.read_rows == fresh
    assert not resets
    assert sum(id(r) in kept_before for r in model.rows) == len(fresh) - BATCH
    assert inspector.selected_row() == selected
    assert inspector.json_view.toPlainText() == selected.json  # type: ignore[union-attr]

    # with 100 batches kept, one more drops the oldest batch's rows
    for number in range(21, 101):
        _send_batch(client, number)
    inspector.reload()
    oldest = model.read_rows[-1].detail  # the oldest batch kept
    _send_batch(client, 101)
    inspector.poll()
    assert model.read_rows == sent_rows(client)
    assert len({r.detail for r in model.read_rows}) == 100
    assert oldest not in {r.detail for r in model.read_rows}

    # header clicks sort by that column, both ways; the type filter still applies
    header = view.horizontalHeader()
    for column, key in ((1, lambda r: r.event_type), (3, lambda r: r.size)):
        rect = header.sectionViewportPosition(column) + header.sectionSize(column) // 2
        qtbot.mouseClick(header.viewport(), Qt.MouseButton.LeftButton, pos=_point(rect, header))
        order = header.sortIndicatorOrder()
        expected = sorted(model.read_rows, key=key, reverse=order == Qt.SortOrder.DescendingOrder)
        assert inspector.shown_rows() == expected
        qtbot.mouseClick(header.viewport(), Qt.MouseButton.LeftButton, pos=_point(rect, header))
        assert header.sortIndicatorOrder() != order
        assert inspector.shown_rows() == sorted(
            model.read_rows, key=key, reverse=order != Qt.SortOrder.DescendingOrder
        )
    inspector.type_combo.setCurrentIndex(inspector.type_combo.findText("Select drive"))
    shown = inspector.shown_rows()
    assert shown and {r.event_type for r in shown} == {"Select drive"}
    assert shown == [r for r in model.rows if r.event_type == "Select drive"]


def _point(x: int, header: Any) -> Any:
    from PySide6.QtCore import QPoint

    return QPoint(x, header.height() // 2)
