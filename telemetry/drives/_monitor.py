"""Hot-plug: ``DriveMonitor`` turns block uevents and a slow re-scan into debounced drive events."""

from __future__ import annotations

import contextlib
import logging
import os
import select
import threading
import time
from collections.abc import Callable
from types import TracebackType
from typing import Protocol

from ._model import Drive, DriveEvent

__all__ = ["DriveMonitor", "EventSource"]

_log = logging.getLogger(__name__)

#: However busy the bus, a burst of uevents is turned into drive events within this time.
_MAX_DEBOUNCE_DELAY = 0.75
#: Without a uevent source (no pyudev, no netlink) the re-scan is the only signal.
_POLL_INTERVAL_WITHOUT_EVENTS = 2.0


class EventSource(Protocol):
    """What the monitor needs from a uevent source (see ``_udev.UdevEventSource``)."""

    def filenos(self) -> tuple[int, ...]: ...

    def read_pending(self) -> list[tuple[str, str, str]]: ...

    def close(self) -> None: ...


class DriveMonitor:
    """Reports drives attached, changed (e.g. a card inserted into a reader) and removed.

    A pyudev netlink monitor is read on a background thread (named
    ``telemetry-drives-monitor``, daemon); every burst of block uevents is debounced by
    ``debounce`` seconds (never delayed more than 0.75 s) and then answered by a fresh
    ``list_drives(all=True)``, diffed against the previous one, so devices vanishing mid-read
    simply show up as removed. A re-scan every ``rescan_interval`` seconds is the safety net
    for lost uevents; without pyudev it is the only signal (at least every 2 s then).

    ``callback(DriveEvent)`` runs on the monitor thread; exceptions it raises are logged.
    No events are sent for the drives present at ``start()``; read them from ``drives``.
    """

    def __init__(
        self,
        callback: Callable[[DriveEvent], None],
        *,
        rescan_interval: float = 30.0,
        debounce: float = 0.2,
        lister: Callable[[], list[Drive]] | None = None,
        event_source: Callable[[], EventSource | None] | None = None,
    ) -> None:
        """``lister`` and ``event_source`` replace ``list_drives(all=True)`` and the udev
        monitor (for other platforms, embedding and tests)."""
        if rescan_interval <= 0 or debounce < 0:
            raise ValueError("rescan_interval must be > 0 and debounce >= 0")
        self._callback = callback
        self._rescan_interval = float(rescan_interval)
        self._debounce = float(debounce)
        self._lister = lister
        self._event_source_factory = event_source
        self._lock = threading.Lock()
        self._snapshot: dict[str, Drive] = {}
        self._thread: threading.Thread | None = None
        self._source: EventSource | None = None
        self._wake_r = -1
        self._wake_w = -1
        self._stopping = threading.Event()

    # -- public API -------------------------------------------------------------------
    @property
    def drives(self) -> list[Drive]:
        """The drives as of the last scan (every drive, not only flash targets)."""
        with self._lock:
            return list(self._snapshot.values())

    @property
    def running(self) -> bool:
        """Whether the monitor thread is alive."""
        return self._thread is not None and self._thread.is_alive()

    @property
    def has_event_source(self) -> bool:
        """Whether uevents are received (else only the periodic re-scan runs)."""
        return self._source is not None

    def start(self) -> None:
        """Open the uevent source, take the initial snapshot, start the thread."""
        if self._thread is not None:
            raise RuntimeError("DriveMonitor.start() called twice")
        self._stopping.clear()
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self._source = self._open_source()  # before the snapshot: no event can fall between
        with self._lock:
            self._snapshot = {d.device: d for d in self._list() or []}
        self._thread = threading.Thread(
            target=self._run, name="telemetry-drives-monitor", daemon=True
        )
        self._thread.start()

    def stop(self, timeout: float = 2.0) -> bool:
        """Stop the thread; ``True`` when it ended within ``timeout`` seconds."""
        thread = self._thread
        if thread is None:
            return True
        self._stopping.set()
        self._wake()
        thread.join(timeout)
        stopped = not thread.is_alive()
        if stopped:
            self._close_fds()
            self._thread = None
        return stopped

    def rescan(self) -> None:
        """Ask the thread for an immediate scan (e.g. after the app wrote a drive)."""
        self._force_scan = True
        self._wake()

    def __enter__(self) -> DriveMonitor:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- internals --------------------------------------------------------------------
    _force_scan = False

    def _open_source(self) -> EventSource | None:
        if self._event_source_factory is not None:
            return self._event_source_factory()
        try:
            from ._udev import UdevEventSource
        except ImportError:
            return None
        try:
            return UdevEventSource()
        except Exception as exc:  # noqa: BLE001 - no netlink (sandbox): fall back to polling
            _log.info("no udev event source, polling instead: %s", exc)
            return None

    def _list(self) -> list[Drive] | None:
        try:
            if self._lister is not None:
                return self._lister()
            from . import list_drives

            return list_drives(all=True)
        except Exception as exc:  # noqa: BLE001 - a failed scan keeps the previous state
            _log.warning("drive scan failed: %s", exc)
            return None

    def _wake(self) -> None:
        with contextlib.suppress(OSError):
            os.write(self._wake_w, b"x")

    def _close_fds(self) -> None:
        if self._source is not None:
            self._source.close()
            self._source = None
        for fd in (self._wake_r, self._wake_w):
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self._wake_r = self._wake_w = -1

    def _run(self) -> None:
        interval = self._rescan_interval
        if self._source is None:
            interval = min(interval, _POLL_INTERVAL_WITHOUT_EVENTS)
        next_rescan = time.monotonic() + interval
        deadline: float | None = None
        first_event: float | None = None
        removed_disks: set[str] = set()
        try:
            while not self._stopping.is_set():
                now = time.monotonic()
                wake_at = next_rescan if deadline is None else min(deadline, next_rescan)
                source_fds = self._source.filenos() if self._source is not None else ()
                fds = [self._wake_r, *source_fds]
                try:
                    ready, _, _ = select.select(fds, [], [], max(0.0, wake_at - now))
                except (OSError, ValueError) as exc:
                    _log.warning("drive monitor wait failed: %s", exc)
                    time.sleep(0.1)
                    ready = []
                if self._wake_r in ready:
                    with contextlib.suppress(OSError):
                        os.read(self._wake_r, 4096)
                    if self._stopping.is_set():
                        break
                now = time.monotonic()
                if self._source is not None and any(fd in ready for fd in source_fds):
                    for action, name, devtype in self._source.read_pending():
                        if action == "remove" and devtype == "disk":
                            removed_disks.add(name)
                        elif action == "add" and devtype == "disk":
                            removed_disks.discard(name)
                    if first_event is None:
                        first_event = now
                    deadline = min(now + self._debounce, first_event + _MAX_DEBOUNCE_DELAY)
                if self._force_scan:
                    self._force_scan = False
                    deadline = now
                if (deadline is not None and now >= deadline) or now >= next_rescan:
                    self._scan_and_emit(removed_disks)
                    removed_disks = set()
                    deadline = first_event = None
                    next_rescan = time.monotonic() + interval
        except Exception:  # noqa: BLE001 - logged; a bug must not kill the host app silently
            _log.exception("drive monitor thread crashed")

    def _scan_and_emit(self, removed_disks: set[str]) -> None:
        drives = self._list()
        if drives is None:
            return
        current = {d.device: d for d in drives if os.path.basename(d.device) not in removed_disks}
        with self._lock:
            previous = self._snapshot
            self._snapshot = current
        events: list[DriveEvent] = []
        for device, drive in previous.items():
            if device not in current:
                events.append(DriveEvent("removed", drive))
        for device, drive in current.items():
            before = previous.get(device)
            if before is None:
                events.append(DriveEvent("attached", drive))
            elif before != drive:
                events.append(DriveEvent("changed", drive, before))
        for event in events:
            if self._stopping.is_set():
                return
            try:
                self._callback(event)
            except Exception:  # noqa: BLE001 - logged; a bad callback must not stop us
                _log.exception("drive monitor callback failed for %s", event.device)
