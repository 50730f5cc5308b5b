"""Is the network up? A psutil interface check, the last upload's outcome, and a hook.

The core detector says "online" when a non-loopback interface is up (or the endpoint itself is
on loopback). The Qt layer, or any app with a better signal, calls :meth:`Connectivity.set_online`
with ``True``/``False``; ``None`` hands the decision back to the detector.
"""

from __future__ import annotations

import ipaddress
import logging
import threading
from collections.abc import Callable
from urllib.parse import urlsplit

import psutil

log = logging.getLogger("telemetry.connectivity")


def interfaces_up() -> bool:
    """True when any non-loopback network interface is up."""
    try:
        stats = psutil.net_if_stats()
    except OSError as exc:  # unreadable: assume online and let the upload tell
        log.debug("cannot read interface state: %s", exc)
        return True
    return any(s.isup for name, s in stats.items() if not _is_loopback_name(name))


def _is_loopback_name(name: str) -> bool:
    return name == "lo" or name.startswith("lo") and name[2:].isdigit() or "Loopback" in name


def is_loopback_url(url: str) -> bool:
    """True when ``url`` points at this machine (127.0.0.0/8, ::1 or localhost)."""
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class Connectivity:
    """Tracks whether uploads can reach the network; notifies when it comes back."""

    def __init__(self, url: str, *, detector: Callable[[], bool] = interfaces_up) -> None:
        self._loopback = is_loopback_url(url)
        self._detector = detector
        self._override: bool | None = None
        self._last_detected = True
        self._lock = threading.Lock()
        self._listeners: list[Callable[[], None]] = []

    def add_listener(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` (on the caller's thread of the change) when going online."""
        self._listeners.append(callback)

    def set_online(self, online: bool | None) -> None:
        """The public hook: the app reports reachability (``None``: use the detector)."""
        with self._lock:
            was = self._current()
            self._override = online
            now = self._current()
        if now and not was:
            self._notify()

    def is_online(self) -> bool:
        """Re-check the detector (cheap) and report; fires listeners on a down-to-up change."""
        with self._lock:
            was = self._current()
            if not self._loopback and self._override is None:
                self._last_detected = self._detector()
            now = self._current()
        if now and not was:
            self._notify()
        return now

    def _current(self) -> bool:
        if self._override is not None:
            return self._override
        return self._loopback or self._last_detected

    def _notify(self) -> None:
        for callback in list(self._listeners):
            try:
                callback()
            except Exception:  # noqa: BLE001 - a listener must not break detection
                log.exception("connectivity listener failed")
