"""Test helpers for apps that use telemetry: assert what was tracked, without a network or
waiting for timers.

* :class:`RecordingDestination` stands in for the network: the uploader sends to it, it keeps
  every batch (and deletion request) as received and answers 200, or what it is told to.
* :class:`FakeClock` is time a test moves forward (:meth:`FakeClock.advance`): the uploader's
  flush interval, backoff and pauses then pass at once instead of in real seconds.

Both plug into the uploader (``Uploader(..., destination=..., clock=...)``)::

    from telemetry._delivery import Uploader
    from telemetry.testing import FakeClock, RecordingDestination

    destination, clock = RecordingDestination(), FakeClock()
    uploader = Uploader(store, url=URL, api_key="my-project", destination=destination, clock=clock)
    uploader.start()
    ...                                      # the app tracks events into ``store``
    clock.advance(10)                        # the flush interval passes
    destination.wait_for_events(3)
    assert [e["event_type"] for e in destination.events] == [...]

Importing this module imports :mod:`telemetry.transport` (and so httpx) for its ``Response``.
"""

from __future__ import annotations

import gzip
import json
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from telemetry.errors import TransportError
from telemetry.transport import Response

__all__ = ["FakeClock", "RecordedRequest", "RecordingDestination"]

#: Real seconds between two looks at a waiter's event (an ``Event`` cannot notify a clock).
_EVENT_POLL = 0.002


class FakeClock:
    """A clock that moves only when told to (a :class:`telemetry._delivery.Clock`).

    ``monotonic()`` starts at ``start``, the wall time at ``wall_start`` (default: the real
    time at creation); :meth:`advance` moves both. :meth:`wait` (what the uploader sleeps in)
    returns when its event is set, or as soon as the fake time reaches its deadline; it never
    times out in real time. A test sees the sleeping threads' deadlines
    (:meth:`wait_for_sleeper`) and can jump straight to them (:meth:`advance_to_next`).
    """

    def __init__(self, start: float = 1_000.0, *, wall_start: float | None = None) -> None:
        self._now = start
        self._wall_offset = (time.time() if wall_start is None else wall_start) - start
        self._cond = threading.Condition()
        self._deadlines: dict[int, float] = {}  # id of each waiting call -> its deadline
        self._next_id = 0

    def monotonic(self) -> float:
        """The fake monotonic time, seconds."""
        with self._cond:
            return self._now

    def time(self) -> float:
        """The fake wall time, seconds since the epoch."""
        with self._cond:
            return self._now + self._wall_offset

    def time_ms(self) -> int:
        """The fake wall time, whole milliseconds since the epoch."""
        return int(self.time() * 1000)

    def advance(self, seconds: float) -> None:
        """Move time forward by ``seconds``; waiters whose deadline passed return."""
        if seconds < 0:
            raise ValueError("time does not go back")
        with self._cond:
            self._now += seconds
            self._cond.notify_all()

    def wait(self, event: threading.Event, timeout: float | None) -> bool:
        """Block until ``event`` is set (noticed within a few real milliseconds) or the fake
        time reaches ``timeout`` seconds from now; return whether the event is set."""
        with self._cond:
            deadline = float("inf") if timeout is None else self._now + max(0.0, timeout)
            key = self._next_id
            self._next_id += 1
            self._deadlines[key] = deadline
            self._cond.notify_all()  # wakes wait_for_sleeper()
            try:
                while not event.is_set() and self._now < deadline:
                    self._cond.wait(_EVENT_POLL)
            finally:
                del self._deadlines[key]
                self._cond.notify_all()
        return event.is_set()

    def sleep(self, seconds: float) -> None:
        """A ``time.sleep`` replacement: returns once the fake time moved ``seconds`` on."""
        self.wait(threading.Event(), seconds)

    def sleepers(self) -> list[float]:
        """Seconds of fake time each waiting thread has left (``inf``: no deadline)."""
        with self._cond:
            return sorted(d - self._now for d in self._deadlines.values())

    def wait_for_sleeper(
        self, timeout: float = 10.0, *, at_least: float = 0.0, at_most: float = float("inf")
    ) -> float:
        """Block (up to ``timeout`` real seconds) until a thread waits on this clock with
        between ``at_least`` and ``at_most`` seconds left; return them (the fewest that fit).

        Raises TimeoutError when none did in time.
        """
        end = time.monotonic() + timeout
        with self._cond:
            while True:
                left = [
                    d - self._now
                    for d in self._deadlines.values()
                    if at_least <= d - self._now <= at_most
                ]
                if left:
                    return min(left)
                remaining = end - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"no thread waited on the clock within {timeout} s")
                self._cond.wait(remaining)

    def advance_to_next(self, timeout: float = 10.0, *, at_least: float = 0.0) -> float:
        """Wait for a sleeper (see :meth:`wait_for_sleeper`), then advance exactly to its
        deadline; return the seconds advanced."""
        left = self.wait_for_sleeper(timeout, at_least=at_least, at_most=float("inf") - 1)
        self.advance(left)
        return left


