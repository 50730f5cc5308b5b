"""What is known about one disk before it is classified: frozen dataclasses, no I/O."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

__all__ = ["DiskFacts", "MmcFacts", "PartitionFacts", "ScsiFacts", "UsbFacts"]


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
