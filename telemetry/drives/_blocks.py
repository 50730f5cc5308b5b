"""The block devices of one scan: ``/sys/class/block`` read into ``Block`` records.

udev's properties are merged into each record's ``uevent`` ones when a udev database
exists. Optical drives, RAM disks and floppies are skipped.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Final

from . import _sysfs
from ._udev import UDEV_DB

__all__ = ["Block", "enumerate_blocks", "usb_interface_path"]

#: drivelist leaves out optical drives and RAM disks; so do we (floppies too).
_SKIPPED_PREFIXES: Final = ("sr", "ram", "fd")


@dataclass
class Block:
    """One block device (disk or partition) of the current enumeration."""

    name: str
    kind: str  # "disk" or "partition"
    path: str  # real sysfs path, /sys/devices/...
    props: dict[str, str]
    parent_disk: str | None = None
    devnum: tuple[int, int] | None = None
    slaves: list[str] = field(default_factory=list)

    @property
    def devpath(self) -> str:
        return self.path[len(_sysfs.SYS) :]

    @property
    def devnode(self) -> str:
        devname = self.props.get("DEVNAME") or self.name
        return devname if devname.startswith("/") else f"/dev/{devname}"


def usb_interface_path(path: str) -> str | None:
    """The sysfs path of the USB interface a SCSI disk hangs off (string test, no I/O)."""
    marker = path.find("/host")
    if "/usb" not in path or marker < 0:
        return None
    return path[:marker]


def _device_path(name: str) -> str:
    """The real sysfs directory behind ``/sys/class/block/<name>``."""
    link = os.path.join(_sysfs.SYS_CLASS_BLOCK, name)
    try:
        return os.path.normpath(os.path.join(_sysfs.SYS_CLASS_BLOCK, os.readlink(link)))
    except OSError:
        return os.path.realpath(link)


def _devnum(props: dict[str, str]) -> tuple[int, int] | None:
    try:
        return int(props["MAJOR"]), int(props["MINOR"])
    except (KeyError, ValueError):
        return None


def _slaves(path: str) -> list[str]:
    """The block devices a dm/md device is built on."""
    try:
        return sorted(os.listdir(os.path.join(path, "slaves")))
    except OSError:
        return []


def _read_block(name: str, *, use_db: bool) -> Block | None:
    """One entry of ``/sys/class/block``; ``None`` when vanished or not a disk/partition."""
    path = _device_path(name)
    props = _sysfs.parse_uevent(_sysfs.read(os.path.join(path, "uevent")))
    kind = props.get("DEVTYPE")
    if kind not in ("disk", "partition"):
        return None  # vanished (no uevent) or not a block disk/partition
    if use_db:
        props.update(UDEV_DB.properties(path))
    block = Block(name=name, kind=kind, path=path, props=props, devnum=_devnum(props))
    if kind == "partition":
        block.parent_disk = os.path.basename(os.path.dirname(path))
    if kind == "disk" and name.startswith(("dm-", "md")):
        block.slaves = _slaves(path)
    return block


def enumerate_blocks() -> list[Block]:
    """Block devices from ``/sys/class/block`` (what libudev's enumerator scans), by name."""
    use_db = UDEV_DB.present()
    try:
        entries = sorted(os.listdir(_sysfs.SYS_CLASS_BLOCK))
    except OSError:
        return []
    blocks = (
        _read_block(name, use_db=use_db)
        for name in entries
        if not name.startswith(_SKIPPED_PREFIXES)
    )
    return [block for block in blocks if block is not None]
