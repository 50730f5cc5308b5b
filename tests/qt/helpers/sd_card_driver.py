"""Hot-plug the recorded SD card into a umockdev test bed while a Qt app watches it.

Runs under Debian's system Python (python3-gi + gir1.2-umockdev-1.0) inside ``umockdev-run``.
Starts ``qt_drive_worker.py`` with the project's interpreter (argv[1]) in the same test bed;
the worker runs a real ``QtDriveWatcher`` in an offscreen ``QApplication`` and prints every
signal it receives as a JSON line. The driver inserts the card of
``sd-internal-partitioned.umockdev`` (a SanDisk 16 GB SDHC in a Realtek PCIe slot) the way the
kernel announces it, waits for ``driveAdded``, pulls it out again, waits for ``driveRemoved``,
stops the worker and prints one JSON summary on stdout.

Usage: sd_card_driver.py PROJECT_PYTHON FIXTURE_DIR
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import gi

gi.require_version("UMockdev", "1.0")
from gi.repository import UMockdev  # noqa: E402

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent.parent / "drives" / "helpers"))  # _umockdev_common.py
from _umockdev_common import Worker, parents_first, strip_comments  # noqa: E402

WAIT = 30.0  # per signal; each comes well under a second, a loaded machine may take longer
SLOT = "/sys/devices/pci0000:00/0000:00:1c.0/0000:02:00.0/rtsx_pci_sdmmc.0/mmc_host/mmc0"
CARD = SLOT + "/mmc0:aaaa"
DISK = CARD + "/block/mmcblk0"


def main() -> int:
    python, fixture_dir = sys.argv[1], Path(sys.argv[2])
    card = strip_comments((fixture_dir / "sd-internal-partitioned.umockdev").read_text())

    tb = UMockdev.Testbed.new()
    # The reader (PCI function and its mmc host) is present from boot; the slot is empty.
    tb.add_from_string(parents_first(card, lambda path: not path.startswith(CARD)))
    env = dict(os.environ)
    env["UMOCKDEV_DIR"] = tb.get_root_dir()
    worker = Worker(python, HERE / "qt_drive_worker.py", env, wait=WAIT)
    result: dict[str, Any] = {"stderr": worker.stderr}
    result["ready"], _ = worker.wait_for(lambda m: "ready" in m, timeout=60)
    if result["ready"] is None:
        result["error"] = "worker never became ready"
        print(json.dumps(result))
        return 1

    # Insert the card: the mmc card device, its disk, then the partitions (kernel order).
    tb.add_from_string(parents_first(card, lambda path: path.startswith(CARD)))
    result["added"], _ = worker.wait_for(lambda m: m.get("signal") == "driveAdded")
    result["list_after_add"], _ = worker.wait_for(lambda m: m.get("signal") == "drivesChanged")

    # Pull it out: remove uevents (partitions, then the disk), then the sysfs tree goes.
    tb.uevent(DISK + "/mmcblk0p2", "remove")
    tb.uevent(DISK + "/mmcblk0p1", "remove")
    tb.uevent(DISK, "remove")
    tb.remove_device(CARD)
    result["removed"], _ = worker.wait_for(lambda m: m.get("signal") == "driveRemoved")
    result["list_after_remove"], _ = worker.wait_for(lambda m: m.get("signal") == "drivesChanged")

    result["stopped"] = worker.stop(timeout=30)
    result["returncode"] = worker.proc.returncode
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
