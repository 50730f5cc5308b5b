"""Which drives the target list shows, which it disables and why, and what it warns about.

Qt-free rules after Etcher's ``drive-constraints.ts``: system and virtual drives are hidden
unless "Show system drives" is on; the drive holding the image (the source drive), drives
without media, locked (write-protected) or too small for the image are disabled with the
reason, in words that fit the device's kind (an empty card reader needs a card; an unused
loop or zram device has nothing to insert); large, mounted and system drives carry a
warning. ``icon_kind`` picks the picture: SD card, USB stick, USB disk, card reader or disk.

The source drive is found from the image file itself (:func:`image_location`): the device
number of its filesystem (``st_dev``), compared with the filesystem of each mount point of
a drive (its partitions' and the dm/md devices' on top included), and, on Linux, the whole
disks under that filesystem read from sysfs (a partition's disk, the disks under a dm or md
device), compared with the drive's device node. Both checks run: either one is enough.
"""

from __future__ import annotations

import contextlib
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from telemetry.drives import Drive

__all__ = [
    "ICON_KINDS",
    "SOURCE_DRIVE_REASON",
    "DriveRow",
    "ImageLocation",
    "drive_rows",
    "empty_reason",
    "format_size",
    "holds_image",
    "icon_kind",
    "image_location",
    "virtual_reason",
]

#: Why the drive holding the image cannot be picked (Etcher: "Source drive").
SOURCE_DRIVE_REASON: Final = "Source drive: it holds the image"

#: Etcher's large-drive threshold.
LARGE_DRIVE_BYTES: Final = 128_000_000_000

ICON_KINDS: Final = ("sd-card", "usb-stick", "usb-disk", "card-reader", "disk")


def format_size(size: int | None) -> str:
    """``15.5 GB`` style (decimal units, as drive makers and Etcher show them)."""
    if size is None:
        return "unknown size"
    value = float(size)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if value < 1000 or unit == "TB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} TB"  # pragma: no cover - the loop always returns


def icon_kind(drive: Drive) -> str:
    """The picture for a drive: a memory card, a USB stick, a USB disk, a card reader, a disk."""
    if drive.drive_type == "usb-card-reader":
        return "card-reader"
    if drive.is_card or drive.card_type is not None or drive.drive_type == "sd-internal":
        return "sd-card"
    if drive.drive_type == "usb-flash":
        return "usb-stick"
    if drive.drive_type == "usb-disk" or drive.is_usb:
        return "usb-disk"
    return "disk"


@dataclass(frozen=True, slots=True)
class ImageLocation:
    """Where an image file lives: ``st_dev`` of its filesystem and, on Linux, the kernel
    names of the whole disks backing that filesystem (``{"sdb"}``; empty when the
    filesystem has no block device, as tmpfs and overlayfs)."""

    st_dev: int
    disks: frozenset[str] = frozenset()


def image_location(
    path: str | os.PathLike[str], *, sysfs: Path = Path("/sys")
) -> ImageLocation | None:
    """The :class:`ImageLocation` of the file at ``path``; ``None`` when it cannot be read."""
    try:
        st_dev = os.stat(path).st_dev
    except OSError:
        return None
    disks: frozenset[str] = frozenset()
    if sys.platform.startswith("linux"):
        disks = frozenset(_disks_under(sysfs, f"{os.major(st_dev)}:{os.minor(st_dev)}"))
    return ImageLocation(st_dev, disks)


def _disks_under(sysfs: Path, devnum: str) -> set[str]:
    """Whole disks under the block device ``devnum`` (``"8:17"``): a partition's disk, the
    disks under a dm/md device (through ``slaves/``), or the device itself."""
    try:
        start = (sysfs / "dev" / "block" / devnum).resolve(strict=True)
    except OSError:
        return set()
    found: set[str] = set()
    todo = [start]
    seen: set[Path] = set()
    while todo and len(seen) < 64:
        node = todo.pop()
        if node in seen:
            continue
        seen.add(node)
        if (node / "partition").exists():
            node = node.parent  # a partition's folder sits inside its disk's
        slaves = sorted((node / "slaves").glob("*")) if (node / "slaves").is_dir() else []
        if slaves:
            for link in slaves:
                try:
                    todo.append(link.resolve(strict=True))
                except OSError:
                    continue
        else:
            found.add(node.name)
    return found


