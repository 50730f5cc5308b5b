"""The housekeeping thread: keeps caps, WAL checkpoints and retries off the caller's thread."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

log = logging.getLogger("telemetry.housekeeping")


class Housekeeper:
    """Runs ``task`` every ``interval`` seconds, and early after ``burst`` notifications.

    ``task`` is the store's maintenance pass (caps, overflow retry, checkpoint) plus whatever
    the client adds; it runs on a daemon thread named ``telemetry-housekeeping``.
    ``stop(timeout)`` returns within ``timeout`` seconds.
    """

    def __init__(
        self, task: Callable[[], None], *, interval: float = 5.0, burst: int = 500
    ) -> None:
        self._task = task
        self._interval = interval
        self._burst = burst
        self._since = 0
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start the thread (idempotent)."""
        if self._thread is not None:
            return
        self._thread = threading.Thread(
            target=self._run, name="telemetry-housekeeping", daemon=True
        )
        self._thread.start()

    def notify(self) -> None:
        """Count one appended event; wake the thread after ``burst`` of them."""
        self._since += 1
        if self._since >= self._burst:
            self._since = 0
            self._wake.set()

    def wake(self) -> None:
        """Run a pass as soon as possible."""
        self._wake.set()

    def stop(self, timeout: float = 2.0) -> bool:
        """Stop the thread; True when it ended within ``timeout``."""
        self._stopping.set()
        self._wake.set()
        thread, self._thread = self._thread, None
        if thread is None:
            return True
        thread.join(timeout)
        return not thread.is_alive()

    def _run(self) -> None:
        while not self._stopping.is_set():
            self._wake.wait(self._interval)
            self._wake.clear()
            if self._stopping.is_set():
                return
            try:
                self._task()
            except Exception:
                log.exception("telemetry housekeeping pass failed")
