"""Drive detection for flashing apps: list, classify and watch disks (Linux via pyudev)."""

# ``list_drives()`` returns ``Drive`` objects with drivelist's fields (snake case) plus a drive
# type, card type, warnings and an ``is_flash_target`` verdict; ``DriveMonitor`` reports
# hot-plug events; ``run_cli()`` is the ``telemetry drives`` command. On Linux the scan
# (``_scan``) reads sysfs and the parent chain of each disk (``_sysfs``, ``_disk_facts``)
# and classifies it (``_classify``); ``_udev`` is the only pyudev importer. Other platforms,
# or Linux without pyudev/libudev, get the psutil fallback (``_fallback``), which only knows
# mounted removable volumes.

from __future__ import annotations

from ._cli import run_cli
from ._listing import backend_name, list_drives
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
    "run_cli",
    "size_bucket",
]
