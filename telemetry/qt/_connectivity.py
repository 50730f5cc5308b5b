"""``QtConnectivity``: Qt's network reachability feeding the client's connectivity hook.

``QNetworkInformation`` (NetworkManager, glib, connman ... on Linux; the OS APIs elsewhere)
reports reachability changes as they happen; each one is passed to ``client.set_online()`` so
the uploader stops trying while offline and retries at once when the network comes back. When
Qt has no backend here, the core's detector (a check that a network interface is up) is
polled on a ``QTimer`` instead and fed through the same hook.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable

from PySide6.QtCore import QObject, QTimer, Signal, Slot
from PySide6.QtNetwork import QNetworkInformation

from telemetry._delivery import Connectivity, is_loopback_url
from telemetry._protocol import TelemetryClient
from telemetry._system import network_interfaces_up as interfaces_up

__all__ = ["QtConnectivity"]

log = logging.getLogger(__name__)

_Reach = QNetworkInformation.Reachability


class QtConnectivity(QObject):
    """Reports network reachability to ``client.set_online()``.

    Args:
        client: the telemetry client (its ``set_online`` and ``endpoint_url`` are used).
        parent: the Qt parent.
        backend: load this ``QNetworkInformation`` backend by name instead of the default one
            (e.g. ``"networkmanager"``); when it cannot be loaded, the fallback is used.
        poll_interval: seconds between two checks of the core detector in fallback mode.
        detector: the fallback's interface check (default: whether a network interface
            other than loopback is up).

    Qt's ``Online`` means online, ``Disconnected`` offline; ``Local``, ``Site`` and
    ``Unknown`` hand the decision back to the core detector (``None``). An endpoint on this
    machine (127.0.0.1) is never reported offline. ``onlineChanged(bool)`` fires when the
    effective answer changes.
    """

    onlineChanged = Signal(bool)

    def __init__(
        self,
        client: TelemetryClient,
        parent: QObject | None = None,
        *,
        backend: str | None = None,
        poll_interval: float = 5.0,
        detector: Callable[[], bool] = interfaces_up,
    ) -> None:
        super().__init__(parent)
        self._client = client
        self._backend_request = backend
        self._url: str = client.endpoint_url or ""
        self._loopback = is_loopback_url(self._url)
        self._info: QNetworkInformation | None = None
        self._fallback: Connectivity | None = None
        self._detector = detector
        self._timer = QTimer(self)
        self._timer.setInterval(max(50, int(poll_interval * 1000)))
        self._timer.timeout.connect(self._poll)
        self._online: bool | None = None
        self._running = False

    # ------------------------------------------------------------------ public API

    @property
    def online(self) -> bool | None:
        """What was last passed to ``client.set_online`` (``None``: unknown, detector decides)."""
        return self._online

    @property
    def backend_name(self) -> str | None:
        """The Qt backend in use, or ``None`` when the core detector is the fallback."""
        return self._info.backendName() if self._info is not None else None

    @property
    def using_fallback(self) -> bool:
        """True when Qt has no reachability backend and the core detector is polled."""
        return self._running and self._info is None

    @property
    def running(self) -> bool:
        """Between :meth:`start` and :meth:`stop`."""
        return self._running

    def start(self) -> None:
        """Load a Qt backend (or start the fallback) and report the current state."""
        if self._running:
            return
        self._running = True
        info = self._load_backend()
        if info is not None:
            self._info = info
            info.reachabilityChanged.connect(self._on_reachability)
            self._on_reachability(info.reachability())
            return
        log.info("no Qt network information backend; polling the core detector")
        self._fallback = Connectivity(self._url, detector=self._detector)
        self._poll()
        self._timer.start()

    def stop(self) -> None:
        """Stop reporting and hand the decision back to the core detector."""
        if not self._running:
            return
        self._running = False
        self._timer.stop()
        if self._info is not None:
            with contextlib.suppress(RuntimeError, TypeError):  # already gone
                self._info.reachabilityChanged.disconnect(self._on_reachability)
            self._info = None
        self._fallback = None
        self._online = None
        self._feed(None)

    # ------------------------------------------------------------------ internals

    def _load_backend(self) -> QNetworkInformation | None:
        try:
            if self._backend_request is not None:
                loaded = QNetworkInformation.loadBackendByName(self._backend_request)
            else:
                loaded = QNetworkInformation.loadDefaultBackend()
            info = QNetworkInformation.instance() if loaded else None
        except Exception:  # a broken plugin must not stop the app
            log.exception("loading a Qt network information backend failed")
            return None
        if info is None:
            return None
        if self._backend_request is not None and (
            info.backendName().lower() != self._backend_request.lower()
        ):
            return None
        if not info.supports(QNetworkInformation.Feature.Reachability):
            return None
        return info

    @Slot(QNetworkInformation.Reachability)
    def _on_reachability(self, reachability: QNetworkInformation.Reachability) -> None:
        online: bool | None
        if reachability == _Reach.Online:
            online = True
        elif reachability == _Reach.Disconnected and not self._loopback:
            online = False
        else:
            online = None
        self._set(online)

    @Slot()
    def _poll(self) -> None:
        if self._fallback is None:
            return
        try:
            online = self._fallback.is_online()
        except Exception:  # the detector must never break the app
            log.exception("connectivity check failed")
            return
        self._set(online)

    def _set(self, online: bool | None) -> None:
        if online == self._online:
            return
        before = self._effective(self._online)
        self._online = online
        self._feed(online)
        after = self._effective(online)
        if after != before:
            self.onlineChanged.emit(after)

    def _effective(self, online: bool | None) -> bool:
        return True if online is None else online

    def _feed(self, online: bool | None) -> None:
        try:
            self._client.set_online(online)
        except Exception:  # telemetry never breaks the app
            log.exception("client.set_online failed")
