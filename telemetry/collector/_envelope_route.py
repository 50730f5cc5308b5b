"""The error report endpoint (``POST /api/<project>/envelope/``): Sentry's envelope API, so our
client and the official ``sentry-sdk`` can both send error reports.

``<project>`` is a configured project name or its ``sentry_project_id``. The sender proves it
may write with the project's ``sentry_key`` (``X-Sentry-Auth: Sentry sentry_key=...``, or
``?sentry_key=``, or the key in the envelope header's ``dsn``). Answers, as Sentry's:

* **200** ``{"id": EVENT_ID}``: the envelope is handled: its ``event`` item stored (or already
  stored: same project and event id), other item types ignored (counted);
* **400** ``{"detail": ...}`` naming what is malformed (the envelope, an item, the event);
  nothing of the envelope is stored;
* **403** no or wrong ``sentry_key``; **404** unknown project; **413** over 1 MiB
  (decompressed); **415** a ``Content-Encoding`` other than gzip/identity; **429** with
  ``Retry-After`` when the device (or, without a device id, the network) is over its rate;
  **503** when the database cannot be written.
"""

from __future__ import annotations

import hmac
import logging
import time
import urllib.parse
from typing import Any, Final

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from telemetry.collector import _limits as L
from telemetry.collector._body import read_request_body
from telemetry.collector._envelope import MAX_ENVELOPE_BYTES, Envelope, EnvelopeRejected
from telemetry.collector._envelope import parse_envelope as _parse_envelope
from telemetry.collector._links import mask_ip
from telemetry.collector._ratelimit import DeviceRateLimiter
from telemetry.collector._reports import Report, ReportRejected, normalise_event_id, parse_report
from telemetry.collector._responses import storage_unavailable
from telemetry.collector._state import CollectorState
from telemetry.collector._storage import StorageUnavailable

__all__ = ["ENVELOPE_PATHS", "EnvelopeRoute", "sentry_auth_key"]

logger = logging.getLogger("telemetry.collector")

#: Sentry's envelope endpoint (with and without the trailing slash).
ENVELOPE_PATHS: Final = ("/api/{project}/envelope/", "/api/{project}/envelope")
#: Longest ``sentry_key`` read.
_MAX_KEY: Final = 256


def _detail(status: int, detail: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"detail": detail}, status_code=status, headers=headers)


def sentry_auth_key(header: str | None) -> str | None:
    """The ``sentry_key`` of an ``X-Sentry-Auth`` header value, if it has one."""
    if not header:
        return None
    text = header.strip()
    if text[:7].lower() == "sentry ":
        text = text[7:]
    for part in text.split(","):
        name, sep, value = part.strip().partition("=")
        if sep and name.strip() == "sentry_key":
            return value.strip()[:_MAX_KEY]
    return None


def _dsn_key(envelope: Envelope) -> str | None:
    """The public key of the envelope header's ``dsn``, if any."""
    dsn = envelope.header.get("dsn")
    if not isinstance(dsn, str) or len(dsn) > 2048:
        return None
    try:
        username = urllib.parse.urlsplit(dsn).username
    except ValueError:
        return None
    return urllib.parse.unquote(username)[:_MAX_KEY] if username else None


def _key_matches(given: str, expected: str) -> bool:
    return hmac.compare_digest(
        given.encode("utf-8", "surrogatepass"), expected.encode("utf-8", "surrogatepass")
    )


