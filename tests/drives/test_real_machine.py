"""On the machine running the tests: list_drives(all=True) agrees with lsblk.

For every disk lsblk lists at top level (``lsblk --json --bytes --output-all``, and with
``--all`` for empty devices), our drive has the same device node, size, read-only flag and
removable flag. "Removable" is compared with lsblk's RM or HOTPLUG (drivelist's rule), except
for eMMC, which lsblk calls hotplug (mmc bus) and we call fixed (etcher#3608).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from typing import Any

import pytest

from telemetry.drives import Drive, list_drives

SKIPPED_BY_US = ("/dev/sr", "/dev/ram", "/dev/fd")


def _flag(value: Any) -> bool:
    """lsblk 2.37+ prints JSON booleans; older versions "0"/"1" strings."""
    if isinstance(value, str):
        return value.strip() not in ("", "0", "false")
    return bool(value)


def _lsblk(*extra: str) -> list[dict[str, Any]]:
    out = subprocess.run(
        ["lsblk", "--json", "--bytes", "--output-all", "--paths", *extra],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    ).stdout
    devices: list[dict[str, Any]] = json.loads(out)["blockdevices"]
    return [d for d in devices if not str(d["name"]).startswith(SKIPPED_BY_US)]


@pytest.fixture(scope="module")
def ours() -> dict[str, Drive]:
    return {d.device: d for d in list_drives(all=True)}


def test_lsblk_is_available() -> None:
    assert shutil.which("lsblk"), "util-linux's lsblk is part of every Debian install"


@pytest.mark.parametrize("extra", [(), ("--all",)], ids=["default", "all"])
def test_agrees_with_lsblk(ours: dict[str, Drive], extra: tuple[str, ...]) -> None:
    lsblk = _lsblk(*extra)
    assert lsblk, "lsblk lists no disk at all"
    compared = 0
    for dev in lsblk:
        name = str(dev["name"])
        assert name in ours, f"{name} is listed by lsblk but not by list_drives(all=True)"
        drive = ours[name]
        size = int(dev["size"] or 0)
        assert drive.size == size, (name, drive.size, size)
        assert drive.is_read_only == _flag(dev["ro"]), name
        removable = _flag(dev["rm"]) or _flag(dev.get("hotplug"))
        if drive.drive_type == "emmc":
            removable = False
        assert drive.is_removable == removable, (name, dev["rm"], dev.get("hotplug"))
        compared += 1
    assert compared == len(lsblk)


def test_no_extra_disks_beyond_lsblk_all(ours: dict[str, Drive]) -> None:
    """Everything we list is a top-level lsblk disk, or a dm/md device lsblk nests under its
    members (lsblk prints those as children, not at top level)."""
    top = {str(d["name"]) for d in _lsblk("--all")}
    for device, drive in ours.items():
        if device not in top:
            assert drive.is_virtual, device
            assert drive.drive_type == "other", device


def test_default_list_only_has_flash_targets() -> None:
    for drive in list_drives():
        assert drive.is_flash_target
        assert drive.has_media
        assert not drive.is_system
        assert not drive.is_virtual
