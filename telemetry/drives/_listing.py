"""``list_drives()`` and ``backend_name()``: which backend lists this machine's drives."""

from __future__ import annotations

import logging
import sys
from typing import Literal

from ._model import Drive

__all__ = ["Backend", "backend_name", "list_drives"]

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
        from ._scan import collect_drives as collect_udev

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
