"""pyudev, and nothing else: udev's database properties of a device and block uevents.

This is the only module of the package that imports pyudev (importing it raises
``ImportError`` where pyudev is missing: the package then uses the psutil fallback). udev
``ID_*`` properties come from pyudev's view of the udev database and are only extra
information: they are missing where no udev daemon runs. Hot-plug uevents arrive through
pyudev netlink monitors.
"""

from __future__ import annotations

import logging
import os
import select
import threading
from typing import Any, Final

import pyudev

__all__ = ["UDEV_DB", "VANISHED", "UdevDatabase", "UdevEventSource"]

_log = logging.getLogger(__name__)

#: A bound on one read of a monitor (the socket keeps the rest for the next wake-up).
_MAX_EVENTS_PER_READ: Final = 1000
#: Errors a device that vanishes mid-read can raise through pyudev/libudev.
VANISHED: Final = (pyudev.DeviceNotFoundError, OSError, ValueError, KeyError, UnicodeDecodeError)

#: What an unreadable event is reported as: "something changed", re-scan.
_SOMETHING_CHANGED: Final = ("change", "", "")


class UdevDatabase:
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
        except VANISHED:
            return {}


UDEV_DB: Final = UdevDatabase()


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
            except VANISHED as exc:  # malformed or vanished: "something changed"
                _log.debug("unreadable uevent: %s", exc)
                out.append(_SOMETHING_CHANGED)
                continue
            if dev is None:  # consumed but dropped by libudev's filter
                out.append(_SOMETHING_CHANGED)
                continue
            out.append(_event_of(dev))
        return out

    def close(self) -> None:
        """Stop receiving; the sockets are closed."""
        for monitor in self._monitors:
            try:
                monitor.stop()
            except Exception as exc:  # noqa: BLE001 - closing must never raise
                _log.debug("closing a udev monitor failed: %s", exc)
        self._monitors = []


def _event_of(dev: Any) -> tuple[str, str, str]:
    """``(action, disk name, devtype)`` of a pyudev device from a monitor."""
    try:
        name = str(dev.sys_name)
        devtype = str(dev.device_type or "")
        if devtype == "partition":
            name = os.path.basename(os.path.dirname(str(dev.device_path)))
        return str(dev.action or "change"), name, devtype
    except VANISHED:
        return _SOMETHING_CHANGED
