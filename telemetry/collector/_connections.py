"""Bounded client connections: header, body, idle and write-stall timeouts, and a cap on open
connections that keeps file descriptors in reserve (an h11 protocol for uvicorn plus a watchdog).

Rules (documented in the README):

* request headers must be complete within ``HEADER_TIMEOUT_SECONDS`` of the connection opening
  or of the previous response (this is also the idle keep-alive timeout);
* a request body must arrive at an average of at least ``BODY_MIN_BYTES_PER_SECOND`` once its
  first ``BODY_GRACE_SECONDS`` have passed (a stalled body is cut after the grace period);
* a response the client stops reading for ``WRITE_STALL_SECONDS`` is abandoned;
* at most ``connection_limit()`` connections are open; a new one past the limit closes the
  connection that has waited longest for its headers (else the slowest body), and is answered a
  fast 503 when every connection is busy with a request.

With ``--workers`` k, each worker process enforces these rules on the connections it accepted,
and admits its share of ``MAX_CONNECTIONS``, ``ceil(MAX_CONNECTIONS / k)`` (and at most its own
file descriptor limit less ``FD_RESERVE``: descriptors are per process), so the collector as a
whole keeps to ``MAX_CONNECTIONS``. A worker full of connections turns new ones away even when
another has room: the kernel hands each connection to one worker, and the limit is not shared.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import resource
import time
from collections import Counter
from typing import Any, ClassVar, Final

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

__all__ = [
    "BODY_GRACE_SECONDS",
    "BODY_MIN_BYTES_PER_SECOND",
    "FD_RESERVE",
    "HEADER_TIMEOUT_SECONDS",
    "MAX_CONNECTIONS",
    "WRITE_STALL_SECONDS",
    "ConnectionGuard",
    "bounded_protocol",
    "connection_limit",
    "raise_fd_limit",
]

logger = logging.getLogger("telemetry.collector")

HEADER_TIMEOUT_SECONDS: Final = 5.0
BODY_GRACE_SECONDS: Final = 5.0
BODY_MIN_BYTES_PER_SECOND: Final = 4096
WRITE_STALL_SECONDS: Final = 10.0
#: File descriptors kept free of client connections (database, log files, threads, /healthz).
FD_RESERVE: Final = 128
#: Most client connections, whatever the file descriptor limit.
MAX_CONNECTIONS: Final = 10_000
#: How often the watchdog looks at every connection, and how often it may log a summary.
_TICK_SECONDS: Final = 0.5
_SUMMARY_SECONDS: Final = 10.0
_BUSY_503: Final = (
    b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\nretry-after: 1\r\n"
    b"connection: close\r\n\r\n"
)


def raise_fd_limit() -> int:
    """Raise the soft ``RLIMIT_NOFILE`` to the hard limit (capped at 1,048,576); return the soft
    limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = 1 << 20 if hard == resource.RLIM_INFINITY else min(hard, 1 << 20)
    if soft == resource.RLIM_INFINITY or soft >= target:
        return target if soft == resource.RLIM_INFINITY else soft
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    except (OSError, ValueError):
        return soft
    return target


