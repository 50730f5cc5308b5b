"""Pure classification: turns the sysfs/udev facts gathered about one disk into a ``Drive``."""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final

from ._model import LARGE_DRIVE_BYTES, Drive, Mountpoint

__all__ = [
    "SYSTEM_MOUNTS",
    "DiskFacts",
    "MmcFacts",
    "PartitionFacts",
    "ScsiFacts",
    "UsbFacts",
    "classify",
    "decode_udev_string",
    "resolve_system_disks",
]

#: Mount points whose backing disk is a system disk (plus every swap device).
SYSTEM_MOUNTS: Final = frozenset({"/", "/boot", "/boot/efi", "/usr", "/var", "/home"})

#: USB ids of card readers from udisks' ``80-udisks2.rules`` (``ID_DRIVE_FLASH_*``);
#: the value is the card type per LUN when udisks knows it, else ``None``.
_READER_USB_IDS: Final[Mapping[tuple[str, str], tuple[str, ...] | None]] = {
    ("05e3", "070e"): None,  # Genesys Logic USB 2.0 card reader
    ("05e3", "0727"): None,  # Genesys Logic GL827L
    ("050d", "0248"): ("cf", "ms", "sm", "sd"),  # Belkin F5U248
    ("05dc", "b049"): ("sd",),  # Lexar
    ("8564", "4000"): ("sd", "cf", "ms"),  # Transcend TS-RDF5 / RDF8 (per-LUN, udisks)
    ("05ac", "8403"): ("sd",),  # Apple internal SD reader (USB attached)
    ("058f", "6362"): ("cf", "sm", "sd", "ms"),  # Alcor Micro Flash Card Reader/Writer
    ("058f", "6366"): ("cf", "sm", "sd", "ms"),  # Alcor Micro multi-card reader
    ("0bda", "0151"): None,  # Realtek RTS5151 card reader
    ("0bda", "0153"): None,  # Realtek RTS5153 (3-in-1) card reader
    ("0bda", "0158"): None,  # Realtek USB 2.0 multi-card reader
    ("0bda", "0177"): None,  # Realtek USB 2.0 card reader
    ("0bda", "0184"): None,  # Realtek RTS5182 card reader
    ("0bda", "0306"): None,  # Realtek USB 3.0 card reader
    ("0bda", "0307"): None,  # Realtek USB 3.0 card reader
    ("0bda", "0316"): None,  # Realtek USB 3.0 card reader
    ("0bda", "0326"): None,  # Realtek USB 3.0 card reader
    ("1908", "0226"): None,  # GEMBIRD / Generic microSD reader
}

#: Model text of card-reader LUNs (udisks matches ``*Reader*SD*``, ``*CF_Reader*`` …;
#: "Generic- SD/MMC", "USB3.0 CRW   -SD" and "STORAGE DEVICE" of Genesys readers do not
#: match those, so we look for the slot names themselves).
_READER_MODEL: Final = re.compile(
    r"reader|card|crw|multi|sd/mmc|sd[/_ -]?mmc|micro ?sd|sdxc|sdhc|compact ?flash|"
    r"\bcf\b|sm/xd|xd-picture|\bxd\b|ms/ms-pro|memory ?stick|\bms\b|\bsd\b|storage device",
    re.IGNORECASE,
)
_CARD_FROM_MODEL: Final = (
    ("sm", re.compile(r"\bsm\b|xd|smart ?media", re.IGNORECASE)),
    ("ms", re.compile(r"\bms\b|memory ?stick|ms-pro|ms_pro", re.IGNORECASE)),
    ("cf", re.compile(r"\bcf\b|compact ?flash|cf_reader", re.IGNORECASE)),
    ("sd", re.compile(r"sd|mmc|micro ?sd|tf\b", re.IGNORECASE)),
)
_CARD_FROM_UDISKS: Final = (
    ("sd", ("ID_DRIVE_FLASH_SD", "ID_DRIVE_FLASH_SDHC", "ID_DRIVE_FLASH_SDXC")),
    ("cf", ("ID_DRIVE_FLASH_CF",)),
    ("ms", ("ID_DRIVE_FLASH_MS",)),
    ("sm", ("ID_DRIVE_FLASH_SM",)),
)
_ESCAPE: Final = re.compile(r"\\x([0-9a-fA-F]{2})")


