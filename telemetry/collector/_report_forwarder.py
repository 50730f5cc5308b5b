"""Forwarding stored error reports to a Sentry DSN from the durable report outbox.

The report ingest transaction puts every new report of a project that has a ``sentry_dsn`` into
the ``report_outbox`` table. A background task here leases due rows, sends each as an envelope
holding one ``event`` item (the payload as stored, so its ``event_id`` is kept) to the DSN's
``/api/<id>/envelope/`` with ``X-Sentry-Auth: Sentry sentry_version=7, sentry_key=<key>,
sentry_client=desktop-telemetry-collector/<version>``, and settles it:

* **2xx**: row deleted (counted in ``forwarded_reports``);
* **429**: the row waits ``Retry-After`` seconds, at least 1 s (60 s when absent, negative or
  unreadable);
* **other 4xx**: the report is dropped (counted in ``report_forward_dropped``, logged without
  its contents): resending the same bytes would be refused again;
* **5xx, other statuses, network errors**: exponential backoff with jitter, 5 s doubling up to
  10 min;
* rows still unsent 7 days after they were stored are dropped (counted).

Just before each report is sent its row is looked up again, and a report a deletion request
(``POST /deletion``) removed since the row was claimed is not sent. A pass that delivered or
dropped nothing is followed by the usual interval, not at once by another pass.

The key is only put in the request header; logs name the project, counts and statuses.
"""

from __future__ import annotations

import contextlib
import datetime
import logging
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Final

from starlette.concurrency import run_in_threadpool

from telemetry.collector._envelope import event_envelope
from telemetry.collector._forwarder import backoff_delay_seconds, retry_after_seconds
from telemetry.collector._passes import repeating
from telemetry.collector._storage import ReportForward
from telemetry.errors import TransportError
from telemetry.transport import AsyncHttpClient

if TYPE_CHECKING:
    from telemetry.collector._state import CollectorState

__all__ = ["ReportForwarder", "run_report_forwarder", "sentry_auth_header"]

logger = logging.getLogger("telemetry.collector.forwarder")

#: Rows older than this are dropped unsent.
MAX_FORWARD_AGE_MS: Final = 7 * 24 * 3600 * 1000
#: How long a claimed row stays invisible to other forwarders.
LEASE_MS: Final = 120_000
#: Rows claimed per pass.
BATCH: Final = 50
DEFAULT_429_WAIT_SECONDS: Final = 60.0
REQUEST_TIMEOUT_SECONDS: Final = 30.0


def sentry_auth_header(key: str) -> str:
    """The ``X-Sentry-Auth`` value the collector sends with ``key``."""
    import telemetry

    return (
        f"Sentry sentry_version=7, sentry_key={key}, "
        f"sentry_client=desktop-telemetry-collector/{telemetry.__version__}"
    )


class ReportForwarder:
    """Drains the report outbox to each project's Sentry DSN (one pass per :meth:`run_once`)."""

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

    def _now_ms(self) -> int:
        return int(self._clock() * 1000)

    async def run_once(self) -> int:
        """Expire old rows, then claim due rows and send them; return how many were delivered
        or dropped (0: nothing due, or nothing got through; the next pass waits the interval)."""
        store = self._state.storage
        now = self._now_ms()
        expired = await run_in_threadpool(store.report_forward_expire, now - MAX_FORWARD_AGE_MS)
        if expired:
            self._state.metrics.inc("report_forward_dropped", expired)
            logger.warning("dropped %d error reports unsent after 7 days", expired)
        rows = await run_in_threadpool(
            lambda: store.claim_report_forwards(now=now, lease_ms=LEASE_MS, limit=BATCH)
        )
        settled = 0
        for row in rows:
            settled += await self._send(row)
        return settled

    async def _send(self, row: ReportForward) -> int:
        """Send one report and settle its row; return 1 when it was delivered or dropped."""
        state = self._state
        store = state.storage
        metrics = state.metrics
        target = state.config.report_target(row.project)
        if target is None:  # no longer configured: keep it for later
            await run_in_threadpool(store.report_forward_retry, [row.id], self._now_ms() + LEASE_MS)
            return 0
        # Claimed rows wait their turn (up to 50 reports, one request each): a deletion request
        # may have removed this one since. Send it only when it is still in the outbox.
        if not await run_in_threadpool(store.report_forward_pending, [row.id]):
            return 0
        sent_at = datetime.datetime.now(datetime.UTC).isoformat(timespec="milliseconds")
        body = event_envelope(row.event_id, row.payload, sent_at=sent_at.replace("+00:00", "Z"))
        try:
            response = await self._client.post(
                target.envelope_url,
                body,
                headers={
                    "Content-Type": "application/x-sentry-envelope",
                    "X-Sentry-Auth": sentry_auth_header(target.public_key.reveal()),
                },
                timeout=REQUEST_TIMEOUT_SECONDS,
            )
        except TransportError as exc:
            metrics.inc("report_forward_requests", status=0)
            logger.warning("forwarding an error report of %r failed: %s", row.project, exc.kind)
            await self._backoff(row)
            return 0
        status = response.status
        metrics.inc("report_forward_requests", status=status)
        if 200 <= status < 300:
            await run_in_threadpool(store.report_forward_done, [row.id])
            metrics.inc("forwarded_reports")
            return 1
        if status == 429:
            wait = retry_after_seconds(response, default=DEFAULT_429_WAIT_SECONDS)
            logger.info("Sentry throttled %r: retrying in %.0f s", row.project, wait)
            await run_in_threadpool(
                lambda: store.report_forward_retry([row.id], self._now_ms() + int(wait * 1000))
            )
            return 0
        if 400 <= status < 500:
            await run_in_threadpool(store.report_forward_done, [row.id])
            metrics.inc("report_forward_dropped")
            logger.warning(
                "Sentry refused an error report of %r (%d): dropped", row.project, status
            )
            return 1
        logger.warning("Sentry answered %d for an error report of %r", status, row.project)
        await self._backoff(row)
        return 0

    async def _backoff(self, row: ReportForward) -> None:
        delay = backoff_delay_seconds(self._backoff_base, row.attempts)
        await run_in_threadpool(
            lambda: self._state.storage.report_forward_retry(
                [row.id], self._now_ms() + int(delay * 1000)
            )
        )


@contextlib.asynccontextmanager
async def run_report_forwarder(
    state: CollectorState, *, interval: float, backoff_base: float = 5.0
) -> AsyncIterator[ReportForwarder]:
    """Run a :class:`ReportForwarder` in a background task while the context is open: a pass
    every ``interval`` seconds (at once again while passes get reports through)."""
    async with AsyncHttpClient(trust_env=False) as client:
        forwarder = ReportForwarder(state, client, backoff_base=backoff_base)

        def failed(exc: Exception) -> None:  # storage down etc.: log, wait, try again
            logger.warning("report forwarding pass failed: %s", exc, exc_info=True)

        async with repeating(
            "collector report forwarder",
            lambda _stop: forwarder.run_once(),
            interval=interval,
            on_error=failed,
        ):
            yield forwarder
