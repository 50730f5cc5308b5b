"""The Linux backend: block devices from sysfs, udev's extras and uevents through pyudev."""

# This is the only module of the package that imports pyudev. Classification relies on sysfs
# attributes and the parent chain, read directly (the files libudev itself would read, once
# per scan, which is what makes a full scan faster than ``lsblk``); udev ``ID_*`` properties
# come from pyudev's view of the udev database and are only extra information: they are
# missing where no udev daemon runs. Hot-plug uevents arrive through a pyudev ``Monitor``.

from __future__ import annotations

import logging
import os
import re
import select
import threading
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

import pyudev

from ._classify import (
    DiskFacts,
    MmcFacts,
    PartitionFacts,
    ScsiFacts,
    UsbFacts,
    classify,
    decode_udev_string,
    resolve_system_disks,
)
from ._model import Drive, Mountpoint
from ._mounts import MountEntry, device_numbers, read_mounts, read_swaps

__all__ = ["UdevEventSource", "collect_drives"]

_log = logging.getLogger(__name__)

#: drivelist leaves out optical drives and RAM disks; so do we (floppies too).
_SKIPPED_PREFIXES = ("sr", "ram", "fd")
_SYS: Final = "/sys"
_SYS_DEVICES: Final = "/sys/devices"
_SYS_CLASS_BLOCK: Final = "/sys/class/block"
#: A bound on one read of a monitor (the socket keeps the rest for the next wake-up).
_MAX_EVENTS_PER_READ: Final = 1000
#: Errors a device that vanishes mid-read can raise through pyudev/libudev.
_VANISHED = (pyudev.DeviceNotFoundError, OSError, ValueError, KeyError, UnicodeDecodeError)


