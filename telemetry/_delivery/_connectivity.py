"""Is the network up? An interface check, the last upload's outcome, and the app's hook.

The core detector (:func:`telemetry._system.network_interfaces_up`) says "online" when a
non-loopback interface is up (or the endpoint itself is on loopback). The Qt layer, or any app
with a better signal, calls :meth:`Connectivity.set_online` with ``True``/``False``; ``None``
hands the decision back to the detector.

The uploader reports whether each request reached the server (:meth:`Connectivity.report_upload`).
While the last one did not, the endpoint counts as unreachable, so the network coming back (an
interface going up, or the app reporting ``online``) notifies the listeners, which restart the
uploader's backoff at once.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Final
from urllib.parse import urlsplit

from telemetry._system import network_interfaces_up

log = logging.getLogger("telemetry.connectivity")

ONLINE: Final = "online"
OFFLINE: Final = "offline"
UNREACHABLE: Final = "unreachable"


def is_loopback_url(url: str) -> bool:
    """True when ``url`` points at this machine (127.0.0.0/8, ::1 or localhost)."""
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    import ipaddress  # one parse per uploader: kept off the start-up path

    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class Connectivity:
    """Tracks whether uploads can reach the network; notifies when it comes back.

    Three states (:attr:`state`): ``online``; ``offline`` (the app or the detector says so:
    the uploader makes no request); ``unreachable`` (online, but the last upload got no
    answer: the uploader backs off). Listeners run when the state becomes ``online`` through
    a signal (the hook or the detector), not through an upload that worked.
    """

    def __init__(self, url: str, *, detector: Callable[[], bool] = network_interfaces_up) -> None:
        self._loopback = is_loopback_url(url)
        self._detector = detector
        self._override: bool | None = None
        self._last_detected = True
        self._upload_reached: bool | None = None
        self._lock = threading.Lock()
        self._listeners: list[Callable[[], None]] = []

    def add_listener(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` (on the thread that saw the change) when going online."""
        self._listeners.append(callback)

    def set_online(self, online: bool | None) -> None:
        """The public hook: the app reports reachability (``None``: use the detector).

        ``True`` while the last upload failed counts as the network coming back.
        """
        with self._lock:
            was = self._reachable()
            self._override = online
            if online:
                self._upload_reached = None
            now = self._reachable()
        if now and not was:
            self._notify()

    def is_online(self) -> bool:
        """Re-check the detector (cheap) and report whether uploads may be tried.

        Fires the listeners on a change to online (an interface came up).
        """
        with self._lock:
            was = self._reachable()
            if not self._loopback and self._override is None:
                detected = self._detector()
                if detected and not self._last_detected:
                    self._upload_reached = None  # a new network: forget the last failure
                self._last_detected = detected
            online = self._current()
            now = self._reachable()
        if now and not was:
            self._notify()
        return online

    def report_upload(self, reached: bool) -> None:
        """The uploader's outcome: ``True`` when the server answered (any status)."""
        with self._lock:
            self._upload_reached = reached

    @property
    def state(self) -> str:
        """``online``, ``offline`` or ``unreachable`` (as last checked)."""
        with self._lock:
            if not self._current():
                return OFFLINE
            return ONLINE if self._upload_reached is not False else UNREACHABLE

    def _current(self) -> bool:
        if self._override is not None:
            return self._override
        return self._loopback or self._last_detected

    def _reachable(self) -> bool:
        return self._current() and self._upload_reached is not False

    def _notify(self) -> None:
        for callback in list(self._listeners):
            try:
                callback()
            except Exception:
                log.exception("connectivity listener failed")
