"""Forwarding stored events to Amplitude HTTP V2 from the durable outbox.

The ingest transaction puts every new event of a project that has a destination token (for the
collector's environment) into the ``outbox`` table. A background task here leases due rows (one
project at a time, so one token per request; several collector processes on one PostgreSQL
never send the same row at once), sends them and settles them:

* requests carry at most 1,000 events and 800 KB (headroom under Amplitude's 2,000 / 1 MB), each
  event exactly as stored, so its ``insert_id`` is kept (Amplitude dedups on it for 7 days);
* **200**: rows deleted;
* **413**: the request is split in halves, each sent again (a single event still too large is
  dropped);
* **429**: rows wait ``Retry-After`` seconds, at least 1 s (30 s when absent, negative or not a
  number, as Amplitude advises);
* **400**: the events Amplitude names (``events_with_invalid_fields``,
  ``events_with_missing_fields``, ``events_with_invalid_id_lengths``, ``silenced_events``) are
  dropped and the rest resent at once. A 400 naming none is narrowed down: the request is split
  in halves, each sent again, until the refused events are alone in their request and dropped
  (counted in ``forward_dropped_events``, logged without their contents). A 400 about the
  request itself (its ``missing_field`` set, ``error`` mentioning the API key, or a body that is
  not a JSON object) is retried with backoff instead: a bad token is fixed by a configuration
  change, and no event is to blame;
* **5xx, other statuses, network errors**: exponential backoff with jitter, 5 s doubling up to
  10 min;
* rows still unsent 7 days after they were stored are dropped (past Amplitude's dedup window a
  late retry could duplicate).

Just before each request (each chunk, each half, each resend) the claimed rows are looked up
again and only those still in the outbox are sent: a deletion request (``POST /deletion``) that
removed some while the forwarder held them in memory keeps them from being sent.

A pass that delivered nothing (throttled, backed off, refused) is followed by the usual
interval, not at once by another pass.

Tokens are only put in the request body; logs name the project, counts and statuses.
"""

from __future__ import annotations

import contextlib
import json
import logging
import random
from collections.abc import AsyncIterator, Callable, Sequence
from typing import TYPE_CHECKING, Final

from starlette.concurrency import run_in_threadpool

from telemetry.collector._passes import repeating
from telemetry.collector._storage import ForwardRow
from telemetry.errors import TransportError
from telemetry.transport import AsyncHttpClient, Response
from telemetry.wire import rejected_indexes, request_body

if TYPE_CHECKING:
    from telemetry.collector._state import CollectorState

__all__ = [
    "MAX_BACKOFF_SECONDS",
    "MAX_FORWARD_AGE_MS",
    "MAX_REQUEST_BYTES",
    "MAX_REQUEST_EVENTS",
    "Forwarder",
    "backoff_delay_seconds",
    "retry_after_seconds",
    "run_forwarder",
]

logger = logging.getLogger("telemetry.collector.forwarder")

MAX_REQUEST_EVENTS: Final = 1000
MAX_REQUEST_BYTES: Final = 800_000
#: Rows older than this are dropped unsent (Amplitude's insert_id dedup window).
MAX_FORWARD_AGE_MS: Final = 7 * 24 * 3600 * 1000
#: How long a claimed row stays invisible to other forwarders.
LEASE_MS: Final = 120_000
DEFAULT_429_WAIT_SECONDS: Final = 30.0
#: Shortest wait after a 429, whatever its ``Retry-After`` says (0 would mean a busy loop).
MIN_RETRY_AFTER_SECONDS: Final = 1.0
MAX_BACKOFF_SECONDS: Final = 600.0
REQUEST_TIMEOUT_SECONDS: Final = 30.0


def _body(token: str, rows: Sequence[ForwardRow]) -> bytes:
    return request_body(token, ",".join(row.event for row in rows)).encode()


