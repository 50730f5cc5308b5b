"""The ingest endpoint (``POST /2/httpapi``, ``POST /amplitude/2/httpapi``): read, validate, admit
and store one Amplitude HTTP V2 batch, and answer in Amplitude's shape."""

from __future__ import annotations

import contextlib
import email.utils
import logging
import time
from collections import Counter
from typing import Any, Final

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from telemetry.collector import _limits as L
from telemetry.collector._body import read_request_body
from telemetry.collector._group_commit import GroupCommit
from telemetry.collector._ratelimit import DeviceRateLimiter
from telemetry.collector._responses import json_error, storage_unavailable
from telemetry.collector._state import CollectorState
from telemetry.collector._storage import BatchToStore, InsertResult, StorageUnavailable
from telemetry.collector._validation import Batch, RequestRejected, parse_batch

__all__ = ["INGEST_PATHS", "SKEW_THRESHOLD_MS", "IngestRoute", "client_skew_ms"]

logger = logging.getLogger("telemetry.collector")

#: Paths accepting Amplitude HTTP V2 batches: Amplitude's own, and balena's proxy path.
INGEST_PATHS = ("/2/httpapi", "/amplitude/2/httpapi")
#: A client clock off by less than this is trusted as is (``event_time = time``).
SKEW_THRESHOLD_MS: Final = 5 * 60 * 1000
#: Header in which a client may state its upload time in ms (else the HTTP ``Date`` header).
UPLOAD_TIME_HEADER: Final = "x-client-upload-time"


def client_skew_ms(headers: Any, received_at_ms: int) -> int:
    """The correction to add to the client's event times: ``received - sent`` when the client
    said when it sent (``X-Client-Upload-Time`` in ms, else ``Date``) and its clock is off by at
    least :data:`SKEW_THRESHOLD_MS`; else 0."""
    sent_at: int | None = None
    raw = headers.get(UPLOAD_TIME_HEADER)
    if raw is not None and raw.strip().isdigit() and len(raw.strip()) <= 16:
        sent_at = int(raw.strip())
    elif (date := headers.get("date")) is not None:
        with contextlib.suppress(TypeError, ValueError, IndexError, OverflowError):
            parsed = email.utils.parsedate_to_datetime(date)
            if parsed.tzinfo is not None:
                sent_at = int(parsed.timestamp() * 1000)
    if sent_at is None:
        return 0
    skew = received_at_ms - sent_at
    return skew if abs(skew) >= SKEW_THRESHOLD_MS else 0


def _device_counts(batch: Batch) -> Counter[str]:
    """Events per device (events with only a user id count under that id)."""
    return Counter(e.device_id or e.user_id or "" for e in batch.events)


def _named_event_count(rejection_body: dict[str, Any]) -> int:
    """How many distinct events a 400 answer names (invalid or missing fields)."""
    named: set[int] = set()
    for key in ("events_with_invalid_fields", "events_with_missing_fields"):
        for indexes in (rejection_body.get(key) or {}).values():
            named.update(indexes)
    return len(named)


def _rate_limited(events_per_second: float, wait: float) -> JSONResponse:
    """429 with ``Retry-After``: the device sends faster than its rate."""
    retry_after = DeviceRateLimiter.retry_after(wait)
    return JSONResponse(
        {
            "code": 429,
            "error": L.ERROR_RATE_LIMITED,
            "eps_threshold": events_per_second,
            "retry_after": retry_after,
        },
        status_code=429,
        headers={"Retry-After": str(retry_after)},
    )


def _accepted(batch: Batch, result: InsertResult, received_at_ms: int) -> JSONResponse:
    """200: the batch is committed."""
    body: dict[str, Any] = {
        "code": 200,
        "events_ingested": len(batch.events),
        "payload_size_bytes": batch.payload_size_bytes,
        "server_upload_time": received_at_ms,
        "duplicates": result.duplicates,
        "rejected": result.rejected,
    }
    return JSONResponse(body)


class IngestRoute:
    """The ingest endpoint over the collector's shared state (:meth:`handle` is the route)."""

    def __init__(self, state: CollectorState) -> None:
        self._state = state
        self.group_commit = GroupCommit(state.storage)

    async def handle(self, request: Request) -> Response:
        """Answer one batch; count its latency and (unless 200, counted when stored) its status.
        An unexpected failure is logged and answered 503, like a storage failure."""
        metrics = self._state.metrics
        started = time.perf_counter()
        try:
            response = await self._ingest(request)
        except Exception:
            logger.exception("ingest failed")
            response = storage_unavailable()
        metrics.observe_latency(time.perf_counter() - started)
        if response.status_code != 200:
            metrics.inc("requests", status=response.status_code)
        return response

    async def _ingest(self, request: Request) -> Response:
        received_at_ms = self._state.now_ms()
        batch = await self._parse(request)
        if isinstance(batch, Response):
            return batch
        refusal = self._refusal(batch)
        if refusal is not None:
            return refusal
        skew = client_skew_ms(request.headers, received_at_ms)
        return await self._store(batch, received_at_ms, skew)

    async def _parse(self, request: Request) -> Batch | Response:
        """The valid batch, or the answer refusing the request (its named events counted)."""
        body = await read_request_body(request, L.MAX_BODY_BYTES)
        if isinstance(body, Response):
            return body
        try:
            return await run_in_threadpool(parse_batch, body)
        except RequestRejected as rejected:
            self._state.metrics.inc("events_rejected", _named_event_count(rejected.body))
            if rejected.status == 413:
                self._state.metrics.inc("batches_over_event_limit")
            return JSONResponse(rejected.body, status_code=rejected.status)

    def _refusal(self, batch: Batch) -> Response | None:
        """The answer refusing a valid batch (unknown project, device over its rate), if any."""
        config = self._state.config
        if not config.knows(batch.project):
            self._state.metrics.inc("events_rejected", len(batch.events))
            return json_error(400, L.ERROR_UNKNOWN_PROJECT)
        wait = self._state.limiter.take(batch.project, _device_counts(batch))
        if wait > 0:
            self._state.metrics.inc("events_rejected", len(batch.events))
            return _rate_limited(config.device_events_per_second, wait)
        return None

    async def _store(self, batch: Batch, received_at_ms: int, skew_ms: int) -> Response:
        """Commit the batch (queued for forwarding when its project has a token) and answer."""
        state = self._state
        forward = state.config.token(batch.project, state.environment) is not None
        try:
            result = await self.group_commit.store(
                BatchToStore(batch, received_at_ms, skew_ms, forward)
            )
        except StorageUnavailable as exc:
            logger.warning("refused a batch of %d events with 503: %s", len(batch.events), exc)
            return storage_unavailable()
        state.metrics.inc("events_accepted", result.inserted)
        state.metrics.inc("events_duplicates", result.duplicates)
        state.metrics.inc("events_rejected", result.rejected)
        state.metrics.inc("requests", status=200)
        logger.debug(
            "stored %d new events (%d duplicates, %d of deleted devices) for project %r",
            result.inserted,
            result.duplicates,
            result.rejected,
            batch.project,
        )
        return _accepted(batch, result, received_at_ms)
