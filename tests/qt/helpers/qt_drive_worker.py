"""An offscreen Qt app running ``QtDriveWatcher``; prints each signal it receives as JSON.

Started by ``sd_card_driver.py`` inside a umockdev test bed. Prints ``{"ready": ...}`` once
watching, then one line per signal with the receiving thread (``gui_thread`` is true when the
slot ran on the thread that owns the ``QApplication``), and on SIGINT stops the watcher, prints
``{"stopped": ...}`` and quits.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
from typing import Any

os.environ["QT_QPA_PLATFORM"] = "offscreen"

import psutil
from PySide6.QtCore import QThread, QTimer
from PySide6.QtWidgets import QApplication

from telemetry.drives import Drive
from telemetry.qt import QtDriveWatcher

psutil.PROCFS_PATH = os.environ.get("DRIVES_TEST_PROCFS", "/proc")


def emit(obj: object) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def main() -> int:
    app = QApplication(sys.argv[:1])
    gui_thread = app.thread()
    watcher = QtDriveWatcher(rescan_interval=30.0)
    stop_requested = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop_requested.set())

    def describe(name: str, drive: Drive) -> dict[str, Any]:
        return {
            "signal": name,
            "device": drive.device,
            "drive_type": drive.drive_type,
            "is_card": drive.is_card,
            "is_flash_target": drive.is_flash_target,
            "size": drive.size,
            "gui_thread": QThread.currentThread() == gui_thread,
            "python_thread": threading.current_thread().name,
        }

    watcher.driveAdded.connect(lambda d: emit(describe("driveAdded", d)))
    watcher.driveRemoved.connect(lambda d: emit(describe("driveRemoved", d)))
    watcher.drivesChanged.connect(
        lambda drives: emit(
            {
                "signal": "drivesChanged",
                "devices": [d.device for d in drives],
                "gui_thread": QThread.currentThread() == gui_thread,
            }
        )
    )

    def check_stop() -> None:
        if stop_requested.is_set():
            stopped = watcher.stop(timeout=10.0)  # returns as soon as the thread ended
            emit(
                {
                    "stopped": stopped,
                    "threads": [t.name for t in threading.enumerate()],
                }
            )
            app.quit()

    ticker = QTimer()
    ticker.setInterval(50)  # lets Python run its SIGINT handler while Qt's loop waits
    ticker.timeout.connect(check_stop)
    ticker.start()
    watcher.start()
    emit(
        {
            "ready": True,
            "has_event_source": watcher.has_event_source,
            "initial": [d.device for d in watcher.drives()],
        }
    )
    return app.exec()


if __name__ == "__main__":
    sys.exit(main())
