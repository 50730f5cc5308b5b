"""The uploader's clock: the time its schedule runs on, and the wait between two attempts.

The schedule (flush interval, backoff, pauses, the per-minute cap, the idle check) reads
:meth:`Clock.monotonic` and sleeps through :meth:`Clock.wait`; the upload status and the age
of the oldest queued event read the wall time. :data:`SYSTEM_CLOCK` is the real one;
:class:`telemetry.testing.FakeClock` lets a test move time forward instead of sleeping.

Deadlines that bound how long a caller blocks (``flush(timeout)``, ``stop(timeout)``, a
request's timeout) and the cross-process upload lease always use real time.
"""

from __future__ import annotations

import threading
import time
from typing import Protocol

__all__ = ["SYSTEM_CLOCK", "Clock", "SystemClock"]


class Clock(Protocol):
    """What the uploader needs from a clock."""

    def monotonic(self) -> float:
        """Seconds on a clock that never goes back (only differences count)."""
        ...

    def time(self) -> float:
        """Wall time, seconds since the epoch."""
        ...

    def time_ms(self) -> int:
        """Wall time, whole milliseconds since the epoch."""
        ...

    def wait(self, event: threading.Event, timeout: float | None) -> bool:
        """Block until ``event`` is set or ``timeout`` seconds of this clock passed (``None``:
        no limit); return whether the event is set."""
        ...


class SystemClock:
    """The real clock: :func:`time.monotonic`, :func:`time.time` and ``Event.wait``."""

    def monotonic(self) -> float:
        return time.monotonic()

    def time(self) -> float:
        return time.time()

    def time_ms(self) -> int:
        return time.time_ns() // 1_000_000

    def wait(self, event: threading.Event, timeout: float | None) -> bool:
        return event.wait(timeout)


SYSTEM_CLOCK: Clock = SystemClock()
