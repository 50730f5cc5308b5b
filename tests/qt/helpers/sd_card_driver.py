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
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import gi

gi.require_version("UMockdev", "1.0")
from gi.repository import UMockdev  # noqa: E402

HERE = Path(__file__).resolve().parent
WAIT = 10.0
SLOT = "/sys/devices/pci0000:00/0000:00:1c.0/0000:02:00.0/rtsx_pci_sdmmc.0/mmc_host/mmc0"
CARD = SLOT + "/mmc0:aaaa"
DISK = CARD + "/block/mmcblk0"


def strip_comments(text: str) -> str:
    return "\n".join(ln for ln in text.splitlines() if not ln.startswith("#")).strip() + "\n"


def blocks(text: str) -> list[tuple[str, str]]:
    out = []
    for block in text.strip().split("\n\n"):
        block = block.strip("\n")
        if block:
            out.append(("/sys" + block.splitlines()[0][3:].strip(), block))
    return out


def parents_first(text: str, *, under: str | None = None, outside: str | None = None) -> str:
    keep = []
    for path, block in reversed(blocks(text)):
        if under is not None and not path.startswith(under):
            continue
        if outside is not None and path.startswith(outside):
            continue
        keep.append(block)
    return "\n\n".join(keep) + "\n"


class Worker:
    def __init__(self, python: str, env: dict[str, str]) -> None:
        self.proc = subprocess.Popen(
            [python, str(HERE / "qt_drive_worker.py")],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        self.lines: queue.Queue[dict[str, Any]] = queue.Queue()
        self.stderr: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()
        threading.Thread(target=self._read_err, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            try:
                self.lines.put(json.loads(line))
            except ValueError:
                self.lines.put({"raw": line})

    def _read_err(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.stderr.append(line)

    def wait_for(self, pred: Any, timeout: float = WAIT) -> dict[str, Any] | None:
        end = time.monotonic() + timeout
        while True:
            left = end - time.monotonic()
            if left <= 0:
                return None
            try:
                msg = self.lines.get(timeout=left)
            except queue.Empty:
                return None
            if pred(msg):
                return msg

    def stop(self) -> dict[str, Any] | None:
        self.proc.send_signal(signal.SIGINT)
        msg = self.wait_for(lambda m: "stopped" in m, timeout=10)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=5)
        return msg


def main() -> int:
    python, fixture_dir = sys.argv[1], Path(sys.argv[2])
    card = strip_comments((fixture_dir / "sd-internal-partitioned.umockdev").read_text())

    tb = UMockdev.Testbed.new()
    # The reader (PCI function and its mmc host) is present from boot; the slot is empty.
    tb.add_from_string(parents_first(card, outside=CARD))
    env = dict(os.environ)
    env["UMOCKDEV_DIR"] = tb.get_root_dir()
    worker = Worker(python, env)
    result: dict[str, Any] = {"stderr": worker.stderr}
    result["ready"] = worker.wait_for(lambda m: "ready" in m, timeout=60)
    if result["ready"] is None:
        result["error"] = "worker never became ready"
        print(json.dumps(result))
        return 1

    # Insert the card: the mmc card device, its disk, then the partitions (kernel order).
    tb.add_from_string(parents_first(card, under=CARD))
    result["added"] = worker.wait_for(lambda m: m.get("signal") == "driveAdded")
    result["list_after_add"] = worker.wait_for(lambda m: m.get("signal") == "drivesChanged")

    # Pull it out: remove uevents (partitions, then the disk), then the sysfs tree goes.
    tb.uevent(DISK + "/mmcblk0p2", "remove")
    tb.uevent(DISK + "/mmcblk0p1", "remove")
    tb.uevent(DISK, "remove")
    tb.remove_device(CARD)
    result["removed"] = worker.wait_for(lambda m: m.get("signal") == "driveRemoved")
    result["list_after_remove"] = worker.wait_for(lambda m: m.get("signal") == "drivesChanged")

    result["stopped"] = worker.stop()
    result["returncode"] = worker.proc.returncode
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
