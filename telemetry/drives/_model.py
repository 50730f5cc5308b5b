"""The public value types of the drives package: ``Drive``, ``Mountpoint`` and ``DriveEvent``."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Final, Literal

__all__ = [
    "CARD_TYPES",
    "DRIVE_TYPES",
    "LARGE_DRIVE_BYTES",
    "WARNINGS",
    "Drive",
    "DriveEvent",
    "DriveEventAction",
    "Mountpoint",
    "size_bucket",
]

#: Every value ``Drive.drive_type`` can take.
DRIVE_TYPES: Final = (
    "usb-flash",
    "usb-disk",
    "usb-card-reader",
    "sd-internal",
    "emmc",
    "nvme",
    "sata",
    "virtio",
    "loop",
    "zram",
    "other",
)

#: Every non-``None`` value ``Drive.card_type`` can take.
CARD_TYPES: Final = ("sd", "cf", "sm", "ms")

#: Every value ``Drive.warnings`` can hold, in the order they are listed.
WARNINGS: Final = ("locked", "system", "large", "mounted")

#: Etcher's "large drive" threshold (``drive-constraints.ts``): more than 128e9 bytes.
LARGE_DRIVE_BYTES: Final = 128_000_000_000

_GIB: Final = 1 << 30

DriveEventAction = Literal["attached", "changed", "removed"]


@dataclass(frozen=True, slots=True)
class Mountpoint:
    """One place where a filesystem of the drive is mounted (``[SWAP]`` for swap).

    ``label`` is the filesystem label when udev knows it, else ``None``.
    """

    path: str
    label: str | None = None

    def to_json(self) -> dict[str, str | None]:
        """``{"path": ..., "label": ...}``, as drivelist reports mount points."""
        return {"path": self.path, "label": self.label}


def size_bucket(size: int) -> str:
    """A coarse, non-identifying capacity class for telemetry.

    The bucket is the smallest power-of-two capacity, in binary gigabytes, that holds the
    drive, so marketed sizes land where people expect them: a "16 GB" stick (15.5e9 bytes)
    is ``"16GB"``, a "256 GB" SSD (256.06e9 bytes) is ``"256GB"``, a "1 TB" disk is ``"1TB"``.
    ``"none"`` means no medium, ``"<1GB"`` anything up to 1 GiB, ``">16TB"`` the rest.
    """
    if size <= 0:
        return "none"
    if size <= _GIB:
        return "<1GB" if size < _GIB else "1GB"
    gib = 1
    while gib * _GIB < size:
        gib *= 2
        if gib > 16 * 1024:
            return ">16TB"
    return f"{gib}GB" if gib < 1024 else f"{gib // 1024}TB"


@dataclass(frozen=True, slots=True)
class Drive:
    """One whole disk (never a partition), with drivelist's fields in snake case plus ours.

    drivelist fields:

    * ``device`` / ``raw``: the device node (``/dev/sdb``); the same on Linux.
    * ``device_path``: the ``/dev/disk/by-path/…`` link when udev made one, else ``None``.
    * ``description``: ``label vendor model (partition labels or mount points)``.
    * ``display_name``: what a UI shows as the drive's name (the device node, as etcher-sdk).
    * ``size`` in bytes (0 when there is no medium), ``block_size`` (physical) and
      ``logical_block_size`` in bytes.
    * ``mountpoints``: every mount of the disk, its partitions and the dm/md devices on top.
    * ``partition_table_type``: ``"gpt"``, ``"mbr"`` or ``None``.
    * ``bus_type``: ``USB``, ``SD`` (SD card on the mmc bus), ``MMC`` (eMMC), ``NVME``,
      ``SATA``, ``ATA``, ``SCSI``, ``VIRTIO``, ``VIRTUAL`` or ``UNKNOWN``; ``bus_version`` the
      USB version (``"2.00"``, ``"3.20"``) for USB drives, else ``None``.
    * ``enumerator``: which code path found it: ``"udev"`` (sysfs through pyudev) or
      ``"psutil"`` (the mounted-volume fallback, see ``_fallback``).
    * ``is_read_only`` (the disk's ``ro``: lock switch, write-protected media);
      ``is_system`` (backs /, /boot, /boot/efi, /usr, /var, /home or swap, through
      partitions and dm/md holders, or is an internal fixed disk: NVMe, SATA, virtio, eMMC);
      ``is_virtual`` (under /devices/virtual: loop, zram, dm, md …); ``is_removable`` (USB,
      a memory card, or the kernel's removable bit; unlike drivelist, virtual disks are not
      "removable"); ``is_card`` (SD card in an internal slot, or a USB card-reader slot);
      ``is_scsi`` (SATA/ATA/SCSI transport, not USB); ``is_usb``; ``is_uas``.

    Beyond drivelist: ``has_media`` (size > 0), ``card_type`` (``sd``, ``cf``, ``sm``,
    ``ms`` or ``None``), ``usb_driver`` (``uas`` / ``usb-storage`` / …), ``drive_type`` (one
    of ``DRIVE_TYPES``), ``warnings`` (subset of ``WARNINGS``), ``is_flash_target`` (has
    media, not virtual, not system, not read-only), ``vendor`` and ``model``.
    """

    device: str
    device_path: str | None
    raw: str
    description: str
    display_name: str
    size: int
    block_size: int
    logical_block_size: int
    mountpoints: tuple[Mountpoint, ...]
    partition_table_type: str | None
    bus_type: str
    bus_version: str | None
    enumerator: str
    is_read_only: bool
    is_system: bool
    is_virtual: bool
    is_removable: bool
    is_card: bool
    is_scsi: bool
    is_usb: bool
    is_uas: bool
    has_media: bool
    card_type: str | None
    usb_driver: str | None
    drive_type: str
    warnings: tuple[str, ...]
    is_flash_target: bool
    vendor: str | None = None
    model: str | None = None

    def to_json(self) -> dict[str, Any]:
        """Every field under its snake-case name; JSON-safe (lists instead of tuples)."""
        out: dict[str, Any] = {}
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if field.name == "mountpoints":
                value = [mp.to_json() for mp in value]
            elif isinstance(value, tuple):
                value = list(value)
            out[field.name] = value
        return out

    def telemetry_properties(self) -> dict[str, str | int | bool | None]:
        """What may leave the machine: kinds, booleans, a size bucket, vendor and model.

        Never serial numbers, labels, mount paths, device nodes or by-path links.
        """
        return {
            "drive_type": self.drive_type,
            "bus_type": self.bus_type,
            "bus_version": self.bus_version,
            "size_bucket": size_bucket(self.size),
            "card_type": self.card_type,
            "usb_driver": self.usb_driver,
            "has_media": self.has_media,
            "is_read_only": self.is_read_only,
            "is_system": self.is_system,
            "is_virtual": self.is_virtual,
            "is_removable": self.is_removable,
            "is_card": self.is_card,
            "is_scsi": self.is_scsi,
            "is_usb": self.is_usb,
            "is_uas": self.is_uas,
            "is_flash_target": self.is_flash_target,
            "vendor": _clean_public_text(self.vendor),
            "model": _clean_public_text(self.model),
        }


def _clean_public_text(text: str | None, limit: int = 48) -> str | None:
    """Vendor/model text for telemetry: printable ASCII, collapsed whitespace, bounded."""
    if not text:
        return None
    cleaned = " ".join("".join(ch if " " <= ch <= "~" else " " for ch in text).split())
    return cleaned[:limit] or None


@dataclass(frozen=True, slots=True)
class DriveEvent:
    """A hot-plug notification from ``DriveMonitor``.

    ``drive`` is the drive as it is now (for ``removed``: as it was last seen);
    ``previous`` is the earlier state for ``changed`` (e.g. a card inserted into a reader:
    ``previous.has_media`` is false, ``drive.has_media`` true), else ``None``.
    """

    action: DriveEventAction
    drive: Drive
    previous: Drive | None = None

    @property
    def device(self) -> str:
        """The device node the event is about."""
        return self.drive.device

    def to_json(self) -> dict[str, Any]:
        """``{"event": action, "drive": {...}}`` (plus ``"previous"`` for ``changed``)."""
        out: dict[str, Any] = {"event": self.action, "drive": self.drive.to_json()}
        if self.previous is not None:
            out["previous"] = self.previous.to_json()
        return out