def _chunks(rows: Sequence[ForwardRow], token: str) -> list[list[ForwardRow]]:
    """Split ``rows`` in order into requests of <= 1,000 events and <= 800 KB."""
    overhead = len(_body(token, []))
    chunks: list[list[ForwardRow]] = []
    current: list[ForwardRow] = []
    size = overhead
    for row in rows:
        extra = len(row.event.encode()) + 1
        if current and (len(current) >= MAX_REQUEST_EVENTS or size + extra > MAX_REQUEST_BYTES):
            chunks.append(current)
            current, size = [], overhead
        current.append(row)
        size += extra
    if current:
        chunks.append(current)
    return chunks


def _blames_the_request(raw_body: bytes) -> bool:
    """Whether a 400 answer naming no event refuses the request itself rather than its events:
    it names a missing request field, speaks of the API key, or is not a JSON object."""
    try:
        body = json.loads(raw_body)
    except ValueError:
        return True
    if not isinstance(body, dict):
        return True
    error = body.get("error")
    about_key = isinstance(error, str) and "api key" in error.lower().replace("_", " ")
    return body.get("missing_field") is not None or about_key


def retry_after_seconds(response: Response, *, default: float) -> float:
    """A 429's ``Retry-After`` in seconds, between :data:`MIN_RETRY_AFTER_SECONDS` and
    :data:`MAX_BACKOFF_SECONDS`; ``default`` when it is missing, negative or not a number
    (``nan`` included). Both forwarders use it."""
    raw = (response.header("retry-after") or "").strip()
    try:
        wait = float(raw)
    except ValueError:
        return default
    if not wait >= 0.0:  # negative or nan
        return default
    return min(MAX_BACKOFF_SECONDS, max(MIN_RETRY_AFTER_SECONDS, wait))


def backoff_delay_seconds(base: float, attempts: int) -> float:
    """How long a row that failed ``attempts`` times before waits: ``base`` doubled per attempt,
    at most :data:`MAX_BACKOFF_SECONDS`, with jitter (a random half of it taken off at most).
    Both forwarders use it."""
    delay: float = min(MAX_BACKOFF_SECONDS, base * 2.0 ** min(attempts, 20))
    return delay * random.uniform(0.5, 1.0)