class EnvelopeRoute:
    """The envelope endpoint over the collector's shared state (:meth:`handle` is the route)."""

    def __init__(self, state: CollectorState) -> None:
        self._state = state

    async def handle(self, request: Request) -> Response:
        """Answer one envelope; count its status. An unexpected failure is logged and answered
        503, like a storage failure."""
        metrics = self._state.metrics
        started = time.perf_counter()
        try:
            response = await self._receive(request)
        except Exception:
            logger.exception("envelope ingest failed")
            response = storage_unavailable()
        metrics.observe_latency(time.perf_counter() - started)
        metrics.inc("report_requests", status=response.status_code)
        if response.status_code not in (200, 503):
            metrics.inc("reports_rejected")
        return response

    async def _receive(self, request: Request) -> Response:
        state = self._state
        received_at = state.now_ms()
        path_project = str(request.path_params.get("project", ""))
        project = (
            state.config.report_project(path_project)
            if 0 < len(path_project) <= L.MAX_API_KEY_LENGTH
            else None
        )
        if project is None:
            return _detail(404, "unknown project")
        expected = state.config.report_key(project)
        given = sentry_auth_key(request.headers.get("x-sentry-auth"))
        if given is None:
            query_key = request.query_params.get("sentry_key")
            given = query_key[:_MAX_KEY] if query_key else None
        if given is not None and not _key_matches(given, expected):
            return _detail(403, "invalid sentry_key")
        body = await read_request_body(request, MAX_ENVELOPE_BYTES)
        if isinstance(body, Response):
            return body
        try:
            envelope = await run_in_threadpool(_parse_envelope, body)
        except EnvelopeRejected as exc:
            return _detail(400, f"invalid envelope: {exc}")
        if given is None:
            given = _dsn_key(envelope)
            if given is None:
                return _detail(403, "missing sentry_key")
            if not _key_matches(given, expected):
                return _detail(403, "invalid sentry_key")
        header_id: str | None = None
        if "event_id" in envelope.header:
            header_id = normalise_event_id(envelope.header["event_id"])
            if header_id is None:
                return _detail(400, "invalid envelope: event_id must be 32 hexadecimal digits")
        events = [i for i, item in enumerate(envelope.items) if item.type == "event"]
        if len(events) > 1:
            return _detail(400, "invalid envelope: more than one event item")
        ignored = len(envelope.items) - len(events)
        report: Report | None = None
        if events:
            index = events[0]
            try:
                report = await run_in_threadpool(
                    lambda: parse_report(
                        project,
                        envelope.items[index].payload,
                        envelope_event_id=header_id,
                        received_at=received_at,
                    )
                )
            except ReportRejected as exc:
                return _detail(400, f"invalid event (item {index}): {exc}")
        if report is not None:
            throttled = self._throttle(request, project, report)
            if throttled is not None:
                return throttled
            stored = await self._store(report, received_at)
            if stored is not None:
                return stored
        state.metrics.inc("report_items_ignored", ignored)
        answer: dict[str, Any] = {"id": report.event_id if report is not None else header_id}
        return JSONResponse(answer)

    def _throttle(self, request: Request, project: str, report: Report) -> Response | None:
        """429 when the report's device (else the sender's network) is over its rate."""
        state = self._state
        who = report.device_id
        if who is None:
            who = "network:" + mask_ip(request.scope.get("state", {}).get("peer_host"))
        wait = state.limiter.take(project, {who: 1})
        if wait <= 0:
            return None
        retry_after = DeviceRateLimiter.retry_after(wait)
        return _detail(
            429,
            L.ERROR_RATE_LIMITED,
            headers={
                "Retry-After": str(retry_after),
                "X-Sentry-Rate-Limits": f"{retry_after}::organization",
            },
        )

    async def _store(self, report: Report, received_at: int) -> Response | None:
        """Commit the report (queued for forwarding when its project has a ``sentry_dsn``);
        an answer only when it could not be (503)."""
        state = self._state
        forward = state.config.report_target(report.project) is not None
        try:
            result = await run_in_threadpool(
                lambda: state.storage.insert_report(
                    report, received_at_ms=received_at, forward=forward
                )
            )
        except StorageUnavailable as exc:
            logger.warning("refused an error report with 503: %s", exc)
            return storage_unavailable()
        state.metrics.inc("reports_accepted", result.inserted)
        state.metrics.inc("reports_duplicates", result.duplicates)
        state.metrics.inc("reports_rejected", result.rejected)
        return None
