"""``QtDriveWatcher`` in a real offscreen Qt app, fed by umockdev's recorded SD card.

``helpers/sd_card_driver.py`` (Debian's python3 with the UMockdev typelib, inside
``umockdev-run``) builds a test bed holding the Realtek PCIe SD slot of
``tests/drives/fixtures/sd-internal-partitioned.umockdev`` with no card, starts
``helpers/qt_drive_worker.py`` (this project's interpreter, an offscreen ``QApplication``
running ``QtDriveWatcher``) in it, inserts the recorded SanDisk card with real uevents, then
pulls it out. The worker reports which thread received each signal.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
from pytestqt.qtbot import QtBot

from telemetry.drives import list_drives
from telemetry.qt import QtDriveWatcher
from tests.drives import _umockdev as um

HELPERS = Path(__file__).resolve().parent / "helpers"


@pytest.fixture(scope="module")
def hotplug() -> dict[str, Any]:
    return um.run_hotplug_driver(HELPERS / "sd_card_driver.py")


def test_watcher_starts_with_an_empty_slot(hotplug: dict[str, Any]) -> None:
    assert hotplug["ready"] == {"ready": True, "has_event_source": True, "initial": []}


def test_inserting_the_sd_card_emits_drive_added_on_the_gui_thread(
    hotplug: dict[str, Any],
) -> None:
    added = hotplug["added"]
    assert added is not None, hotplug["stderr"]
    assert added["device"] == "/dev/mmcblk0"
    assert added["drive_type"] == "sd-internal"
    assert added["is_card"] is True
    assert added["is_flash_target"] is True
    assert added["size"] == 31116288 * 512
    assert added["gui_thread"] is True
    assert added["python_thread"] == "MainThread"
    assert hotplug["list_after_add"]["devices"] == ["/dev/mmcblk0"]
    assert hotplug["list_after_add"]["gui_thread"] is True


def test_pulling_the_card_out_emits_drive_removed_on_the_gui_thread(
    hotplug: dict[str, Any],
) -> None:
    removed = hotplug["removed"]
    assert removed is not None, hotplug["stderr"]
    assert removed["device"] == "/dev/mmcblk0"
    assert removed["gui_thread"] is True
    assert hotplug["list_after_remove"] == {
        "signal": "drivesChanged",
        "devices": [],
        "gui_thread": True,
    }


def test_watcher_stops_its_thread(hotplug: dict[str, Any]) -> None:
    stopped = hotplug["stopped"]
    assert stopped["stopped"] is True
    assert not [t for t in stopped["threads"] if t.startswith("telemetry-drives")]
    assert hotplug["returncode"] == 0


def test_in_process_watcher_lists_this_machine_and_stops(qtbot: QtBot) -> None:
    """On the real machine (no test bed): the first snapshot matches list_drives()."""
    watcher = QtDriveWatcher(rescan_interval=5.0)
    watcher.start()
    try:
        assert watcher.running
        expected = sorted(d.device for d in list_drives())
        assert sorted(d.device for d in watcher.drives()) == expected
    finally:
        assert watcher.stop(timeout=10.0)
    assert not [t for t in threading.enumerate() if t.name == "telemetry-drives-monitor"]
