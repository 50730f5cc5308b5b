"""The Linux backend's scan: every block device read, mounts resolved, each disk classified.

Classification relies on sysfs attributes and the parent chain, read directly (the files
libudev itself would read, once per scan, which is what makes a full scan faster than
``lsblk``); udev's ``ID_*`` properties are extras merged in when a udev database exists.
"""

from __future__ import annotations

import logging
import re
from collections import defaultdict
from collections.abc import Mapping

from . import _sysfs
from ._blocks import Block, enumerate_blocks, usb_interface_path
from ._classify import classify, resolve_system_disks
from ._disk_facts import disk_facts
from ._model import Drive, Mountpoint
from ._mounts import read_mounts, read_swaps
from ._text import fs_label
from ._topology import resolve_mounts, underlying_disks
from ._udev import VANISHED

__all__ = ["collect_drives"]

_log = logging.getLogger(__name__)


def _natural(text: str) -> tuple[tuple[int, int | str], ...]:
    """Sort key putting ``sdb2`` before ``sdb10`` and ``loop2`` before ``loop10``."""
    return tuple(
        (0, int(chunk)) if chunk.isdigit() else (1, chunk) for chunk in re.findall(r"\d+|\D+", text)
    )


def _partitions_and_luns(blocks: list[Block]) -> tuple[dict[str, list[Block]], dict[str, int]]:
    """Each disk's partitions, and how many disks hang off each USB interface (its LUNs)."""
    partitions: dict[str, list[Block]] = defaultdict(list)
    luns: dict[str, int] = defaultdict(int)
    for b in blocks:
        if b.kind == "partition" and b.parent_disk:
            partitions[b.parent_disk].append(b)
        elif b.kind == "disk":
            iface = usb_interface_path(b.path)
            if iface:
                luns[iface] += 1
    return partitions, luns


def _mounts_by_disk(
    mounted: Mapping[str, list[str]],
    blocks: Mapping[str, Block],
    disks_of: Mapping[str, set[str]],
) -> dict[str, list[Mountpoint]]:
    """Every mount of each whole disk: its own, its partitions' and its dm/md holders'."""
    out: dict[str, list[Mountpoint]] = defaultdict(list)
    for name, paths in mounted.items():
        label = fs_label(blocks[name].props) if name in blocks else None
        for disk in sorted(disks_of.get(name, {name})):
            for mount_path in paths:
                mp = Mountpoint(mount_path, label)
                if mp not in out[disk]:
                    out[disk].append(mp)
    return out


class _Scan:
    """What classifying one disk needs to know about the others: partitions, LUNs, mounts."""

    def __init__(self, blocks_list: list[Block]) -> None:
        self.sysfs = _sysfs.Sysfs()
        blocks = {b.name: b for b in blocks_list}
        self.partitions, self.luns = _partitions_and_luns(blocks_list)
        disks_of = underlying_disks(blocks)
        self.mounted = resolve_mounts([*read_mounts(), *read_swaps()], blocks)
        self.system = resolve_system_disks(self.mounted, disks_of)
        self.mounts_of_disk = _mounts_by_disk(self.mounted, blocks, disks_of)

    def drive(self, block: Block) -> Drive:
        """The classified ``Drive`` of one whole disk."""
        parts = sorted(self.partitions.get(block.name, []), key=lambda p: _natural(p.name))
        facts = disk_facts(self.sysfs, block, parts, self.luns)
        return classify(
            facts,
            mountpoints=self.mounts_of_disk.get(block.name, []),
            partition_mounts={
                p.name: self.mounted[p.name][0] for p in parts if self.mounted.get(p.name)
            },
            system_backing=block.name in self.system,
            enumerator="udev",
        )


def collect_drives() -> list[Drive]:
    """Every whole disk (and loop, zram, dm, md …) the kernel knows, classified."""
    blocks_list = enumerate_blocks()
    scan = _Scan(blocks_list)
    drives: list[Drive] = []
    for block in blocks_list:
        if block.kind != "disk":
            continue
        try:
            drives.append(scan.drive(block))
        except VANISHED as exc:
            _log.debug("disk %s vanished while being read: %s", block.name, exc)
    drives.sort(key=lambda d: _natural(d.device))
    return drives
