"""The collector's ASGI application: HTTP routes, status codes and response bodies."""

from __future__ import annotations

import contextlib
import email.utils
import logging
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, Final

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from telemetry.collector import _limits as L
from telemetry.collector._body import BodyTooLarge, InvalidGzip, read_capped_body
from telemetry.collector._config import CollectorConfig
from telemetry.collector._deletion import DELETION_PATHS, MAX_DELETION_BODY_BYTES, parse_deletion
from telemetry.collector._metrics import Metrics
from telemetry.collector._ratelimit import DeviceRateLimiter
from telemetry.collector._storage import Storage, StorageUnavailable, open_storage
from telemetry.collector._validation import Batch, RequestRejected, error_body, parse_batch

__all__ = ["INGEST_PATHS", "SKEW_THRESHOLD_MS", "CollectorState", "create_app"]

logger = logging.getLogger("telemetry.collector")

#: Paths accepting Amplitude HTTP V2 batches: Amplitude's own, and balena's proxy path.
INGEST_PATHS = ("/2/httpapi", "/amplitude/2/httpapi")
#: A client clock off by less than this is trusted as is (``event_time = time``).
SKEW_THRESHOLD_MS: Final = 5 * 60 * 1000
#: Header in which a client may state its upload time in ms (else the HTTP ``Date`` header).
UPLOAD_TIME_HEADER: Final = "x-client-upload-time"


