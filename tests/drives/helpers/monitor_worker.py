"""Run a DriveMonitor inside a umockdev test bed and print its events as JSON lines.

Started by hotplug_driver.py with LD_PRELOAD and UMOCKDEV_DIR set. Prints ``{"ready": …}``
once the monitor runs, one ``DriveEvent.to_json()`` per event, and on SIGINT stops the
monitor and prints ``{"stopped": bool, "seconds": …, "threads": […]}``.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time

import psutil

from telemetry.drives import DriveEvent, DriveMonitor

psutil.PROCFS_PATH = os.environ.get("DRIVES_TEST_PROCFS", "/proc")

lock = threading.Lock()


def emit(obj: object) -> None:
    with lock:
        sys.stdout.write(json.dumps(obj) + "\n")
        sys.stdout.flush()


def on_event(event: DriveEvent) -> None:
    data = event.to_json()
    data["thread"] = threading.current_thread().name
    data["t"] = time.monotonic()
    emit(data)


done = threading.Event()
signal.signal(signal.SIGINT, lambda *_: done.set())

monitor = DriveMonitor(on_event, rescan_interval=30.0, debounce=0.2)
monitor.start()
emit(
    {
        "ready": True,
        "has_event_source": monitor.has_event_source,
        "initial": [d.device for d in monitor.drives],
    }
)
done.wait(120)
t0 = time.monotonic()
stopped = monitor.stop(timeout=10.0)  # returns once the thread ended
emit(
    {
        "stopped": stopped,
        "seconds": time.monotonic() - t0,
        "threads": [t.name for t in threading.enumerate()],
    }
)