class Forwarder:
    """Drains the outbox to the configured Amplitude endpoint (one pass per :meth:`run_once`)."""

    def __init__(
        self,
        state: CollectorState,
        client: AsyncHttpClient,
        *,
        backoff_base: float = 5.0,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self._state = state
        self._client = client
        self._backoff_base = backoff_base
        self._clock = clock or state.clock
        #: Rows settled (delivered or dropped) in the current pass.
        self._settled = 0

    def _now_ms(self) -> int:
        return int(self._clock() * 1000)

    async def run_once(self) -> int:
        """Expire old rows, then claim one project's due rows and send them; return how many
        rows were delivered or dropped, or set aside for a project no longer configured (0:
        nothing due, or nothing got through: throttled, backed off; the next pass then waits
        the interval)."""
        store = self._state.storage
        metrics = self._state.metrics
        now = self._now_ms()
        expired = await run_in_threadpool(store.forward_expire, now - MAX_FORWARD_AGE_MS)
        if expired:
            metrics.inc("forward_dropped_events", expired)
            logger.warning("dropped %d events unsent after 7 days", expired)
        rows = await run_in_threadpool(
            lambda: store.claim_forwards(now=now, lease_ms=LEASE_MS, limit=MAX_REQUEST_EVENTS)
        )
        if not rows:
            return 0
        project = rows[0].project
        token = self._state.config.token(project, self._state.environment)
        if token is None:  # no longer configured for this environment: keep them for later
            await run_in_threadpool(store.forward_retry, [r.id for r in rows], now + LEASE_MS)
            return len(rows)
        self._settled = 0
        for chunk in _chunks(rows, token.reveal()):
            await self._send(project, token.reveal(), chunk)
        return self._settled

    async def _done(self, ids: Sequence[int]) -> None:
        await run_in_threadpool(self._state.storage.forward_done, ids)
        self._settled += len(ids)

    async def _send(self, project: str, token: str, rows: list[ForwardRow]) -> None:
        store = self._state.storage
        metrics = self._state.metrics
        # A deletion request may have removed some of the claimed rows since: send only those
        # still in the outbox (and nothing when none is).
        pending = await run_in_threadpool(store.forward_pending, [r.id for r in rows])
        rows = [r for r in rows if r.id in pending]
        if not rows:
            return
        ids = [r.id for r in rows]
        try:
            response = await self._client.post(
                self._state.config.forward_url,
                _body(token, rows),
                headers={"Content-Type": "application/json", "Accept": "*/*"},
                timeout=REQUEST_TIMEOUT_SECONDS,
            )
        except TransportError as exc:
            metrics.inc("forward_requests", status=0)
            logger.warning("forwarding %d events of %r failed: %s", len(rows), project, exc.kind)
            await self._backoff(rows)
            return
        status = response.status
        metrics.inc("forward_requests", status=status)
        if status == 200:
            await self._done(ids)
            metrics.inc("forwarded_events", len(rows))
            logger.info("forwarded %d events of %r", len(rows), project)
        elif status == 413:
            if len(rows) == 1:
                await self._done(ids)
                metrics.inc("forward_dropped_events", 1)
                logger.warning("dropped one event of %r: too large for the destination", project)
                return
            half = len(rows) // 2
            logger.info("destination said 413 for %d events of %r: halving", len(rows), project)
            await self._send(project, token, rows[:half])
            await self._send(project, token, rows[half:])
        elif status == 429:
            wait = retry_after_seconds(response, default=DEFAULT_429_WAIT_SECONDS)
            logger.info("destination throttled %r: retrying in %.0f s", project, wait)
            await run_in_threadpool(
                lambda: store.forward_retry(ids, self._now_ms() + int(wait * 1000))
            )
        elif status == 400:
            await self._refused(project, token, rows, response.body)
        else:
            logger.warning(
                "destination answered %d for %d events of %r", status, len(rows), project
            )
            await self._backoff(rows)

    async def _refused(
        self, project: str, token: str, rows: list[ForwardRow], answer: bytes
    ) -> None:
        """Settle a 400: drop the named events and resend the rest; else narrow it down by
        halves to the refused events (alone: dropped), unless the request itself is to blame."""
        named = rejected_indexes(answer, len(rows))
        if not named and _blames_the_request(answer):
            logger.warning("destination refused the request for %r (400)", project)
            await self._backoff(rows)
            return
        if not named and len(rows) > 1:
            half = len(rows) // 2
            logger.info("destination refused %d events of %r (400): halving", len(rows), project)
            await self._send(project, token, rows[:half])
            await self._send(project, token, rows[half:])
            return
        dropped = [rows[i].id for i in sorted(named)] if named else [rows[0].id]
        await self._done(dropped)
        self._state.metrics.inc("forward_dropped_events", len(dropped))
        logger.warning("destination refused %d events of %r: dropped", len(dropped), project)
        rest = [row for i, row in enumerate(rows) if i not in named] if named else []
        if rest:
            await self._send(project, token, rest)

    async def _backoff(self, rows: Sequence[ForwardRow]) -> None:
        delay = backoff_delay_seconds(self._backoff_base, max(r.attempts for r in rows))
        ids = [r.id for r in rows]
        await run_in_threadpool(
            lambda: self._state.storage.forward_retry(ids, self._now_ms() + int(delay * 1000))
        )


@contextlib.asynccontextmanager
async def run_forwarder(
    state: CollectorState, *, interval: float, backoff_base: float = 5.0
) -> AsyncIterator[Forwarder]:
    """Run a :class:`Forwarder` in a background task while the context is open: a pass every
    ``interval`` seconds (at once again while passes get rows through)."""
    async with AsyncHttpClient(trust_env=False) as client:
        forwarder = Forwarder(state, client, backoff_base=backoff_base)

        def failed(exc: Exception) -> None:  # storage down etc.: log, wait, try again
            logger.warning("forwarding pass failed: %s", exc, exc_info=True)

        async with repeating(
            "collector forwarder",
            lambda _stop: forwarder.run_once(),
            interval=interval,
            on_error=failed,
        ):
            yield forwarder
