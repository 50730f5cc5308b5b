"""``DiskFacts`` of one whole disk, read from sysfs.

Its parents (USB device and interface, SCSI device and host, MMC card and host, NVMe,
virtio), its own attributes, its partitions' labels and, when udev did not say, its
partition table (sniffed from the first sectors).
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from . import _sysfs
from ._blocks import Block
from ._facts import DiskFacts, MmcFacts, PartitionFacts, ScsiFacts, UsbFacts
from ._text import decode_udev_string, fs_label

__all__ = ["disk_facts"]


def _usb_facts(usb_dev: _sysfs.Node | None, iface: _sysfs.Node | None) -> UsbFacts | None:
    """The USB device's ids, strings, version and speed and its interface's driver."""
    if usb_dev is None and iface is None:
        return None
    return UsbFacts(
        vendor_id=usb_dev.attr("idVendor") if usb_dev else None,
        product_id=usb_dev.attr("idProduct") if usb_dev else None,
        manufacturer=usb_dev.attr("manufacturer") if usb_dev else None,
        product=usb_dev.attr("product") if usb_dev else None,
        version=usb_dev.attr("version") if usb_dev else None,
        speed=usb_dev.attr("speed") if usb_dev else None,
        interface_driver=iface.driver if iface else None,
        interface_path=iface.path if iface else None,
    )


def _scsi_facts(sdev: _sysfs.Node | None, host: _sysfs.Node | None) -> ScsiFacts | None:
    """INQUIRY vendor and model, the LUN (last part of ``H:C:T:L``) and the host's driver."""
    if sdev is None:
        return None
    proc_name = None
    if host is not None:
        host_name = os.path.basename(host.path)
        proc_name = host.attr(f"scsi_host/{host_name}/proc_name")
    try:
        lun: int | None = int(os.path.basename(sdev.path).rsplit(":", 1)[-1])
    except ValueError:
        lun = None
    return ScsiFacts(
        vendor=sdev.attr("vendor"), model=sdev.attr("model"), lun=lun, host_proc_name=proc_name
    )


def _mmc_facts(
    sysfs: _sysfs.Sysfs, card: _sysfs.Node | None, host: _sysfs.Node | None
) -> MmcFacts | None:
    """The card's type and name, and the driver of the controller above its host."""
    if card is None:
        return None
    host_parent = sysfs.node(os.path.dirname(os.path.dirname(host.path))) if host else None
    return MmcFacts(
        card_type=card.attr("type") or card.uevent.get("MMC_TYPE") or None,
        name=card.attr("name") or card.uevent.get("MMC_NAME"),
        host_driver=host_parent.driver if host_parent else None,
    )


def _sniff_partition_table(devnode: str, logical_block_size: int) -> str | None:
    """``gpt``/``mbr`` from the first sectors, when udev did not say (needs read access)."""
    try:
        fd = os.open(devnode, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        head = os.pread(fd, 512, 0)
        gpt = os.pread(fd, 8, logical_block_size)
    except OSError:
        return None
    finally:
        os.close(fd)
    if gpt == b"EFI PART":
        return "gpt"
    if len(head) == 512 and head[510:512] == b"\x55\xaa":
        types = {head[446 + 16 * i + 4] for i in range(4)}
        if 0xEE in types:
            return "gpt"
        if types - {0}:
            return "mbr"
    return None


def _partition_facts(partitions: list[Block]) -> tuple[PartitionFacts, ...]:
    return tuple(
        PartitionFacts(
            name=p.name,
            fs_label=fs_label(p.props),
            part_label=decode_udev_string(p.props.get("ID_PART_ENTRY_NAME")),
        )
        for p in partitions
    )


def disk_facts(
    sysfs: _sysfs.Sysfs, block: Block, partitions: list[Block], luns: Mapping[str, int]
) -> DiskFacts:
    """Everything about one disk; ``luns`` counts the disks on each USB interface path."""
    path = block.path
    subsystems: tuple[str, ...] = ()
    found: dict[str, _sysfs.Node] = {}
    if not block.devpath.startswith("/devices/virtual/"):  # loop, zram, dm …: no parents
        subsystems, found = sysfs.parent_chain(path)
    usb = _usb_facts(found.get("usb_device"), found.get("usb_interface"))
    scsi = _scsi_facts(found.get("scsi_device"), found.get("scsi_host"))
    mmc = _mmc_facts(sysfs, found.get("mmc"), found.get("mmc_host"))
    nvme_model = (found["nvme"].attr("model") or "") if "nvme" in found else None
    size = _sysfs.read_int(f"{path}/size") * 512
    lbs = _sysfs.read_int(f"{path}/queue/logical_block_size", 512)
    ptable = None
    if partitions and not block.props.get("ID_PART_TABLE_TYPE") and size:
        ptable = _sniff_partition_table(block.devnode, lbs)
    iface_path = usb.interface_path if usb is not None else None
    read_only = _sysfs.read_int(f"{path}/ro") == 1
    removable = _sysfs.read_int(f"{path}/removable") == 1
    pbs = _sysfs.read_int(f"{path}/queue/physical_block_size", lbs)
    loop_backing_file = None
    if block.name.startswith("loop") and size:
        loop_backing_file = _sysfs.read(f"{path}/loop/backing_file")
    return DiskFacts(
        name=block.name,
        devnode=block.devnode,
        devpath=block.devpath,
        size=size,
        read_only=read_only,
        removable=removable,
        logical_block_size=lbs,
        physical_block_size=pbs,
        subsystems=subsystems,
        usb=usb,
        scsi=scsi,
        mmc=mmc,
        nvme_model=nvme_model,
        virtio="virtio" in found,
        luns_on_interface=luns.get(iface_path, 1) if iface_path else 1,
        properties=block.props,
        partitions=_partition_facts(partitions),
        partition_table_type=ptable,
        loop_backing_file=loop_backing_file,
        fs_label=fs_label(block.props),
    )