class ForgetClientAddress:
    """ASGI middleware that moves the peer address out of the scope before any route sees it.

    The collector never stores or logs the sender's IP; dropping it here makes sure no handler,
    error page or log line can pick it up by accident. Only the link tracker needs it (to store
    a *masked* address, as Barnebys does); it reads it from ``scope["state"]``.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            client = scope.get("client")
            scope = dict(scope)
            scope["client"] = None
            state = dict(scope.get("state") or {})
            state["peer_host"] = client[0] if client else None
            scope["state"] = state
        await self.app(scope, receive, send)


class CollectorState:
    """What the routes share: storage, configuration, metrics, rate limiter."""

    def __init__(
        self,
        storage: Storage,
        config: CollectorConfig,
        environment: str,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.storage = storage
        self.config = config
        self.environment = environment
        self.metrics = Metrics()
        self.limiter = DeviceRateLimiter(
            config.device_events_per_second, config.device_burst_events
        )
        self.clock = clock

    def now_ms(self) -> int:
        return int(self.clock() * 1000)


def _json_error(status: int, error: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(error_body(status, error), status_code=status, headers=headers)


def _payload_too_large() -> JSONResponse:
    return JSONResponse({"code": 413, "error": L.ERROR_PAYLOAD_TOO_LARGE}, status_code=413)


def _storage_unavailable() -> JSONResponse:
    return JSONResponse(
        {"code": 503, "error": L.ERROR_STORAGE_UNAVAILABLE},
        status_code=503,
        headers={"Retry-After": str(L.RETRY_AFTER_STORAGE_SECONDS)},
    )


def _content_length(request: Request) -> int | None:
    value = request.headers.get("content-length")
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        return None


async def _read_body(request: Request, limit: int) -> bytes | Response:
    """The decompressed body, or the error response to send instead."""
    encoding = request.headers.get("content-encoding", "identity").strip().lower()
    if encoding in ("gzip", "x-gzip"):
        gzip = True
    elif encoding in ("", "identity"):
        gzip = False
    else:
        return _json_error(415, L.ERROR_UNSUPPORTED_ENCODING)
    raw_limit = limit + (L.GZIP_OVERHEAD_BYTES if gzip else 0)
    declared = _content_length(request)
    if declared is not None and declared > raw_limit:
        return _payload_too_large()  # refused before reading (or inflating) a byte
    try:
        return await read_capped_body(request.stream(), gzip=gzip, limit=limit, raw_limit=raw_limit)
    except BodyTooLarge:
        return _payload_too_large()
    except InvalidGzip:
        return _json_error(400, L.ERROR_INVALID_GZIP)
    except ClientDisconnect:
        return Response(status_code=400)


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


def create_app(
    database: str | Path | Storage,
    *,
    config: CollectorConfig | None = None,
    environment: str = "production",
    forward_interval: float = 1.0,
    forward_backoff: float = 5.0,
) -> Starlette:
    """Build the collector's ASGI app.

    ``database`` is a SQLite path or a ``postgresql://`` URL (the app opens it now, migrating the
    schema, and closes it at lifespan shutdown) or an already open :class:`Storage` (the caller
    keeps ownership). ``config`` maps projects to destination tokens (default: any project,
    no forwarding); ``environment`` picks the tokens (``staging`` or ``production``). When a
    project has a token for it, a background task forwards its events every ``forward_interval``
    seconds, backing off from ``forward_backoff`` seconds after failures.

    Routes: ``POST /2/httpapi`` and ``POST /amplitude/2/httpapi`` (Amplitude HTTP V2 batches),
    ``POST /deletion`` and ``POST /amplitude/deletion``, ``GET /healthz``, ``GET /metrics``, and
    with ``[links]`` configured ``GET /r/collect``; ``GET /robots.txt`` always.
    """
    owned = not isinstance(database, Storage)
    store = open_storage(database)
    cfg = config if config is not None else CollectorConfig()
    state = CollectorState(store, cfg, environment)
    metrics = state.metrics

    async def ingest(request: Request) -> Response:
        started = time.perf_counter()
        try:
            response = await _ingest(request)
        except Exception:
            logger.exception("ingest failed")
            response = _storage_unavailable()
        metrics.observe_latency(time.perf_counter() - started)
        if response.status_code != 200:
            metrics.inc("requests", status=response.status_code)
        return response

    async def _ingest(request: Request) -> Response:
        received_at_ms = state.now_ms()
        body = await _read_body(request, L.MAX_BODY_BYTES)
        if isinstance(body, Response):
            return body
        try:
            batch = await run_in_threadpool(parse_batch, body)
        except RequestRejected as rejected:
            named: set[int] = set()
            for key in ("events_with_invalid_fields", "events_with_missing_fields"):
                for indexes in (rejected.body.get(key) or {}).values():
                    named.update(indexes)
            metrics.inc("events_rejected", len(named))
            return JSONResponse(rejected.body, status_code=rejected.status)
        if not cfg.knows(batch.project):
            metrics.inc("events_rejected", len(batch.events))
            return _json_error(400, L.ERROR_UNKNOWN_PROJECT)
        wait = state.limiter.take(batch.project, _device_counts(batch))
        if wait > 0:
            metrics.inc("events_rejected", len(batch.events))
            retry_after = DeviceRateLimiter.retry_after(wait)
            return JSONResponse(
                {
                    "code": 429,
                    "error": L.ERROR_RATE_LIMITED,
                    "eps_threshold": cfg.device_events_per_second,
                    "retry_after": retry_after,
                },
                status_code=429,
                headers={"Retry-After": str(retry_after)},
            )
        skew = client_skew_ms(request.headers, received_at_ms)
        forward = cfg.token(batch.project, environment) is not None
        try:
            result = await run_in_threadpool(
                lambda: store.insert_batch(
                    batch, received_at_ms=received_at_ms, skew_ms=skew, forward=forward
                )
            )
        except StorageUnavailable as exc:
            logger.warning("refused a batch of %d events with 503: %s", len(batch.events), exc)
            return _storage_unavailable()
        metrics.inc("events_accepted", result.inserted)
        metrics.inc("events_duplicates", result.duplicates)
        metrics.inc("events_rejected", result.rejected)
        metrics.inc("requests", status=200)
        logger.debug(
            "stored %d new events (%d duplicates, %d of deleted devices) for project %r",
            result.inserted,
            result.duplicates,
            result.rejected,
            batch.project,
        )
        body_out: dict[str, Any] = {
            "code": 200,
            "events_ingested": len(batch.events),
            "payload_size_bytes": batch.payload_size_bytes,
            "server_upload_time": received_at_ms,
            "duplicates": result.duplicates,
            "rejected": result.rejected,
        }
        return JSONResponse(body_out)

    async def deletion(request: Request) -> Response:
        body = await _read_body(request, MAX_DELETION_BODY_BYTES)
        if isinstance(body, Response):
            return body
        try:
            wanted = parse_deletion(body)
        except RequestRejected as rejected:
            return JSONResponse(rejected.body, status_code=rejected.status)
        if not cfg.knows(wanted.project):
            return _json_error(400, L.ERROR_UNKNOWN_PROJECT)
        try:
            result = await run_in_threadpool(
                lambda: store.delete_device(
                    wanted.project, wanted.device_id, wanted.reason, now=state.now_ms()
                )
            )
        except StorageUnavailable as exc:
            logger.warning("refused a deletion request with 503: %s", exc)
            return _storage_unavailable()
        metrics.inc("deletions")
        metrics.inc("events_deleted", result.deleted)
        logger.info(
            "deletion request for project %r: %d events and %d pending forwards deleted",
            wanted.project,
            result.deleted,
            result.forwards_deleted,
        )
        return JSONResponse(
            {"code": 200, "deleted": result.deleted, "forwards_deleted": result.forwards_deleted}
        )

    async def healthz(request: Request) -> Response:
        try:
            await run_in_threadpool(store.check_writable)
        except StorageUnavailable as exc:
            logger.warning("health check failed: %s", exc)
            return JSONResponse(
                {"status": "unavailable", "error": "database is not writable"},
                status_code=503,
                headers={"Retry-After": str(L.RETRY_AFTER_STORAGE_SECONDS)},
            )
        return JSONResponse({"status": "ok"})

    async def metrics_route(request: Request) -> Response:
        return PlainTextResponse(
            metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8"
        )

    async def robots(request: Request) -> Response:
        return PlainTextResponse("User-agent: *\nDisallow: /\n")

    background: list[Callable[[], contextlib.AbstractAsyncContextManager[object]]] = []
    if cfg.forwarding(environment):
        from telemetry.collector._forwarder import run_forwarder

        background.append(
            lambda: run_forwarder(state, interval=forward_interval, backoff_base=forward_backoff)
        )

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        try:
            async with contextlib.AsyncExitStack() as stack:
                for start in background:
                    await stack.enter_async_context(start())
                yield
        finally:
            if owned:
                store.close()

    routes: list[BaseRoute] = [Route(path, ingest, methods=["POST"]) for path in INGEST_PATHS]
    routes += [Route(path, deletion, methods=["POST"]) for path in DELETION_PATHS]
    routes.append(Route("/healthz", healthz, methods=["GET"]))
    routes.append(Route("/metrics", metrics_route, methods=["GET"]))
    routes.append(Route("/robots.txt", robots, methods=["GET"]))
    if cfg.links is not None:
        from telemetry.collector._links import link_routes

        routes += link_routes(state, cfg.links)
    app = Starlette(routes=routes, middleware=[Middleware(ForgetClientAddress)], lifespan=lifespan)
    app.state.store = store
    app.state.collector = state
    return app