@dataclass(frozen=True, slots=True)
class UsbFacts:
    """The nearest ``usb_device`` and ``usb_interface`` above a disk."""

    vendor_id: str | None = None
    product_id: str | None = None
    manufacturer: str | None = None
    product: str | None = None
    version: str | None = None
    speed: str | None = None
    interface_driver: str | None = None
    interface_path: str | None = None


@dataclass(frozen=True, slots=True)
class ScsiFacts:
    """The ``scsi_device`` (INQUIRY vendor/model, LUN) and its host's ``proc_name``."""

    vendor: str | None = None
    model: str | None = None
    lun: int | None = None
    host_proc_name: str | None = None


@dataclass(frozen=True, slots=True)
class MmcFacts:
    """The mmc card device above an ``mmcblk`` disk and its host."""

    card_type: str | None = None  # SD, SDcombo, SDIO, MMC (sysfs ``type`` / MMC_TYPE)
    name: str | None = None
    host_driver: str | None = None


@dataclass(frozen=True, slots=True)
class PartitionFacts:
    """A partition of the disk: its kernel name and filesystem/partition labels."""

    name: str
    fs_label: str | None = None
    part_label: str | None = None


@dataclass(frozen=True, slots=True)
class DiskFacts:
    """Everything read from sysfs (and, as extras, udev) about one whole disk."""

    name: str
    devnode: str
    devpath: str
    size: int = 0
    read_only: bool = False
    removable: bool = False
    logical_block_size: int = 512
    physical_block_size: int = 512
    subsystems: tuple[str, ...] = ()
    usb: UsbFacts | None = None
    scsi: ScsiFacts | None = None
    mmc: MmcFacts | None = None
    nvme_model: str | None = None
    virtio: bool = False
    luns_on_interface: int = 1
    properties: Mapping[str, str] = field(default_factory=dict)
    partitions: tuple[PartitionFacts, ...] = ()
    partition_table_type: str | None = None
    loop_backing_file: str | None = None
    fs_label: str | None = None


def decode_udev_string(value: str | None) -> str | None:
    """Undo udev's ``\\xNN`` escaping (``ID_MODEL_ENC``) and trim; ``None`` when empty."""
    if value is None:
        return None
    text = _ESCAPE.sub(lambda m: chr(int(m.group(1), 16)), value)
    text = " ".join(text.split())
    return text or None


def _clean(value: str | None) -> str | None:
    if value is None:
        return None
    text = " ".join(value.split())
    return text or None


def _udev_text(props: Mapping[str, str], key: str) -> str | None:
    """``KEY_ENC`` decoded, else ``KEY`` with udev's underscores turned back into spaces."""
    enc = decode_udev_string(props.get(f"{key}_ENC"))
    if enc:
        return enc
    raw = props.get(key)
    return _clean(raw.replace("_", " ")) if raw else None


def _card_reader_slot(facts: DiskFacts) -> tuple[bool, str | None]:
    """Whether a USB SCSI disk is a card-reader LUN, and which card type its slot takes."""
    props = facts.properties
    udisks_type = next(
        (kind for kind, keys in _CARD_FROM_UDISKS if any(props.get(k) == "1" for k in keys)),
        None,
    )
    model = " ".join(filter(None, (facts.scsi.model if facts.scsi else None,)))
    product = facts.usb.product if facts.usb else None
    ids = (
        (facts.usb.vendor_id or "", facts.usb.product_id or "")
        if facts.usb is not None
        else ("", "")
    )
    known = ids in _READER_USB_IDS
    lun = facts.scsi.lun if facts.scsi and facts.scsi.lun is not None else 0
    is_reader = (
        udisks_type is not None
        or known
        or facts.luns_on_interface > 1
        or bool(model and _READER_MODEL.search(model))
        or bool(product and re.search(r"reader|card", product, re.IGNORECASE))
        or (facts.removable and facts.size == 0)
    )
    if not is_reader:
        return False, None
    card = udisks_type
    if card is None and model:
        card = next((kind for kind, rx in _CARD_FROM_MODEL if rx.search(model)), None)
    if card is None and known:
        per_lun = _READER_USB_IDS[ids]
        if per_lun:
            card = per_lun[lun] if lun < len(per_lun) else per_lun[-1]
    if card is None:
        # A reader whose slot cannot be told apart: SD is what nearly every slot takes.
        card = "sd"
    return True, card


