"""``QtDriveWatcher``: ``telemetry.drives.DriveMonitor`` events as Qt signals on the GUI thread.

The monitor calls back on its own thread (``telemetry-drives-monitor``). The watcher re-emits each
event through a private signal connected with ``Qt.QueuedConnection`` to a slot of this object,
which lives on the thread that created it (the GUI thread), so ``driveAdded``, ``driveRemoved``,
``driveChanged`` and ``drivesChanged`` always reach their receivers there.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from PySide6.QtCore import QObject, Qt, Signal, Slot

from telemetry.drives import Drive, DriveEvent, DriveMonitor

__all__ = ["QtDriveWatcher"]

log = logging.getLogger(__name__)


class QtDriveWatcher(QObject):
    """Watches drives on a background thread and reports on the GUI thread.

    Signals (all delivered on the thread that owns this object):

    * ``driveAdded(Drive)``: a drive was attached;
    * ``driveRemoved(Drive)``: a drive was removed (as it was last seen);
    * ``driveChanged(Drive, Drive | None)``: a drive changed, e.g. a card was inserted into a
      reader (the new state, then the previous one);
    * ``drivesChanged(list[Drive])``: after any of the above, every drive now known.

    ``all_drives=False`` (the default) reports only flash targets (removable, writable, with
    media), as a flashing app lists them; a reader slot gaining a card then arrives as
    ``driveAdded`` and losing it as ``driveRemoved``. ``all_drives=True`` reports every disk.
    """

    driveAdded = Signal(object)
    driveRemoved = Signal(object)
    driveChanged = Signal(object, object)
    drivesChanged = Signal(list)
    _event = Signal(object)

    def __init__(
        self,
        parent: QObject | None = None,
        *,
        rescan_interval: float = 30.0,
        all_drives: bool = False,
        debounce: float = 0.2,
        lister: Callable[[], list[Drive]] | None = None,
    ) -> None:
        super().__init__(parent)
        self._all = all_drives
        self._lock = threading.Lock()
        self._monitor = DriveMonitor(
            self._on_monitor_event,
            rescan_interval=rescan_interval,
            debounce=debounce,
            lister=lister,
        )
        self._event.connect(self._deliver, Qt.ConnectionType.QueuedConnection)
        self._known: dict[str, Drive] = {}
        self._started = False

    # ------------------------------------------------------------------ public API

    def drives(self) -> list[Drive]:
        """The drives known now (flash targets only unless ``all_drives``)."""
        return list(self._known.values())

    @property
    def running(self) -> bool:
        """Whether the monitor thread runs."""
        return self._monitor.running

    @property
    def has_event_source(self) -> bool:
        """Whether udev events are received (else only the periodic re-scan runs)."""
        return self._monitor.has_event_source

    def start(self) -> None:
        """Take the first snapshot (no signals for drives already present) and start watching."""
        if self._started:
            return
        self._monitor.start()
        self._started = True
        self._known = {d.device: d for d in self._monitor.drives if self._wanted(d)}

    def stop(self, timeout: float = 2.0) -> bool:
        """Stop the monitor thread; ``True`` when it ended within ``timeout`` seconds.

        Events already queued for the GUI thread are dropped.
        """
        self._started = False
        return self._monitor.stop(timeout)

    def rescan(self) -> None:
        """Ask for an immediate scan (e.g. after the app wrote a drive)."""
        self._monitor.rescan()

    # ------------------------------------------------------------------ internals

    def _wanted(self, drive: Drive) -> bool:
        return self._all or drive.is_flash_target

    def _on_monitor_event(self, event: DriveEvent) -> None:
        """Runs on the monitor thread: hand the event to the GUI thread."""
        try:
            self._event.emit(event)
        except RuntimeError:  # the QObject is gone (app shutting down): nothing to tell
            log.debug("drive watcher deleted; event for %s dropped", event.device)

    @Slot(object)
    def _deliver(self, event: DriveEvent) -> None:
        """Runs on the GUI thread."""
        if not self._started:
            return
        drive = event.drive
        known = self._known.get(drive.device)
        wanted = event.action != "removed" and self._wanted(drive)
        if wanted and known is None:
            self._known[drive.device] = drive
            self.driveAdded.emit(drive)
        elif wanted and known is not None:
            self._known[drive.device] = drive
            self.driveChanged.emit(drive, known)
        elif known is not None:
            del self._known[drive.device]
            self.driveRemoved.emit(known)
        else:
            return
        self.drivesChanged.emit(self.drives())
