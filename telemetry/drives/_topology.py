"""How the blocks of a scan relate: the whole disks under each block, and what is mounted.

A partition lives on its disk, a dm/md device on its slaves' disks; a mount entry names a
block by node, by symlink, by ``/dev/mapper`` name or only by device number.
"""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Iterable, Mapping

from . import _sysfs
from ._blocks import Block
from ._mounts import MountEntry, device_numbers

__all__ = ["resolve_mounts", "underlying_disks"]


def underlying_disks(blocks: Mapping[str, Block]) -> dict[str, set[str]]:
    """Block name → the whole disks it lives on (itself for a disk; dm/md: their slaves')."""
    memo: dict[str, set[str]] = {}

    def walk(name: str, seen: frozenset[str]) -> set[str]:
        if name in memo:
            return memo[name]
        block = blocks.get(name)
        if block is None or name in seen:
            return set()
        if block.kind == "partition" and block.parent_disk:
            result = walk(block.parent_disk, seen | {name}) or {block.parent_disk}
        elif block.slaves:
            result = set().union(*(walk(s, seen | {name}) for s in block.slaves))
            result.add(name)  # the dm/md device itself is a (virtual) disk too
        else:
            result = {name}
        memo[name] = result
        return result

    for name in blocks:
        walk(name, frozenset())
    return memo


class _BlockNames:
    """Finds the block a mount entry's device names."""

    def __init__(self, blocks: Mapping[str, Block]) -> None:
        self._blocks = blocks
        self._by_devnum = {b.devnum: b.name for b in blocks.values() if b.devnum}
        # /dev/mapper/NAME exists without udev too (libdevmapper makes it): match dm/name.
        self._dm_names = {
            dm_name: b.name
            for b in blocks.values()
            if b.name.startswith("dm-") and (dm_name := _sysfs.read(f"{b.path}/dm/name"))
        }

    def of(self, entry: MountEntry) -> str | None:
        """The block name, matching by ``/dev/mapper`` name, node or symlink, then dev_t."""
        name: str | None = None
        if entry.device.startswith("/dev/mapper/"):
            name = self._dm_names.get(entry.device[len("/dev/mapper/") :])
        if name is None and entry.device.startswith("/dev/"):
            name = self._by_node(entry.device)
        if name is None:
            numbers = device_numbers(entry.device)
            if numbers is None and entry.device == "/dev/root":
                numbers = device_numbers(entry.path)
            name = self._by_devnum.get(numbers) if numbers else None
        return name

    def _by_node(self, device: str) -> str | None:
        base = os.path.basename(device)
        if base in self._blocks:
            return base
        real = os.path.basename(os.path.realpath(device))
        return real if real in self._blocks else None


def resolve_mounts(
    entries: Iterable[MountEntry], blocks: Mapping[str, Block]
) -> dict[str, list[str]]:
    """Mount entries → block name → mount paths, matching by name, symlink, then dev_t."""
    names = _BlockNames(blocks)
    out: dict[str, list[str]] = defaultdict(list)
    for entry in entries:
        name = names.of(entry)
        if name is not None and entry.path not in out[name]:
            out[name].append(entry.path)
    return out