def holds_image(drive: Drive, location: ImageLocation | None) -> bool:
    """Whether ``drive`` holds the image at ``location`` (so flashing it would destroy it)."""
    if location is None:
        return False
    names = {Path(drive.device).name, Path(drive.raw).name}
    with contextlib.suppress(OSError):
        names.add(Path(os.path.realpath(drive.device)).name)
    if names & location.disks:
        return True
    for mountpoint in drive.mountpoints:
        if not mountpoint.path.startswith("/"):
            continue  # [SWAP]
        try:
            if os.stat(mountpoint.path).st_dev == location.st_dev:
                return True
        except OSError:
            continue
    return False


@dataclass(frozen=True, slots=True)
class DriveRow:
    """One line of the target list."""

    drive: Drive
    title: str
    description: str
    icon: str
    enabled: bool
    reason: str | None
    warnings: tuple[str, ...]


def _takes_cards(drive: Drive) -> bool:
    """A card slot or card reader: what an empty one needs is a card."""
    return (
        drive.is_card
        or drive.card_type is not None
        or drive.drive_type in ("usb-card-reader", "sd-internal")
    )


def empty_reason(drive: Drive) -> str:
    """Why a drive without media cannot be flashed, in the words that fit its kind."""
    if drive.drive_type == "loop":
        return "Unused loop device: no file is attached to it"
    if drive.drive_type == "zram":
        return "Unused zram device: no compressed RAM disk is set up on it"
    if drive.is_virtual:
        return "Empty virtual device"
    if _takes_cards(drive):
        return "No media: insert a card"
    return "No media: the drive reports no capacity"


def virtual_reason(drive: Drive) -> str:
    """Why a virtual device is not offered as a target."""
    if drive.drive_type == "loop":
        return "Loop device (a file mounted as a disk): not a flash target"
    if drive.drive_type == "zram":
        return "Compressed RAM disk (zram): not a flash target"
    return "Virtual device: not a flash target"


def _row(drive: Drive, image_size: int | None, image: ImageLocation | None) -> DriveRow:
    reason: str | None = None
    if holds_image(drive, image):
        reason = SOURCE_DRIVE_REASON
    elif not drive.has_media:
        reason = empty_reason(drive)
    elif drive.is_read_only:
        reason = "Locked: the drive is write-protected"
    elif image_size is not None and drive.size < image_size:
        reason = f"Too small: the image needs {format_size(image_size)}"
    elif drive.is_virtual:
        reason = virtual_reason(drive)
    warnings: list[str] = []
    if drive.is_system:
        warnings.append("System drive: flashing it destroys your operating system")
    if drive.is_read_only:
        warnings.append("Locked (write-protected)")
    if drive.size > LARGE_DRIVE_BYTES:
        warnings.append("Large drive: make sure it is not a backup or storage disk")
    if drive.mountpoints:
        points = ", ".join(mp.path for mp in drive.mountpoints[:3])
        warnings.append(f"Mounted ({points}): it will be unmounted first")
    name = " ".join(x for x in (drive.vendor, drive.model) if x) or drive.display_name
    return DriveRow(
        drive=drive,
        title=f"{name} — {format_size(drive.size) if drive.has_media else _empty_word(drive)}",
        description=f"{drive.description} ({drive.display_name})".strip(),
        icon=icon_kind(drive),
        enabled=reason is None,
        reason=reason,
        warnings=tuple(warnings),
    )


def _empty_word(drive: Drive) -> str:
    return "unused" if drive.is_virtual else "no media"


def drive_rows(
    drives: list[Drive],
    *,
    image_size: int | None,
    show_system: bool,
    image: ImageLocation | None = None,
) -> list[DriveRow]:
    """The rows to show, flash targets first, then (when asked) system and other drives.
    ``image`` (from :func:`image_location`) disables the drive that holds the image."""
    shown = [d for d in drives if show_system or d.is_flash_target or _removable_listed(d)]
    shown.sort(key=lambda d: (not d.is_flash_target, d.is_system, d.device))
    return [_row(d, image_size, image) for d in shown]


def _removable_listed(drive: Drive) -> bool:
    """Removable drives that are not flash targets (locked, or a reader without a card) are
    still listed, disabled with the reason, as Etcher does."""
    return drive.is_removable and not drive.is_system and not drive.is_virtual
