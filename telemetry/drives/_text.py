"""A drive's text: udev's escaped strings decoded, vendor and model, the description line."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Final

from ._facts import DiskFacts

__all__ = ["clean", "decode_udev_string", "description", "fs_label", "vendor_model"]

_ESCAPE: Final = re.compile(r"\\x([0-9a-fA-F]{2})")

#: What a disk without label, vendor or model is called, by drive type.
_FALLBACK_HEADS: Final = {
    "sd-internal": "SD card",
    "emmc": "eMMC",
    "virtio": "VirtIO disk",
    "zram": "Compressed RAM disk",
    "loop": "Loop device",
    "usb-card-reader": "Card reader",
}


def decode_udev_string(value: str | None) -> str | None:
    """Undo udev's ``\\xNN`` escaping (``ID_MODEL_ENC``) and trim; ``None`` when empty."""
    if value is None:
        return None
    text = _ESCAPE.sub(lambda m: chr(int(m.group(1), 16)), value)
    text = " ".join(text.split())
    return text or None


def clean(value: str | None) -> str | None:
    """Whitespace collapsed and trimmed; ``None`` when nothing is left."""
    if value is None:
        return None
    text = " ".join(value.split())
    return text or None


def fs_label(props: Mapping[str, str]) -> str | None:
    """The filesystem label udev read (``ID_FS_LABEL_ENC`` decoded, else ``ID_FS_LABEL``)."""
    return decode_udev_string(props.get("ID_FS_LABEL_ENC")) or (props.get("ID_FS_LABEL") or None)


def _udev_text(props: Mapping[str, str], key: str) -> str | None:
    """``KEY_ENC`` decoded, else ``KEY`` with udev's underscores turned back into spaces."""
    enc = decode_udev_string(props.get(f"{key}_ENC"))
    if enc:
        return enc
    raw = props.get(key)
    return clean(raw.replace("_", " ")) if raw else None


def _not_ata(vendor: str | None) -> str | None:
    """``None`` for libata's placeholder vendor ``ATA``, which names no vendor."""
    return None if vendor and vendor.upper() == "ATA" else vendor


def vendor_model(facts: DiskFacts) -> tuple[str | None, str | None]:
    """Vendor and model text, as lsblk shows them: udev's when it has them, else sysfs'.

    udev's strings are only descriptive extras here (never used to classify); they are
    better when present: ata_id reads the full ATA model behind a USB-SATA bridge, where
    sysfs only has the bridge's 16-character SCSI INQUIRY (``ASMT`` / ``2115``).
    """
    props = facts.properties
    udev_model = _udev_text(props, "ID_MODEL") or clean(props.get("ID_NAME"))
    if udev_model:
        return _not_ata(_udev_text(props, "ID_VENDOR")), udev_model
    vendor: str | None = None
    model: str | None = None
    if facts.scsi is not None:
        vendor, model = _not_ata(clean(facts.scsi.vendor)), clean(facts.scsi.model)
    elif facts.nvme_model is not None:
        model = clean(facts.nvme_model)
    elif facts.mmc is not None:
        model = clean(facts.mmc.name)
    if facts.usb is not None:
        vendor = vendor or clean(facts.usb.manufacturer)
        model = model or clean(facts.usb.product)
    return vendor, model


def _partition_subs(facts: DiskFacts, partition_mounts: Mapping[str, str]) -> list[str]:
    """Each partition's label when it differs from the disk's, else its first mount point."""
    subs: list[str] = []
    for part in facts.partitions:
        label = part.fs_label or part.part_label
        sub = label if label and label != facts.fs_label else partition_mounts.get(part.name)
        if sub and sub not in subs:
            subs.append(sub)
    return subs


def _fallback_head(facts: DiskFacts, drive_type: str) -> str:
    """A readable name for a disk without label, vendor or model."""
    if drive_type == "loop" and facts.loop_backing_file:
        return f"Loop device ({facts.loop_backing_file.rsplit('/', 1)[-1]})"
    return _FALLBACK_HEADS.get(drive_type, facts.name)


def description(
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
    subs = _partition_subs(facts, partition_mounts)
    if not head:
        head = _fallback_head(facts, drive_type)
    text = f"{head} ({', '.join(subs)})" if subs else head
    return " ".join(text.split())
