"""Card readers: is a USB SCSI disk a reader's LUN, and which card type does its slot take."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Final

from ._facts import DiskFacts

__all__ = ["card_reader_slot"]

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
#: The USB product string of a reader names itself one.
_READER_PRODUCT: Final = re.compile(r"reader|card", re.IGNORECASE)
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


def _udisks_card_type(props: Mapping[str, str]) -> str | None:
    """The card type udisks' rules flagged (``ID_DRIVE_FLASH_SD=1`` …), if any."""
    return next(
        (kind for kind, keys in _CARD_FROM_UDISKS if any(props.get(k) == "1" for k in keys)),
        None,
    )


def _scsi_model(facts: DiskFacts) -> str:
    """The LUN's SCSI INQUIRY model, ``""`` when unknown."""
    return (facts.scsi.model if facts.scsi else None) or ""


def _usb_ids(facts: DiskFacts) -> tuple[str, str]:
    """``(idVendor, idProduct)`` of the USB device, ``("", "")`` when unknown."""
    if facts.usb is None:
        return "", ""
    return facts.usb.vendor_id or "", facts.usb.product_id or ""


def _is_card_reader(facts: DiskFacts) -> bool:
    """Whether a USB SCSI disk is a card-reader LUN: any one of these signs is enough."""
    model = _scsi_model(facts)
    product = facts.usb.product if facts.usb else None
    return (
        _udisks_card_type(facts.properties) is not None
        or _usb_ids(facts) in _READER_USB_IDS
        or facts.luns_on_interface > 1  # one LUN per slot
        or bool(model and _READER_MODEL.search(model))
        or bool(product and _READER_PRODUCT.search(product))
        or (facts.removable and facts.size == 0)  # an empty slot
    )


def _known_reader_card_type(facts: DiskFacts) -> str | None:
    """The card type of this LUN for a reader whose per-LUN slots are listed, else ``None``."""
    per_lun = _READER_USB_IDS.get(_usb_ids(facts))
    if not per_lun:
        return None
    lun = facts.scsi.lun if facts.scsi and facts.scsi.lun is not None else 0
    return per_lun[lun] if lun < len(per_lun) else per_lun[-1]


def _slot_card_type(facts: DiskFacts) -> str:
    """The card type a reader's LUN takes: udisks' flag, the model text, the known reader.

    A reader whose slot cannot be told apart takes SD: what nearly every slot takes.
    """
    card = _udisks_card_type(facts.properties)
    model = _scsi_model(facts)
    if card is None and model:
        card = next((kind for kind, rx in _CARD_FROM_MODEL if rx.search(model)), None)
    if card is None:
        card = _known_reader_card_type(facts)
    return card or "sd"


def card_reader_slot(facts: DiskFacts) -> tuple[bool, str | None]:
    """Whether a USB SCSI disk is a card-reader LUN, and which card type its slot takes."""
    if not _is_card_reader(facts):
        return False, None
    return True, _slot_card_type(facts)