def _read(path: str) -> str | None:
    """A sysfs file as stripped text, ``None`` when absent, unreadable or vanished.

    Plain ``os.open``/``os.read`` (sysfs attributes fit in one page): about three times
    cheaper than ``open()`` with its buffered reader, and this runs ~10 times per disk.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        return os.read(fd, 65536).decode("utf-8", "replace").strip()
    except OSError:
        return None
    finally:
        os.close(fd)


def _read_int(path: str, default: int = 0) -> int:
    value = _read(path)
    try:
        return int(value) if value else default
    except ValueError:
        return default


def _parse_uevent(text: str | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in (text or "").splitlines():
        key, sep, value = line.partition("=")
        if sep:
            out[key] = value
    return out


def _fs_label(props: Mapping[str, str]) -> str | None:
    return decode_udev_string(props.get("ID_FS_LABEL_ENC")) or (props.get("ID_FS_LABEL") or None)


class _UdevDatabase:
    """udev's properties for a device, through pyudev, when a udev daemon has run.

    Without ``/run/udev/data`` (containers, CI, sandboxes) there is nothing to read and no
    libudev context is created at all; under umockdev the properties are in ``uevent``.
    """

    def __init__(self) -> None:
        self._local = threading.local()

    @staticmethod
    def present() -> bool:
        return os.path.isdir("/run/udev/data")

    def context(self) -> Any:
        ctx = getattr(self._local, "ctx", None)
        if ctx is None:  # one libudev context per thread: libudev is not thread-safe
            ctx = pyudev.Context()
            self._local.ctx = ctx
        return ctx

    def properties(self, sys_path: str) -> dict[str, str]:
        try:
            dev = pyudev.Devices.from_sys_path(self.context(), sys_path)
            return {str(k): str(v) for k, v in dev.properties.items()}
        except _VANISHED:
            return {}


_UDEV_DB = _UdevDatabase()


@dataclass
class _Node:
    """One sysfs device directory: its ``subsystem`` link, ``uevent`` and ``driver``."""

    path: str
    subsystem: str | None
    uevent: dict[str, str]

    @property
    def devtype(self) -> str | None:
        return self.uevent.get("DEVTYPE")

    @property
    def driver(self) -> str | None:
        driver = self.uevent.get("DRIVER")
        if driver:
            return driver
        try:
            return os.path.basename(os.readlink(os.path.join(self.path, "driver")))
        except OSError:
            return None

    def attr(self, name: str) -> str | None:
        return _read(os.path.join(self.path, name))


class _Sysfs:
    """Reads device directories once per scan (parents are shared between disks)."""

    def __init__(self) -> None:
        self._nodes: dict[str, _Node | None] = {}

    def node(self, path: str) -> _Node | None:
        if path in self._nodes:
            return self._nodes[path]
        uevent_text = _read(os.path.join(path, "uevent"))
        node: _Node | None = None
        if uevent_text is not None:
            try:
                subsystem: str | None = os.path.basename(
                    os.readlink(os.path.join(path, "subsystem"))
                )
            except OSError:
                subsystem = None
            node = _Node(path, subsystem, _parse_uevent(uevent_text))
        self._nodes[path] = node
        return node

    def ancestors(self, path: str) -> list[_Node]:
        """Parent device directories, nearest first, up to ``/sys/devices``."""
        out: list[_Node] = []
        current = os.path.dirname(path)
        while current.startswith(_SYS_DEVICES) and len(current) > len(_SYS_DEVICES):
            node = self.node(current)
            if node is not None and node.subsystem:
                out.append(node)
            current = os.path.dirname(current)
        return out


def _parent_chain(sysfs: _Sysfs, path: str) -> tuple[tuple[str, ...], dict[str, _Node]]:
    """The subsystems above a disk and the interesting parents, by role."""
    subsystems: list[str] = []
    found: dict[str, _Node] = {}
    for anc in sysfs.ancestors(path):
        subsystem = anc.subsystem or ""
        subsystems.append(subsystem)
        role = {
            ("scsi", "scsi_device"): "scsi_device",
            ("scsi", "scsi_host"): "scsi_host",
            ("usb", "usb_interface"): "usb_interface",
            ("usb", "usb_device"): "usb_device",
        }.get((subsystem, anc.devtype or ""))
        if role is None and subsystem in ("mmc", "mmc_host", "nvme", "virtio"):
            role = subsystem
        if role is not None and role not in found:
            found[role] = anc
    return tuple(subsystems), found


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


@dataclass
class _Block:
    """One block device (disk or partition) of the current enumeration."""

    name: str
    kind: str  # "disk" or "partition"
    path: str  # real sysfs path, /sys/devices/...
    props: dict[str, str]
    parent_disk: str | None = None
    devnum: tuple[int, int] | None = None
    slaves: list[str] = field(default_factory=list)

    @property
    def devpath(self) -> str:
        return self.path[len(_SYS) :]

    @property
    def devnode(self) -> str:
        devname = self.props.get("DEVNAME") or self.name
        return devname if devname.startswith("/") else f"/dev/{devname}"


def _disk_facts(
    sysfs: _Sysfs, block: _Block, partitions: list[_Block], luns: Mapping[str, int]
) -> DiskFacts:
    props = block.props
    path = block.path
    subsystems: tuple[str, ...] = ()
    found: dict[str, _Node] = {}
    if not block.devpath.startswith("/devices/virtual/"):  # loop, zram, dm …: no parents
        subsystems, found = _parent_chain(sysfs, path)
    usb = scsi = mmc = None
    nvme_model: str | None = None
    usb_dev = found.get("usb_device")
    iface = found.get("usb_interface")
    if usb_dev is not None or iface is not None:
        usb = UsbFacts(
            vendor_id=usb_dev.attr("idVendor") if usb_dev else None,
            product_id=usb_dev.attr("idProduct") if usb_dev else None,
            manufacturer=usb_dev.attr("manufacturer") if usb_dev else None,
            product=usb_dev.attr("product") if usb_dev else None,
            version=usb_dev.attr("version") if usb_dev else None,
            speed=usb_dev.attr("speed") if usb_dev else None,
            interface_driver=iface.driver if iface else None,
            interface_path=iface.path if iface else None,
        )
    sdev = found.get("scsi_device")
    if sdev is not None:
        host = found.get("scsi_host")
        proc_name = None
        if host is not None:
            host_name = os.path.basename(host.path)
            proc_name = host.attr(f"scsi_host/{host_name}/proc_name")
        try:
            lun: int | None = int(os.path.basename(sdev.path).rsplit(":", 1)[-1])
        except ValueError:
            lun = None
        scsi = ScsiFacts(
            vendor=sdev.attr("vendor"), model=sdev.attr("model"), lun=lun, host_proc_name=proc_name
        )
    card = found.get("mmc")
    if card is not None:
        host = found.get("mmc_host")
        host_parent = sysfs.node(os.path.dirname(os.path.dirname(host.path))) if host else None
        mmc = MmcFacts(
            card_type=card.attr("type") or card.uevent.get("MMC_TYPE") or None,
            name=card.attr("name") or card.uevent.get("MMC_NAME"),
            host_driver=host_parent.driver if host_parent else None,
        )
    if "nvme" in found:
        nvme_model = found["nvme"].attr("model") or ""
    size = _read_int(f"{path}/size") * 512
    lbs = _read_int(f"{path}/queue/logical_block_size", 512)
    ptable = None
    if partitions and not props.get("ID_PART_TABLE_TYPE") and size:
        ptable = _sniff_partition_table(block.devnode, lbs)
    iface_path = usb.interface_path if usb is not None else None
    return DiskFacts(
        name=block.name,
        devnode=block.devnode,
        devpath=block.devpath,
        size=size,
        read_only=_read_int(f"{path}/ro") == 1,
        removable=_read_int(f"{path}/removable") == 1,
        logical_block_size=lbs,
        physical_block_size=_read_int(f"{path}/queue/physical_block_size", lbs),
        subsystems=subsystems,
        usb=usb,
        scsi=scsi,
        mmc=mmc,
        nvme_model=nvme_model,
        virtio="virtio" in found,
        luns_on_interface=luns.get(iface_path, 1) if iface_path else 1,
        properties=props,
        partitions=tuple(
            PartitionFacts(
                name=p.name,
                fs_label=_fs_label(p.props),
                part_label=decode_udev_string(p.props.get("ID_PART_ENTRY_NAME")),
            )
            for p in partitions
        ),
        partition_table_type=ptable,
        loop_backing_file=(
            _read(f"{path}/loop/backing_file") if block.name.startswith("loop") and size else None
        ),
        fs_label=_fs_label(props),
    )


def _usb_interface_path(path: str) -> str | None:
    """The sysfs path of the USB interface a SCSI disk hangs off (string test, no I/O)."""
    marker = path.find("/host")
    if "/usb" not in path or marker < 0:
        return None
    return path[:marker]


def _enumerate() -> list[_Block]:
    """Block devices from ``/sys/class/block`` (what libudev's enumerator scans)."""
    blocks: list[_Block] = []
    use_db = _UDEV_DB.present()
    try:
        entries = sorted(os.listdir(_SYS_CLASS_BLOCK))
    except OSError:
        return blocks
    for name in entries:
        if name.startswith(_SKIPPED_PREFIXES):
            continue
        link = os.path.join(_SYS_CLASS_BLOCK, name)
        try:
            path = os.path.normpath(os.path.join(_SYS_CLASS_BLOCK, os.readlink(link)))
        except OSError:
            path = os.path.realpath(link)
        props = _parse_uevent(_read(os.path.join(path, "uevent")))
        kind = props.get("DEVTYPE")
        if kind not in ("disk", "partition"):
            continue  # vanished (no uevent) or not a block disk/partition
        if use_db:
            props.update(_UDEV_DB.properties(path))
        block = _Block(name=name, kind=kind, path=path, props=props)
        if kind == "partition":
            block.parent_disk = os.path.basename(os.path.dirname(path))
        try:
            block.devnum = (int(props["MAJOR"]), int(props["MINOR"]))
        except (KeyError, ValueError):
            block.devnum = None
        if kind == "disk" and name.startswith(("dm-", "md")):
            try:
                block.slaves = sorted(os.listdir(os.path.join(path, "slaves")))
            except OSError:
                block.slaves = []
        blocks.append(block)
    return blocks


def _underlying_disks(blocks: Mapping[str, _Block]) -> dict[str, set[str]]:
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


def _resolve_mounts(
    entries: Iterable[MountEntry], blocks: Mapping[str, _Block]
) -> dict[str, list[str]]:
    """Mount entries → block name → mount paths, matching by name, symlink, then dev_t."""
    by_devnum = {b.devnum: b.name for b in blocks.values() if b.devnum}
    # /dev/mapper/NAME exists without udev too (libdevmapper makes it): match dm/name.
    dm_names = {
        dm_name: b.name
        for b in blocks.values()
        if b.name.startswith("dm-") and (dm_name := _read(f"{b.path}/dm/name"))
    }
    out: dict[str, list[str]] = defaultdict(list)
    for entry in entries:
        name: str | None = None
        if entry.device.startswith("/dev/mapper/"):
            name = dm_names.get(entry.device[len("/dev/mapper/") :])
        if name is None and entry.device.startswith("/dev/"):
            base = os.path.basename(entry.device)
            if base in blocks:
                name = base
            else:
                real = os.path.basename(os.path.realpath(entry.device))
                name = real if real in blocks else None
        if name is None:
            numbers = device_numbers(entry.device)
            if numbers is None and entry.device == "/dev/root":
                numbers = device_numbers(entry.path)
            name = by_devnum.get(numbers) if numbers else None
        if name is not None and entry.path not in out[name]:
            out[name].append(entry.path)
    return out


def collect_drives() -> list[Drive]:
    """Every whole disk (and loop, zram, dm, md …) the kernel knows, classified."""
    sysfs = _Sysfs()
    blocks_list = _enumerate()
    blocks = {b.name: b for b in blocks_list}
    partitions: dict[str, list[_Block]] = defaultdict(list)
    luns: dict[str, int] = defaultdict(int)
    for b in blocks_list:
        if b.kind == "partition" and b.parent_disk:
            partitions[b.parent_disk].append(b)
        elif b.kind == "disk":
            iface = _usb_interface_path(b.path)
            if iface:
                luns[iface] += 1
    disks_of = _underlying_disks(blocks)
    mounted = _resolve_mounts([*read_mounts(), *read_swaps()], blocks)
    system = resolve_system_disks(mounted, disks_of)
    mounts_of_disk: dict[str, list[Mountpoint]] = defaultdict(list)
    for name, paths in mounted.items():
        label = _fs_label(blocks[name].props) if name in blocks else None
        for disk in sorted(disks_of.get(name, {name})):
            for mount_path in paths:
                mp = Mountpoint(mount_path, label)
                if mp not in mounts_of_disk[disk]:
                    mounts_of_disk[disk].append(mp)
    drives: list[Drive] = []
    for block in blocks_list:
        if block.kind != "disk":
            continue
        try:
            parts = sorted(partitions.get(block.name, []), key=lambda p: _natural(p.name))
            facts = _disk_facts(sysfs, block, parts, luns)
            drives.append(
                classify(
                    facts,
                    mountpoints=mounts_of_disk.get(block.name, []),
                    partition_mounts={
                        p.name: mounted[p.name][0] for p in parts if mounted.get(p.name)
                    },
                    system_backing=block.name in system,
                    enumerator="udev",
                )
            )
        except _VANISHED as exc:
            _log.debug("disk %s vanished while being read: %s", block.name, exc)
    drives.sort(key=lambda d: _natural(d.device))
    return drives


def _natural(text: str) -> tuple[tuple[int, int | str], ...]:
    """Sort key putting ``sdb2`` before ``sdb10`` and ``loop2`` before ``loop10``."""
    return tuple(
        (0, int(chunk)) if chunk.isdigit() else (1, chunk) for chunk in re.findall(r"\d+|\D+", text)
    )


class UdevEventSource:
    """Netlink uevent monitors for block devices, read without blocking.

    udev's monitor is always opened; when no udev daemon runs (containers, CI, umockdev
    test beds) the kernel's own uevents are read as well, since nothing would rebroadcast
    them. With a udev daemon only udev's events are used: its database is up to date by the
    time they arrive. Duplicates are harmless: the monitor debounces and re-scans.
    """

    def __init__(self) -> None:
        self.context = pyudev.Context()
        sources = ["udev"]
        if not os.path.exists("/run/udev/control"):
            sources.append("kernel")
        self._monitors: list[Any] = []
        for source in sources:
            monitor = pyudev.Monitor.from_netlink(self.context, source=source)
            monitor.filter_by("block")
            monitor.start()
            self._monitors.append(monitor)

    def filenos(self) -> tuple[int, ...]:
        """The sockets to wait on (``select``/``poll``)."""
        return tuple(int(m.fileno()) for m in self._monitors)

    def read_pending(self) -> list[tuple[str, str, str]]:
        """Every queued event as ``(action, disk name, devtype)``; a partition's event names
        its disk (devtype ``partition``). Unreadable events become ``("change", "", "")``."""
        out: list[tuple[str, str, str]] = []
        for monitor in self._monitors:
            out.extend(self._drain(monitor))
        return out

    @staticmethod
    def _drain(monitor: Any) -> list[tuple[str, str, str]]:
        out: list[tuple[str, str, str]] = []
        fd = int(monitor.fileno())
        for _ in range(_MAX_EVENTS_PER_READ):
            if not select.select([fd], [], [], 0)[0]:
                break
            try:
                dev = monitor.poll(timeout=0)
            except _VANISHED as exc:  # malformed or vanished: "something changed"
                _log.debug("unreadable uevent: %s", exc)
                out.append(("change", "", ""))
                continue
            if dev is None:  # consumed but dropped by libudev's filter
                out.append(("change", "", ""))
                continue
            try:
                name = str(dev.sys_name)
                devtype = str(dev.device_type or "")
                if devtype == "partition":
                    name = os.path.basename(os.path.dirname(str(dev.device_path)))
                out.append((str(dev.action or "change"), name, devtype))
            except _VANISHED:
                out.append(("change", "", ""))
        return out

    def close(self) -> None:
        """Stop receiving; the sockets are closed."""
        for monitor in self._monitors:
            try:
                monitor.stop()
            except Exception as exc:  # noqa: BLE001 - closing must never raise
                _log.debug("closing a udev monitor failed: %s", exc)
        self._monitors = []