def _bus(facts: DiskFacts, is_usb: bool, is_virtual: bool) -> str:
    if is_usb:
        return "USB"
    if facts.mmc is not None:
        return "MMC" if facts.mmc.card_type == "MMC" else "SD"
    if facts.nvme_model is not None or "nvme" in facts.subsystems:
        return "NVME"
    if facts.virtio and facts.scsi is None:
        return "VIRTIO"
    if facts.scsi is not None:
        proc = (facts.scsi.host_proc_name or "").lower()
        if facts.virtio or proc.startswith("virtio"):
            return "VIRTIO"
        if proc.startswith(("ahci", "sata")) or (facts.scsi.vendor or "").upper() == "ATA":
            return "SATA"
        if "ata" in proc:
            return "ATA"
        return "SCSI"
    if is_virtual:
        return "VIRTUAL"
    return "UNKNOWN"


def _drive_type(
    facts: DiskFacts, *, is_usb: bool, is_reader: bool, is_virtual: bool, bus: str
) -> str:
    name = facts.name
    if is_virtual:
        if name.startswith("loop"):
            return "loop"
        if name.startswith("zram"):
            return "zram"
        return "other"
    if facts.mmc is not None:
        if facts.mmc.card_type == "MMC":
            return "emmc"
        return "usb-card-reader" if is_usb else "sd-internal"
    if is_usb:
        if is_reader:
            return "usb-card-reader"
        return "usb-flash" if facts.removable else "usb-disk"
    if bus == "NVME":
        return "nvme"
    if bus in ("SATA", "ATA"):
        return "sata"
    if bus == "VIRTIO":
        return "virtio"
    return "other"


def _vendor_model(facts: DiskFacts) -> tuple[str | None, str | None]:
    """Vendor and model text, as lsblk shows them: udev's when it has them, else sysfs'.

    udev's strings are only descriptive extras here (never used to classify); they are
    better when present: ata_id reads the full ATA model behind a USB-SATA bridge, where
    sysfs only has the bridge's 16-character SCSI INQUIRY (``ASMT`` / ``2115``).
    """
    props = facts.properties
    udev_model = _udev_text(props, "ID_MODEL") or _clean(props.get("ID_NAME"))
    if udev_model:
        udev_vendor = _udev_text(props, "ID_VENDOR")
        if udev_vendor and udev_vendor.upper() == "ATA":
            udev_vendor = None
        return udev_vendor, udev_model
    vendor: str | None = None
    model: str | None = None
    if facts.scsi is not None:
        vendor, model = _clean(facts.scsi.vendor), _clean(facts.scsi.model)
        if vendor and vendor.upper() == "ATA":
            vendor = None  # libata's placeholder, not a vendor
    elif facts.nvme_model is not None:
        model = _clean(facts.nvme_model)
    elif facts.mmc is not None:
        model = _clean(facts.mmc.name)
    if facts.usb is not None:
        vendor = vendor or _clean(facts.usb.manufacturer)
        model = model or _clean(facts.usb.product)
    return vendor, model


