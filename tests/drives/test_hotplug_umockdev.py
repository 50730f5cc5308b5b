"""Hot-plug through umockdev's Testbed uevents reaching a real DriveMonitor.

``helpers/hotplug_driver.py`` runs under Debian's python3 (PyGObject + UMockdev typelib)
inside ``umockdev-run``; it plugs in a USB 2 stick and a multi-LUN card reader, inserts and
ejects a card, and unplugs both, while ``helpers/monitor_worker.py`` (this project's
interpreter, same test bed) runs ``DriveMonitor`` and reports each ``DriveEvent``.
"""

from __future__ import annotations

from typing import Any

import pytest

from . import _umockdev as um


@pytest.fixture(scope="module")
def hotplug() -> dict[str, Any]:
    return um.run_hotplug_driver(um.HELPERS / "hotplug_driver.py")


def _step(result: dict[str, Any], name: str) -> dict[str, Any]:
    step = next(s for s in result["steps"] if s["step"] == name)
    assert step["event"] is not None, (name, result["stderr"])
    return step


def test_worker_starts_on_an_empty_test_bed(hotplug: dict[str, Any]) -> None:
    assert hotplug["ready"] == {"ready": True, "has_event_source": True, "initial": []}


@pytest.mark.parametrize(
    ("step", "action", "device"),
    [
        ("add-stick", "attached", "/dev/sdb"),
        ("add-reader", "attached", "/dev/sdf"),
        ("insert-card", "changed", "/dev/sdf"),
        ("remove-stick", "removed", "/dev/sdb"),
        ("eject-card", "changed", "/dev/sdf"),
        ("remove-reader", "removed", "/dev/sdg"),
    ],
)
def test_each_uevent_reaches_the_monitor(
    hotplug: dict[str, Any], step: str, action: str, device: str
) -> None:
    """Each step's event arrives (the driver gives up after its WAIT); the latency is printed,
    not asserted: timing figures belong to bench/bench_drives.py."""
    s = _step(hotplug, step)
    print(f"{step}: {s['latency'] * 1000:.1f} ms")
    assert s["event"]["event"] == action
    assert s["event"]["drive"]["device"] == device
    assert s["event"]["thread"] == "telemetry-drives-monitor"


def test_attached_stick_is_a_flash_target(hotplug: dict[str, Any]) -> None:
    drive = _step(hotplug, "add-stick")["event"]["drive"]
    assert drive["drive_type"] == "usb-flash"
    assert drive["is_flash_target"] is True


def test_card_insert_and_eject_are_changes_of_the_slot(hotplug: dict[str, Any]) -> None:
    attached = _step(hotplug, "add-reader")["event"]["drive"]
    assert attached["has_media"] is False
    assert attached["is_flash_target"] is False
    inserted = _step(hotplug, "insert-card")["event"]
    assert inserted["previous"]["has_media"] is False
    assert inserted["drive"]["has_media"] is True
    assert inserted["drive"]["size"] == 31914983424
    assert inserted["drive"]["is_card"] is True
    assert inserted["drive"]["is_flash_target"] is True
    ejected = _step(hotplug, "eject-card")["event"]
    assert ejected["previous"]["has_media"] is True
    assert ejected["drive"]["has_media"] is False


def test_monitor_stops_cleanly(hotplug: dict[str, Any]) -> None:
    stopped = hotplug["stopped"]
    assert stopped["stopped"] is True  # the thread ended within the worker's stop() bound
    print(f"monitor stopped in {stopped['seconds'] * 1000:.1f} ms")
    assert not [t for t in stopped["threads"] if t.startswith("telemetry-drives")]
