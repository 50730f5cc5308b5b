"""The psutil-only fallback: mounted removable volumes, for platforms without pyudev."""

from __future__ import annotations

import logging
import os
import sys
from collections import defaultdict
from typing import Any

from telemetry import _system

from ._classify import SYSTEM_MOUNTS, drive_warnings
from ._model import Drive, Mountpoint

__all__ = ["collect_drives", "is_removable_mount"]

_log = logging.getLogger(__name__)

_REMOVABLE_ROOTS = ("/media/", "/run/media/", "/Volumes/")
_PSEUDO_FS = frozenset(
    {"autofs", "squashfs", "tmpfs", "devtmpfs", "overlay", "proc", "sysfs", "iso9660", "udf"}
)


def is_removable_mount(device: str, mountpoint: str, opts: str) -> bool:
    """Whether a mounted volume looks removable from what the mount table says."""
    options = {o.strip().lower() for o in opts.split(",")}
    if "cdrom" in options:
        return False
    if "removable" in options:  # Windows: GetDriveType() == DRIVE_REMOVABLE
        return True
    return bool(device) and mountpoint.startswith(_REMOVABLE_ROOTS)


def _is_system_mount(path: str) -> bool:
    if path in SYSTEM_MOUNTS:
        return True
    if sys.platform == "win32":
        system_drive = os.environ.get("SYSTEMDRIVE", "C:").rstrip("\\") + "\\"
        return path.upper() == system_drive.upper()
    return False


def _mounted_volumes() -> dict[str, list[Any]]:
    """psutil's mounted partitions with a device and a real filesystem, by device."""
    grouped: dict[str, list[Any]] = defaultdict(list)
    for part in _system.disk_partitions(all=False):
        if not part.device or part.fstype in _PSEUDO_FS:
            continue
        grouped[part.device].append(part)
    return grouped


def _volume_drive(device: str, mounts: list[Any], *, removable: bool, system: bool) -> Drive:
    """The ``Drive`` of one mounted volume (all it is known by: its mount table entries)."""
    size = next((t for m in mounts if (t := _system.disk_total(m.mountpoint))), 0)
    read_only = all("ro" in m.opts.split(",") for m in mounts)
    label = os.path.basename(mounts[0].mountpoint.rstrip("/\\")) or mounts[0].mountpoint
    has_media = size > 0
    return Drive(
        device=device,
        device_path=None,
        raw=device,
        description=label,
        display_name=device,
        size=size,
        block_size=512,
        logical_block_size=512,
        mountpoints=tuple(Mountpoint(m.mountpoint, None) for m in mounts),
        partition_table_type=None,
        bus_type="UNKNOWN",
        bus_version=None,
        enumerator="psutil",
        is_read_only=read_only,
        is_system=system,
        is_virtual=False,
        is_removable=removable,
        is_card=False,
        is_scsi=False,
        is_usb=False,
        is_uas=False,
        has_media=has_media,
        card_type=None,
        usb_driver=None,
        drive_type="other",
        warnings=drive_warnings(read_only=read_only, is_system=system, size=size, mounted=True),
        is_flash_target=has_media and removable and not system and not read_only,
    )


def collect_drives(*, include_all: bool = False) -> list[Drive]:
    """Mounted volumes as drives: removable ones, or every device-backed one with ``all``.

    What it can know is limited to the mount table, so:

    * one ``Drive`` per mounted removable *volume* (grouped by device), not per physical disk;
    * ``size`` is the filesystem's size from ``disk_usage`` (not the medium's), block sizes
      512;
    * removable means: Windows' ``removable`` mount option, or a mount under ``/media`` or
      ``/run/media`` (Linux/BSD desktops) or ``/Volumes`` (macOS);
    * ``bus_type`` is ``UNKNOWN``, ``drive_type`` ``other``, the USB/card/SCSI flags false,
      ``partition_table_type`` and ``device_path`` ``None``, ``enumerator`` ``"psutil"``;
    * ``is_read_only`` comes from the ``ro`` mount option, ``is_system`` from the system
      mount points (``/``, ``/boot``, ``C:\\`` …), and ``is_flash_target`` also needs
      "removable" (internal disks cannot be told apart here).
    """
    drives: list[Drive] = []
    for device, mounts in _mounted_volumes().items():
        removable = any(is_removable_mount(device, m.mountpoint, m.opts) for m in mounts)
        system = any(_is_system_mount(m.mountpoint) for m in mounts)
        if removable or include_all:
            drives.append(_volume_drive(device, mounts, removable=removable, system=system))
    drives.sort(key=lambda d: d.device)
    return drives
