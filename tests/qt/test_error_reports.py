"""An exception raised inside a Qt slot is captured as an error report, and the app keeps
running (real widgets offscreen; PySide6 hands a slot's exception to ``sys.excepthook``)."""

from __future__ import annotations

from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QPushButton

import telemetry
from telemetry.testing import RecordingDestination


def failing_slot() -> None:
    raise KeyError("no such drive")


@pytest.mark.qt_no_exception_capture  # let the exception reach sys.excepthook, as in an app
def test_an_exception_in_a_qt_slot_is_reported_and_the_app_keeps_running(
    qtbot, data_dir: Path, capsys: pytest.CaptureFixture[str]
):
    destination = RecordingDestination()
    with telemetry.create_client(
        "qt-reports",
        "qt-app",
        "1.0",
        "http://127.0.0.1:9",
        data_dir=data_dir,
        destination=destination,
    ) as client:
        client.mark_notice_answered()
        client.capture_errors(native_crashes=False)
        clicks: list[int] = []
        button = QPushButton("Flash")
        qtbot.addWidget(button)
        button.clicked.connect(failing_slot)
        button.clicked.connect(lambda: clicks.append(1))
        button.show()
        qtbot.mouseClick(button, Qt.MouseButton.LeftButton)
        qtbot.mouseClick(button, Qt.MouseButton.LeftButton)  # still alive, still answering
        assert clicks == [1, 1]
        assert button.isVisible()
        assert client.flush(10)
    # One group, counted twice (one report, or two if the first left between the clicks).
    reports = destination.reports
    assert len({r["fingerprint"][0] for r in reports}) == 1
    assert sum(r["contexts"]["telemetry"]["count"] for r in reports) == 2
    [value] = reports[0]["exception"]["values"]
    assert value["type"] == "KeyError"
    assert value["stacktrace"]["frames"][-1]["function"] == "failing_slot"
    assert "no such drive" in capsys.readouterr().err  # Python's own hook still printed it
