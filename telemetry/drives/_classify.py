"""Pure classification: the facts gathered about one disk in, its ``Drive`` out.

Each rule below answers one question about a disk (is it virtual, USB, a card slot, a
system disk; which bus, which drive type); ``classify`` asks them in turn.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Final

from ._card_readers import card_reader_slot
from ._facts import DiskFacts, ScsiFacts
from ._model import LARGE_DRIVE_BYTES, Drive, Mountpoint
from ._text import clean, description, vendor_model

__all__ = ["SYSTEM_MOUNTS", "classify", "drive_warnings", "resolve_system_disks"]

#: Mount points whose backing disk is a system disk (plus every swap device).
SYSTEM_MOUNTS: Final = frozenset({"/", "/boot", "/boot/efi", "/usr", "/var", "/home"})

_BY_PATH: Final = "/dev/disk/by-path/"


def _is_virtual(facts: DiskFacts) -> bool:
    """Under ``/devices/virtual``: loop, zram, dm, md …"""
    return facts.devpath.startswith("/devices/virtual/")


def _is_usb(facts: DiskFacts) -> bool:
    """A USB device or interface above the disk (never udev's ``ID_BUS``)."""
    return facts.usb is not None or "usb" in facts.subsystems


def _usb_driver(facts: DiskFacts) -> str | None:
    """The USB storage driver (``uas``, ``usb-storage`` …) of a USB disk."""
    return (
        (facts.usb.interface_driver if facts.usb else None)
        or (
            facts.scsi.host_proc_name
            if facts.scsi and facts.scsi.host_proc_name in ("uas", "usb-storage")
            else None
        )
        or facts.properties.get("ID_USB_DRIVER")
        or None
    )


def _card_slot(facts: DiskFacts, *, is_usb: bool) -> tuple[bool, str | None]:
    """Whether the disk is a card reader's LUN, and the card type it takes (``None``: no card).

    An SD card in an mmc slot (not eMMC, not SDIO) takes ``sd``; a USB SCSI disk may be a
    card reader's LUN.
    """
    if facts.mmc is not None:
        if facts.mmc.card_type in ("SD", "SDcombo") or not facts.mmc.card_type:
            return False, "sd"
        return False, None
    if is_usb and facts.scsi is not None:
        return card_reader_slot(facts)
    return False, None


def _scsi_bus(scsi: ScsiFacts, *, virtio: bool) -> str:
    """The bus of a disk behind a SCSI host: VirtIO, SATA, ATA or plain SCSI."""
    proc = (scsi.host_proc_name or "").lower()
    if virtio or proc.startswith("virtio"):
        return "VIRTIO"
    if proc.startswith(("ahci", "sata")) or (scsi.vendor or "").upper() == "ATA":
        return "SATA"
    if "ata" in proc:
        return "ATA"
    return "SCSI"


def _bus_type(facts: DiskFacts, *, is_usb: bool, is_virtual: bool) -> str:
    """The bus: USB, SD/MMC, NVMe, VirtIO, SATA/ATA/SCSI, virtual or unknown."""
    if is_usb:
        return "USB"
    if facts.mmc is not None:
        return "MMC" if facts.mmc.card_type == "MMC" else "SD"
    if facts.nvme_model is not None or "nvme" in facts.subsystems:
        return "NVME"
    if facts.virtio and facts.scsi is None:
        return "VIRTIO"
    if facts.scsi is not None:
        return _scsi_bus(facts.scsi, virtio=facts.virtio)
    if is_virtual:
        return "VIRTUAL"
    return "UNKNOWN"


def _virtual_drive_type(name: str) -> str:
    if name.startswith("loop"):
        return "loop"
    if name.startswith("zram"):
        return "zram"
    return "other"


def _drive_type(
    facts: DiskFacts, *, is_usb: bool, is_reader: bool, is_virtual: bool, bus: str
) -> str:
    """One of ``DRIVE_TYPES``."""
    if is_virtual:
        return _virtual_drive_type(facts.name)
    if facts.mmc is not None:
        if facts.mmc.card_type == "MMC":
            return "emmc"
        return "usb-card-reader" if is_usb else "sd-internal"
    if is_usb:
        if is_reader:
            return "usb-card-reader"
        return "usb-flash" if facts.removable else "usb-disk"
    return {"NVME": "nvme", "SATA": "sata", "ATA": "sata", "VIRTIO": "virtio"}.get(bus, "other")


def _is_system(system_backing: bool, *, is_virtual: bool, is_removable: bool) -> bool:
    """Backs a system mount or swap, or is an internal fixed disk (NVMe, SATA, eMMC …)."""
    return system_backing or not (is_virtual or is_removable)


def drive_warnings(
    *, read_only: bool, is_system: bool, size: int, mounted: bool
) -> tuple[str, ...]:
    """The subset of ``WARNINGS`` that applies, in their order (``large`` only if not system)."""
    warnings: list[str] = []
    if read_only:
        warnings.append("locked")
    if is_system:
        warnings.append("system")
    elif size > LARGE_DRIVE_BYTES:
        warnings.append("large")
    if mounted:
        warnings.append("mounted")
    return tuple(warnings)


def _warnings(facts: DiskFacts, *, is_system: bool, mounted: bool) -> tuple[str, ...]:
    return drive_warnings(
        read_only=facts.read_only, is_system=is_system, size=facts.size, mounted=mounted
    )


def _by_path_link(props: Mapping[str, str]) -> str | None:
    """udev's ``/dev/disk/by-path/…`` link, ``None`` without udev."""
    if props.get("ID_PATH"):
        return f"{_BY_PATH}{props['ID_PATH']}"
    links = props.get("DEVLINKS", "").split()
    return next((link for link in links if link.startswith(_BY_PATH)), None)


def _partition_table(facts: DiskFacts) -> str | None:
    """``gpt``, ``mbr`` or ``None``, from the sniffed table or udev's ``ID_PART_TABLE_TYPE``."""
    kind = facts.partition_table_type or facts.properties.get("ID_PART_TABLE_TYPE")
    if kind == "gpt":
        return "gpt"
    if kind in ("dos", "mbr"):
        return "mbr"
    return None


def classify(
    facts: DiskFacts,
    *,
    mountpoints: Sequence[Mountpoint] = (),
    partition_mounts: Mapping[str, str] | None = None,
    system_backing: bool = False,
    enumerator: str = "udev",
) -> Drive:
    """Build the ``Drive`` for one disk.

    ``mountpoints`` are every mount of the disk (through partitions and holders),
    ``partition_mounts`` the first mount path of each partition (for the description);
    ``system_backing`` says the disk backs a system mount or swap (see ``SYSTEM_MOUNTS``).
    """
    is_virtual = _is_virtual(facts)
    is_usb = _is_usb(facts)
    is_reader, card_type = _card_slot(facts, is_usb=is_usb)
    is_removable = is_usb or card_type is not None or facts.removable
    is_system = _is_system(system_backing, is_virtual=is_virtual, is_removable=is_removable)
    bus = _bus_type(facts, is_usb=is_usb, is_virtual=is_virtual)
    drive_type = _drive_type(
        facts, is_usb=is_usb, is_reader=is_reader, is_virtual=is_virtual, bus=bus
    )
    usb_driver = _usb_driver(facts) if is_usb else None
    vendor, model = vendor_model(facts)
    has_media = facts.size > 0
    return Drive(
        device=facts.devnode,
        device_path=_by_path_link(facts.properties),
        raw=facts.devnode,
        description=description(facts, vendor, model, partition_mounts or {}, drive_type),
        display_name=facts.devnode,
        size=facts.size,
        block_size=facts.physical_block_size,
        logical_block_size=facts.logical_block_size,
        mountpoints=tuple(mountpoints),
        partition_table_type=_partition_table(facts),
        bus_type=bus,
        bus_version=clean(facts.usb.version) if (is_usb and facts.usb) else None,
        enumerator=enumerator,
        is_read_only=facts.read_only,
        is_system=is_system,
        is_virtual=is_virtual,
        is_removable=is_removable,
        is_card=card_type is not None,
        is_scsi=bus in ("SATA", "ATA", "SCSI"),
        is_usb=is_usb,
        is_uas=usb_driver == "uas",
        has_media=has_media,
        card_type=card_type,
        usb_driver=usb_driver,
        drive_type=drive_type,
        warnings=_warnings(facts, is_system=is_system, mounted=bool(mountpoints)),
        is_flash_target=has_media and not is_virtual and not is_system and not facts.read_only,
        vendor=vendor,
        model=model,
    )


def resolve_system_disks(
    mounted: Mapping[str, Collection[str]], disks_of: Mapping[str, Collection[str]]
) -> set[str]:
    """Disks backing a system mount: ``mounted`` maps block name → mount paths (``[SWAP]``)."""
    out: set[str] = set()
    for name, paths in mounted.items():
        if any(p in SYSTEM_MOUNTS or p == "[SWAP]" for p in paths):
            out.update(disks_of.get(name, ()))
    return out
