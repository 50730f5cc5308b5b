"""Client listener to Qt signal: consent, notice and upload changes reach widgets on the GUI thread.

``client.add_listener`` callbacks may run on any thread (the uploader's, the caller of
``set_consent``). :class:`ClientWatcher` turns each call into its ``changed`` signal, emitted
from that thread and so queued to receivers that live on the GUI thread. The listener holds only
a weak reference, and unsubscribes when the watcher is destroyed.
"""

from __future__ import annotations

import contextlib
import logging
import weakref
from collections.abc import Callable

from PySide6.QtCore import QObject, Signal

from telemetry._protocol import TelemetryClient

__all__ = ["ClientWatcher"]

log = logging.getLogger(__name__)


class ClientWatcher(QObject):
    """Emits ``changed()`` whenever the client reports a consent, notice or upload change."""

    changed = Signal()

    def __init__(self, client: TelemetryClient, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._unsubscribe: Callable[[], None] | None = None
        ref = weakref.ref(self)

        def _listener() -> None:
            watcher = ref()
            if watcher is None:
                return
            with contextlib.suppress(RuntimeError):  # the C++ object is gone
                watcher.changed.emit()

        try:
            unsubscribe = client.add_listener(_listener)
        except Exception:  # telemetry never breaks the app
            log.exception("client.add_listener failed")
        else:
            self._unsubscribe = unsubscribe
            self.destroyed.connect(_make_unsubscriber(unsubscribe))

    def detach(self) -> None:
        """Stop listening now."""
        unsubscribe, self._unsubscribe = self._unsubscribe, None
        if unsubscribe is not None:
            _call_quietly(unsubscribe)


def _make_unsubscriber(unsubscribe: Callable[[], None]) -> Callable[..., None]:
    def _run(*_: object) -> None:
        _call_quietly(unsubscribe)

    return _run


def _call_quietly(fn: Callable[[], None]) -> None:
    try:
        fn()
    except Exception:  # already unsubscribed, client closed
        log.debug("unsubscribing a client listener failed", exc_info=True)
