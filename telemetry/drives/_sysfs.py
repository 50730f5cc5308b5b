"""Reading sysfs: attribute files, ``uevent`` files and the parent devices above a device.

The rest of the Linux backend reaches sysfs only through this module, by attribute
(``_sysfs.read``, ``_sysfs.SYS_CLASS_BLOCK``): pointing these names elsewhere (a test's
fake ``/sys``) moves every read of a scan.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Final

__all__ = [
    "SYS",
    "SYS_CLASS_BLOCK",
    "SYS_DEVICES",
    "Node",
    "Sysfs",
    "parse_uevent",
    "read",
    "read_int",
]

SYS: Final = "/sys"
SYS_DEVICES: Final = "/sys/devices"
SYS_CLASS_BLOCK: Final = "/sys/class/block"

#: Parents a disk's classification looks at, by (subsystem, devtype) …
_ROLE_BY_DEVTYPE: Final = {
    ("scsi", "scsi_device"): "scsi_device",
    ("scsi", "scsi_host"): "scsi_host",
    ("usb", "usb_interface"): "usb_interface",
    ("usb", "usb_device"): "usb_device",
}
#: … or by subsystem alone.
_ROLE_SUBSYSTEMS: Final = ("mmc", "mmc_host", "nvme", "virtio")


def read(path: str) -> str | None:
    """A sysfs file as stripped text, ``None`` when absent, unreadable or vanished.

    Plain ``os.open``/``os.read`` (sysfs attributes fit in one page): about three times
    cheaper than ``open()`` with its buffered reader, and this runs ~10 times per disk.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        return os.read(fd, 65536).decode("utf-8", "replace").strip()
    except OSError:
        return None
    finally:
        os.close(fd)


def read_int(path: str, default: int = 0) -> int:
    """A sysfs file as an integer, ``default`` when absent or not a number."""
    value = read(path)
    try:
        return int(value) if value else default
    except ValueError:
        return default


def parse_uevent(text: str | None) -> dict[str, str]:
    """``KEY=value`` lines (a ``uevent`` file) as a dict."""
    out: dict[str, str] = {}
    for line in (text or "").splitlines():
        key, sep, value = line.partition("=")
        if sep:
            out[key] = value
    return out


def _link_name(path: str) -> str | None:
    """The last component of a symlink's target (``subsystem``, ``driver``), or ``None``."""
    try:
        return os.path.basename(os.readlink(path))
    except OSError:
        return None


@dataclass
class Node:
    """One sysfs device directory: its ``subsystem`` link, ``uevent`` and ``driver``."""

    path: str
    subsystem: str | None
    uevent: dict[str, str]

    @property
    def devtype(self) -> str | None:
        return self.uevent.get("DEVTYPE")

    @property
    def driver(self) -> str | None:
        return self.uevent.get("DRIVER") or _link_name(os.path.join(self.path, "driver"))

    def attr(self, name: str) -> str | None:
        return read(os.path.join(self.path, name))


class Sysfs:
    """Reads device directories once per scan (parents are shared between disks)."""

    def __init__(self) -> None:
        self._nodes: dict[str, Node | None] = {}

    def node(self, path: str) -> Node | None:
        """The device directory at ``path``; ``None`` when it has no ``uevent`` (gone)."""
        if path in self._nodes:
            return self._nodes[path]
        uevent_text = read(os.path.join(path, "uevent"))
        node: Node | None = None
        if uevent_text is not None:
            subsystem = _link_name(os.path.join(path, "subsystem"))
            node = Node(path, subsystem, parse_uevent(uevent_text))
        self._nodes[path] = node
        return node

    def ancestors(self, path: str) -> list[Node]:
        """Parent device directories, nearest first, up to ``/sys/devices``."""
        out: list[Node] = []
        current = os.path.dirname(path)
        while current.startswith(SYS_DEVICES) and len(current) > len(SYS_DEVICES):
            node = self.node(current)
            if node is not None and node.subsystem:
                out.append(node)
            current = os.path.dirname(current)
        return out

    def parent_chain(self, path: str) -> tuple[tuple[str, ...], dict[str, Node]]:
        """The subsystems above a disk and the interesting parents, by role (nearest wins).

        Roles: ``scsi_device``, ``scsi_host``, ``usb_interface``, ``usb_device``, ``mmc``,
        ``mmc_host``, ``nvme`` and ``virtio``.
        """
        subsystems: list[str] = []
        found: dict[str, Node] = {}
        for anc in self.ancestors(path):
            subsystem = anc.subsystem or ""
            subsystems.append(subsystem)
            role = _ROLE_BY_DEVTYPE.get((subsystem, anc.devtype or ""))
            if role is None and subsystem in _ROLE_SUBSYSTEMS:
                role = subsystem
            if role is not None and role not in found:
                found[role] = anc
        return tuple(subsystems), found
