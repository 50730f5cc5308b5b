"""The operating system as psutil reports it: the one home of psutil in the core.

Small functions that each ask psutil one question and turn its failures into a safe answer,
so the rest of the package neither imports psutil nor repeats its error handling.
"""

from __future__ import annotations

import logging
import os
from types import ModuleType
from typing import NamedTuple

log = logging.getLogger("telemetry.system")


def _psutil() -> ModuleType:
    # Imported on first use (about 15 ms): an app's start-up and track() never need it. A
    # plain import statement, so that PyInstaller still sees and bundles psutil.
    import psutil

    return psutil


__all__ = [
    "Partition",
    "disk_partitions",
    "disk_total",
    "network_interfaces_up",
    "pid_alive",
    "procfs_path",
]


class Partition(NamedTuple):
    """A mounted partition (the fields of psutil's ``disk_partitions`` entries)."""

    device: str
    mountpoint: str
    fstype: str
    opts: str


def network_interfaces_up() -> bool:
    """True when any non-loopback network interface is up.

    When the interface table cannot be read the answer is True: the upload itself then tells
    whether the network is there, which is better than never trying.
    """
    try:
        stats = _psutil().net_if_stats()
    except OSError as exc:
        log.debug("cannot read interface state: %s", exc)
        return True
    return any(s.isup for name, s in stats.items() if not _is_loopback_name(name))


def _is_loopback_name(name: str) -> bool:
    return name == "lo" or (name.startswith("lo") and name[2:].isdigit()) or "Loopback" in name


def pid_alive(pid: int) -> bool:
    """True when a process with this id exists (this process always does)."""
    return pid == os.getpid() or bool(_psutil().pid_exists(pid))


def disk_partitions(*, all: bool = False) -> list[Partition]:
    """The mounted partitions (``all``: pseudo and duplicate mounts too), as psutil lists them
    (on Linux from ``psutil.PROCFS_PATH``); empty when they cannot be read."""
    try:
        parts = _psutil().disk_partitions(all=all)
    except (OSError, RuntimeError) as exc:  # an unreadable procfs: no mount information
        log.debug("psutil.disk_partitions failed: %s", exc)
        return []
    return [Partition(p.device, p.mountpoint, p.fstype, p.opts) for p in parts]


def disk_total(mountpoint: str) -> int | None:
    """The size in bytes of the filesystem mounted at ``mountpoint`` (None: unreadable)."""
    try:
        return int(_psutil().disk_usage(mountpoint).total)
    except OSError:
        return None


def procfs_path() -> str:
    """Where procfs is read from (``psutil.PROCFS_PATH``; tests point it at a recording)."""
    return str(_psutil().PROCFS_PATH)
