"""Drive a UMockdev.Testbed through hot-plug steps and time DriveMonitor's reactions.

Runs under Debian's system Python (python3-gi + gir1.2-umockdev-1.0) inside ``umockdev-run``
(so umockdev's preload is active here too: Testbed paths like /sys/devices/... resolve into
the test bed). It starts ``monitor_worker.py`` with the project's interpreter (argv[1]) in the
same test bed; the worker runs a real ``DriveMonitor`` (pyudev netlink monitor on a thread)
and prints every DriveEvent as a JSON line. For each step the driver emits uevents, waits for
the expected event and records the latency. The summary is one JSON object on stdout.

Usage: hotplug_driver.py PROJECT_PYTHON FIXTURE_DIR
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import gi

gi.require_version("UMockdev", "1.0")
from gi.repository import UMockdev  # noqa: E402

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))  # _umockdev_common.py sits next to this script
from _umockdev_common import Worker, blocks, parents_first, strip_comments  # noqa: E402

WAIT = 30.0  # seconds before a step counts as failed (latencies are printed, not asserted)

STICK_DISK = (
    "/sys/devices/pci0000:00/0000:00:14.0/usb1/1-1/1-1:1.0/host6/target6:0:0/6:0:0:0/block/sdb"
)
STICK_USB = "/sys/devices/pci0000:00/0000:00:14.0/usb1/1-1"
READER_IF = "/sys/devices/pci0000:00/0000:00:14.0/usb1/1-2/1-2:1.0"
READER_USB = "/sys/devices/pci0000:00/0000:00:14.0/usb1/1-2"
READER_SD = READER_IF + "/host8/target8:0:0/8:0:0:2/block/sdf"
CARD_SECTORS = 62333952


def kernel_order(text: str, testbed: Any, *, skip: tuple[str, ...] = ()) -> str:
    """Parents first (as the kernel announces them), devices already present left out."""

    def keep(path: str) -> bool:
        if any(path.startswith(s) for s in skip):
            return False
        return not os.path.exists(testbed.get_root_dir() + path)

    return parents_first(text, keep)


def main() -> int:
    python, fixture_dir = sys.argv[1], Path(sys.argv[2])
    stick = strip_comments((fixture_dir / "usb2-flash-stick.umockdev").read_text())
    reader = strip_comments((fixture_dir / "card-reader-multi-lun.umockdev").read_text())

    tb = UMockdev.Testbed.new()
    env = dict(os.environ)
    env["UMOCKDEV_DIR"] = tb.get_root_dir()
    worker = Worker(python, HERE / "monitor_worker.py", env, wait=WAIT)
    results: dict[str, Any] = {"steps": [], "stderr": worker.stderr}

    ready, _ = worker.wait_for(lambda m: "ready" in m)
    results["ready"] = ready
    if ready is None:
        results["error"] = "worker never became ready"
        print(json.dumps(results))
        return 1

    def step(name: str, action: Any, expect: Any) -> None:
        t0 = time.monotonic()
        action()
        msg, t1 = worker.wait_for(expect)
        results["steps"].append(
            {"step": name, "latency": None if msg is None else t1 - t0, "event": msg}
        )

    def is_event(action: str, device: str, **drive: Any) -> Any:
        """A DriveEvent of ``action`` on ``device`` whose drive has the ``drive`` values."""
        return lambda m: (
            m.get("event") == action
            and m["drive"]["device"] == device
            and all(m["drive"].get(k) == v for k, v in drive.items())
        )

    # 1. plug in the USB 2 stick (kernel order: usb device, interface, SCSI, disk, partition)
    step(
        "add-stick",
        lambda: tb.add_from_string(kernel_order(stick, tb)),
        is_event("attached", "/dev/sdb"),
    )
    # 2. plug in the card reader with its SD slot still empty (all four LUNs size 0)
    empty_reader = reader.replace(f"A: size={CARD_SECTORS}\\n", "A: size=0\\n")
    step(
        "add-reader",
        lambda: tb.add_from_string(kernel_order(empty_reader, tb, skip=(READER_SD + "/",))),
        is_event("attached", "/dev/sdf"),
    )

    # 3. insert a card into the SD slot: change on the LUN with the new size, then the
    #    partition appears (what the kernel does after DISK_MEDIA_CHANGE)
    def insert_card() -> None:
        tb.set_attribute(READER_SD, "size", str(CARD_SECTORS))
        tb.set_property(READER_SD, "DISK_MEDIA_CHANGE", "1")
        tb.uevent(READER_SD, "change")
        part = [b for p, b in blocks(reader) if p.startswith(READER_SD + "/")]
        tb.add_from_string("\n\n".join(part) + "\n")

    # A scan may fall between these uevents on a loaded machine: one "changed" event per
    # scan, so wait for the one with the card in (an earlier step's extra event is skipped).
    step("insert-card", insert_card, is_event("changed", "/dev/sdf", has_media=True))

    # 4. unplug the stick: remove uevents (partition, disk) first, then the sysfs tree goes
    def unplug_stick() -> None:
        tb.uevent(STICK_DISK + "/sdb1", "remove")
        tb.uevent(STICK_DISK, "remove")
        tb.remove_device(STICK_USB)

    step("remove-stick", unplug_stick, is_event("removed", "/dev/sdb"))

    # 5. pull the card out again: change with size 0 (the partition is removed first)
    def eject_card() -> None:
        tb.uevent(READER_SD + "/sdf1", "remove")
        tb.remove_device(READER_SD + "/sdf1")
        tb.set_attribute(READER_SD, "size", "0")
        tb.uevent(READER_SD, "change")

    # Likewise: the partition may go in one scan and the media in the next; and the
    # insert step's partition change may still be queued. The step ends with the slot empty.
    step("eject-card", eject_card, is_event("changed", "/dev/sdf", has_media=False))

    # 6. unplug the reader: every LUN is removed
    def unplug_reader() -> None:
        for lun, name in enumerate(("sdd", "sde", "sdf", "sdg")):
            tb.uevent(f"{READER_IF}/host8/target8:0:0/8:0:0:{lun}/block/{name}", "remove")
        tb.remove_device(READER_USB)

    step("remove-reader", unplug_reader, is_event("removed", "/dev/sdg"))

    results["stopped"] = worker.stop(timeout=30)
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
