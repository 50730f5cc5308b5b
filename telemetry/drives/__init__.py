"""Drive detection for flashing apps: list, classify and watch disks (Linux via pyudev)."""

# ``list_drives()`` returns ``Drive`` objects with drivelist's fields (snake case) plus a drive
# type, card type, warnings and an ``is_flash_target`` verdict; ``DriveMonitor`` reports
# hot-plug events. On Linux the sysfs parent chain is read by ``_udev`` (the only pyudev
# importer); other platforms, or Linux without pyudev/libudev, get the psutil fallback
# (``_fallback``), which only knows mounted removable volumes.

from __future__ import annotations

import logging
import sys
from typing import Literal

from ._model import (
    CARD_TYPES,
    DRIVE_TYPES,
    WARNINGS,
    Drive,
    DriveEvent,
    DriveEventAction,
    Mountpoint,
    size_bucket,
)
from ._monitor import DriveMonitor

__all__ = [
    "CARD_TYPES",
    "DRIVE_TYPES",
    "WARNINGS",
    "Drive",
    "DriveEvent",
    "DriveEventAction",
    "DriveMonitor",
    "Mountpoint",
    "backend_name",
    "list_drives",
    "size_bucket",
]

_log = logging.getLogger(__name__)

Backend = Literal["auto", "udev", "psutil"]


def _udev_usable() -> bool:
    if not sys.platform.startswith("linux"):
        return False
    try:
        from . import _udev  # noqa: F401 - imports pyudev
    except ImportError:
        return False
    return True


def backend_name() -> str:
    """``"udev"`` when the pyudev backend is used by default here, else ``"psutil"``."""
    return "udev" if _udev_usable() else "psutil"


def list_drives(*, all: bool = False, backend: Backend = "auto") -> list[Drive]:
    """The drives of this machine, flash targets only unless ``all``.

    ``all=True`` adds everything else the kernel lists as a disk: system disks, read-only
    and empty ones (card-reader slots without a card), loop, zram, dm and md devices.
    Optical drives, RAM disks and floppies are never listed (as in drivelist).
    ``backend`` forces ``"udev"`` (Linux, pyudev) or ``"psutil"`` (mounted volumes only).
    """
    drives: list[Drive]
    if backend == "psutil" or (backend == "auto" and not _udev_usable()):
        from ._fallback import collect_drives as collect_fallback

        drives = collect_fallback(include_all=all)
    else:
        from ._udev import collect_drives as collect_udev

        try:
            drives = collect_udev()
        except ImportError as exc:  # pyudev present but libudev.so missing
            if backend == "udev":
                raise
            _log.info("libudev unavailable, using the psutil fallback: %s", exc)
            from ._fallback import collect_drives as collect_fallback

            drives = collect_fallback(include_all=all)
    if all:
        return drives
    return [d for d in drives if d.is_flash_target]