@dataclass(frozen=True)
class RecordedRequest:
    """One request as :class:`RecordingDestination` received it, and what it answered."""

    url: str
    payload: Any  # the JSON body, decoded
    status: int  # 0 when it answered with a TransportError
    gzipped: bool
    at: float = field(default_factory=time.monotonic)  # real time of arrival

    @property
    def is_batch(self) -> bool:
        """An event batch (``api_key`` and ``events``), not a deletion request."""
        return isinstance(self.payload, dict) and "events" in self.payload

    @property
    def is_report(self) -> bool:
        """An error report: a Sentry envelope (decoded: ``header`` and ``items``)."""
        return (
            isinstance(self.payload, dict)
            and "items" in self.payload
            and "/envelope/" in (self.url)
        )

    @property
    def report(self) -> dict[str, Any] | None:
        """The error report (the Sentry event) of an envelope, else None."""
        if not self.is_report:
            return None
        for item in self.payload["items"]:
            if item["header"].get("type") == "event":
                event: dict[str, Any] = item["payload"]
                return event
        return None

    @property
    def events(self) -> list[dict[str, Any]]:
        """The batch's events (empty for a deletion request)."""
        return list(self.payload.get("events", [])) if self.is_batch else []


@dataclass(frozen=True)
class _Answer:
    status: int
    body: bytes
    headers: Mapping[str, str]
    error: str | None  # a TransportError kind instead of an answer


class RecordingDestination:
    """An in-memory destination for the uploader (a :class:`telemetry.transport.Destination`).

    Records every request, decoded (:attr:`requests`); answers ``status`` (200 by default)
    unless told otherwise by :meth:`respond` (the next answers, in order) or :meth:`fail` (no
    answer: a :class:`~telemetry.errors.TransportError`). :attr:`events` holds what was
    delivered: the events of the batches answered 2xx, in order.
    """

    def __init__(self, status: int = 200) -> None:
        self.status = status
        self._cond = threading.Condition()
        self._requests: list[RecordedRequest] = []
        self._script: deque[_Answer] = deque()

    def respond(
        self,
        status: int,
        *,
        body: bytes | str = b"",
        headers: Mapping[str, str] | None = None,
        times: int = 1,
    ) -> None:
        """Answer the next ``times`` requests with ``status`` (then the default again)."""
        raw = body.encode() if isinstance(body, str) else body
        lowered = {k.lower(): v for k, v in (headers or {}).items()}
        with self._cond:
            self._script.extend(_Answer(status, raw, lowered, None) for _ in range(times))

    def fail(self, kind: str = "connect_error", *, times: int = 1) -> None:
        """Give the next ``times`` requests no answer (``kind``: the TransportError's)."""
        with self._cond:
            self._script.extend(_Answer(0, b"", {}, kind) for _ in range(times))

    # ------------------------------------------------------------------ Destination

    def post(
        self, url: str, body: bytes, *, gzipped: bool = True, give_up_after: float | None = None
    ) -> Response:
        """Record the request and answer it (see the class docstring)."""
        raw = gzip.decompress(body) if gzipped else body
        if "/envelope/" in url:
            from telemetry._delivery._envelopes import parse_envelope

            payload = parse_envelope(raw)
        else:
            payload = json.loads(raw)
        with self._cond:
            answer = self._script.popleft() if self._script else _Answer(self.status, b"", {}, None)
            self._requests.append(RecordedRequest(url, payload, answer.status, gzipped))
            self._cond.notify_all()
        if answer.error is not None:
            raise TransportError(answer.error, "scripted by RecordingDestination.fail()")
        return Response(answer.status, answer.body, dict(answer.headers))

    def cancel(self, url: str | None = None) -> None:
        """Nothing is ever in flight: answers are immediate."""

    def close(self) -> None:
        """Nothing to release."""

    # ------------------------------------------------------------------ what was received

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request received, oldest first."""
        with self._cond:
            return list(self._requests)

    @property
    def batches(self) -> list[RecordedRequest]:
        """The event batches received (whatever they were answered), oldest first."""
        return [r for r in self.requests if r.is_batch]

    @property
    def deletions(self) -> list[dict[str, Any]]:
        """The deletion requests received (their JSON bodies)."""
        return [r.payload for r in self.requests if not r.is_batch and not r.is_report]

    @property
    def reports(self) -> list[dict[str, Any]]:
        """The error reports delivered (Sentry events of envelopes answered 2xx), in order."""
        return [r.report for r in self.requests if r.report is not None and 200 <= r.status < 300]

    @property
    def events(self) -> list[dict[str, Any]]:
        """The events delivered: those of the batches answered 2xx, in order."""
        return [e for r in self.batches if 200 <= r.status < 300 for e in r.events]

    def event_types(self) -> list[str]:
        """The ``event_type`` of each delivered event."""
        return [str(e.get("event_type")) for e in self.events]

    def wait_for(
        self, predicate: Callable[[list[RecordedRequest]], bool], timeout: float = 10.0
    ) -> bool:
        """Block (up to ``timeout`` real seconds) until ``predicate(requests)`` holds."""
        end = time.monotonic() + timeout
        with self._cond:
            while not predicate(list(self._requests)):
                remaining = end - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(remaining)
            return True

    def wait_for_events(self, count: int, timeout: float = 10.0) -> bool:
        """Block until at least ``count`` events were delivered."""
        return self.wait_for(
            lambda rs: sum(len(r.events) for r in rs if 200 <= r.status < 300) >= count, timeout
        )