def _description(
    facts: DiskFacts,
    vendor: str | None,
    model: str | None,
    partition_mounts: Mapping[str, str],
    drive_type: str,
) -> str:
    """drivelist's ``label vendor model (sub1, sub2…)``, with a readable fallback head.

    The sub-labels are the partitions' labels that differ from the disk's, or failing a
    label, the partition's first mount point.
    """
    head = " ".join(filter(None, (facts.fs_label, vendor, model)))
    subs: list[str] = []
    for part in facts.partitions:
        label = part.fs_label or part.part_label
        sub = label if label and label != facts.fs_label else partition_mounts.get(part.name)
        if sub and sub not in subs:
            subs.append(sub)
    if not head:
        if drive_type == "loop" and facts.loop_backing_file:
            head = f"Loop device ({facts.loop_backing_file.rsplit('/', 1)[-1]})"
        else:
            head = {
                "sd-internal": "SD card",
                "emmc": "eMMC",
                "virtio": "VirtIO disk",
                "zram": "Compressed RAM disk",
                "loop": "Loop device",
                "usb-card-reader": "Card reader",
            }.get(drive_type, facts.name)
    text = f"{head} ({', '.join(subs)})" if subs else head
    return " ".join(text.split())


def _partition_table(facts: DiskFacts) -> str | None:
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
    props = facts.properties
    is_virtual = facts.devpath.startswith("/devices/virtual/")
    is_usb = facts.usb is not None or "usb" in facts.subsystems
    usb_driver = (
        (facts.usb.interface_driver if facts.usb else None)
        or (
            facts.scsi.host_proc_name
            if facts.scsi and facts.scsi.host_proc_name in ("uas", "usb-storage")
            else None
        )
        or props.get("ID_USB_DRIVER")
        or None
    )
    if not is_usb:
        usb_driver = None
    is_uas = usb_driver == "uas"
    is_reader = False
    card_type: str | None = None
    if facts.mmc is not None:
        if facts.mmc.card_type in ("SD", "SDcombo") or not facts.mmc.card_type:
            card_type = "sd"
    elif is_usb and facts.scsi is not None:
        is_reader, card_type = _card_reader_slot(facts)
    is_card = card_type is not None
    bus = _bus(facts, is_usb, is_virtual)
    drive_type = _drive_type(
        facts, is_usb=is_usb, is_reader=is_reader, is_virtual=is_virtual, bus=bus
    )
    internal_fixed = not (is_virtual or is_usb or is_card or facts.removable)
    is_system = system_backing or internal_fixed
    is_removable = is_usb or is_card or facts.removable
    has_media = facts.size > 0
    is_read_only = facts.read_only
    vendor, model = _vendor_model(facts)
    warnings: list[str] = []
    if is_read_only:
        warnings.append("locked")
    if is_system:
        warnings.append("system")
    elif facts.size > LARGE_DRIVE_BYTES:
        warnings.append("large")
    if mountpoints:
        warnings.append("mounted")
    device_path = None
    if props.get("ID_PATH"):
        device_path = f"/dev/disk/by-path/{props['ID_PATH']}"
    else:
        device_path = next(
            (
                link
                for link in props.get("DEVLINKS", "").split()
                if link.startswith("/dev/disk/by-path/")
            ),
            None,
        )
    bus_version = _clean(facts.usb.version) if (is_usb and facts.usb) else None
    return Drive(
        device=facts.devnode,
        device_path=device_path,
        raw=facts.devnode,
        description=_description(facts, vendor, model, partition_mounts or {}, drive_type),
        display_name=facts.devnode,
        size=facts.size,
        block_size=facts.physical_block_size,
        logical_block_size=facts.logical_block_size,
        mountpoints=tuple(mountpoints),
        partition_table_type=_partition_table(facts),
        bus_type=bus,
        bus_version=bus_version,
        enumerator=enumerator,
        is_read_only=is_read_only,
        is_system=is_system,
        is_virtual=is_virtual,
        is_removable=is_removable,
        is_card=is_card,
        is_scsi=bus in ("SATA", "ATA", "SCSI"),
        is_usb=is_usb,
        is_uas=is_uas,
        has_media=has_media,
        card_type=card_type,
        usb_driver=usb_driver,
        drive_type=drive_type,
        warnings=tuple(warnings),
        is_flash_target=has_media and not is_virtual and not is_system and not is_read_only,
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