def connection_limit(workers: int = 1) -> int:
    """``min(ceil(MAX_CONNECTIONS / workers), soft RLIMIT_NOFILE - FD_RESERVE)``, at least 16:
    the connections one of ``workers`` worker processes admits."""
    share = -(-MAX_CONNECTIONS // workers)
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    if soft == resource.RLIM_INFINITY:
        return max(16, share)
    return max(16, min(share, soft - FD_RESERVE))


class Phase(enum.Enum):
    HEADERS = "waiting for request headers"
    BODY = "receiving a request body"
    BUSY = "handling a request"


class ConnectionGuard:
    """The open connections of one server, their limit, and the watchdog enforcing timeouts."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.connections: set[BoundedH11Protocol] = set()
        self.closed: Counter[str] = Counter()
        self._timer: asyncio.TimerHandle | None = None
        self._last_summary = time.monotonic()

    def admit(self, conn: BoundedH11Protocol) -> bool:
        """Register ``conn``; past the limit close a waiting one, or refuse ``conn`` (False)."""
        if len(self.connections) >= self.limit:
            victim = self._victim()
            if victim is None:
                self.closed["refused with 503 (all connections busy)"] += 1
                return False
            self.close(victim, "closed to stay under the connection limit")
        self.connections.add(conn)
        if self._timer is None:
            self._schedule(conn.loop)
        return True

    def forget(self, conn: BoundedH11Protocol) -> None:
        self.connections.discard(conn)

    def close(self, conn: BoundedH11Protocol, reason: str) -> None:
        """Abort ``conn`` at once (its file descriptor is released) and count why."""
        self.connections.discard(conn)
        self.closed[reason] += 1
        conn.transport.abort()

    def _victim(self) -> BoundedH11Protocol | None:
        for phase in (Phase.HEADERS, Phase.BODY):
            waiting = [c for c in self.connections if c.phase is phase]
            if waiting:
                return min(waiting, key=lambda c: c.since)
        return None

    def _schedule(self, loop: asyncio.AbstractEventLoop) -> None:
        self._timer = loop.call_later(_TICK_SECONDS, self._tick, loop)

    def _tick(self, loop: asyncio.AbstractEventLoop) -> None:
        now = time.monotonic()
        for conn in list(self.connections):
            reason = conn.overdue(now)
            if reason is not None:
                self.close(conn, reason)
        if self.closed and now - self._last_summary >= _SUMMARY_SECONDS:
            self.log_summary(now)
        if self.connections or self.closed:
            self._schedule(loop)
        else:
            self._timer = None

    def log_summary(self, now: float | None = None) -> None:
        """One log line counting the connections closed since the last one."""
        now = time.monotonic() if now is None else now
        if self.closed:
            counts = ", ".join(f"{n} {reason}" for reason, n in sorted(self.closed.items()))
            logger.warning(
                "connections closed in the last %.0f s: %s (limit %d open, %d open now)",
                now - self._last_summary,
                counts,
                self.limit,
                len(self.connections),
            )
            self.closed.clear()
        self._last_summary = now


class BoundedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol, registered with a :class:`ConnectionGuard` that times it out."""

    guard: ClassVar[ConnectionGuard]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.phase = Phase.HEADERS
        self.since = time.monotonic()
        self._received = 0
        self._phase_bytes = 0
        self._write_paused_since: float | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.since = time.monotonic()
        if not self.guard.admit(self):
            self.connections.discard(self)
            transport.write(_BUSY_503)
            transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.guard.forget(self)
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        self._received += len(data)
        super().data_received(data)
        self._sync_phase()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._sync_phase()

    def pause_writing(self) -> None:
        super().pause_writing()
        self._write_paused_since = time.monotonic()

    def resume_writing(self) -> None:
        super().resume_writing()
        self._write_paused_since = None

    def _sync_phase(self) -> None:
        state = self.conn.their_state
        phase = (
            Phase.HEADERS
            if state is h11.IDLE
            else Phase.BODY
            if state is h11.SEND_BODY
            else Phase.BUSY
        )
        if phase is not self.phase:
            self.phase = phase
            self.since = time.monotonic()
            self._phase_bytes = self._received

    def overdue(self, now: float) -> str | None:
        """Why this connection must be closed now, or None."""
        elapsed = now - self.since
        if self.phase is Phase.HEADERS:
            return "header timeout" if elapsed > HEADER_TIMEOUT_SECONDS else None
        if self.phase is Phase.BODY:
            if self.flow.read_paused or elapsed <= BODY_GRACE_SECONDS:
                return None
            needed = BODY_MIN_BYTES_PER_SECOND * (elapsed - BODY_GRACE_SECONDS)
            return "body too slow" if self._received - self._phase_bytes < needed else None
        paused = self._write_paused_since
        if paused is not None and now - paused > WRITE_STALL_SECONDS:
            return "response not read"
        return None


def bounded_protocol(guard: ConnectionGuard) -> type[BoundedH11Protocol]:
    """A :class:`BoundedH11Protocol` class whose connections ``guard`` bounds."""
    return type("BoundedH11Protocol", (BoundedH11Protocol,), {"guard": guard})
