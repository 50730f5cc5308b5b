"""Mount points and swap devices, read through psutil (so ``psutil.PROCFS_PATH`` redirects them)."""

from __future__ import annotations

import logging
import os
import stat
from dataclasses import dataclass

from telemetry import _system

__all__ = ["MountEntry", "read_mounts", "read_swaps"]

_log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class MountEntry:
    """A mounted block device (``device`` as written in the mount table) or a swap area."""

    device: str
    path: str
    fstype: str = ""
    opts: str = ""


def read_mounts() -> list[MountEntry]:
    """Every mount whose source is a device path (``/dev/…``), from psutil."""
    return [
        MountEntry(p.device, p.mountpoint, p.fstype, p.opts)
        for p in _system.disk_partitions(all=True)
        if p.device.startswith("/")
    ]


def read_swaps() -> list[MountEntry]:
    """Active swap areas from ``<PROCFS_PATH>/swaps`` (devices and swap files) as ``[SWAP]``."""
    path = os.path.join(_system.procfs_path(), "swaps")
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            lines = fh.read().splitlines()[1:]
    except OSError:
        return []
    out: list[MountEntry] = []
    for line in lines:
        fields = line.split()
        if len(fields) >= 2:
            # The kernel escapes blanks in the file name as \040 like in mounts.
            name = fields[0].replace("\\040", " ")
            out.append(MountEntry(name, "[SWAP]", fields[1]))
    return out


def device_numbers(path: str) -> tuple[int, int] | None:
    """``(major, minor)`` of a block device node, or of the filesystem holding a plain file."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    if stat.S_ISBLK(st.st_mode):
        return os.major(st.st_rdev), os.minor(st.st_rdev)
    if stat.S_ISREG(st.st_mode):
        return os.major(st.st_dev), os.minor(st.st_dev)
    return None
