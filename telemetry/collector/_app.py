"""The collector's ASGI application: HTTP routes, status codes and response bodies."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from telemetry.collector import _limits as L
from telemetry.collector._body import BodyTooLarge, InvalidGzip, read_capped_body
from telemetry.collector._storage import EventStore, StorageUnavailable
from telemetry.collector._validation import RequestRejected, error_body, parse_batch

__all__ = ["INGEST_PATHS", "create_app"]

logger = logging.getLogger("telemetry.collector")

#: Paths accepting Amplitude HTTP V2 batches: Amplitude's own, and balena's proxy path.
INGEST_PATHS = ("/2/httpapi", "/amplitude/2/httpapi")


class ForgetClientAddress:
    """ASGI middleware that removes the peer address from the scope before any route sees it.

    The collector never stores or logs the sender's IP; dropping it here makes sure no handler,
    error page or log line can pick it up by accident.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            scope = dict(scope)
            scope["client"] = None
        await self.app(scope, receive, send)


def _payload_too_large() -> JSONResponse:
    return JSONResponse({"code": 413, "error": L.ERROR_PAYLOAD_TOO_LARGE}, status_code=413)


def _bad_request(error: str) -> JSONResponse:
    return JSONResponse(error_body(400, error), status_code=400)


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


def create_app(database: str | Path | EventStore) -> Starlette:
    """Build the collector's ASGI app.

    ``database`` is a path (the app opens it now, migrating the schema, and closes it at lifespan
    shutdown) or an already open :class:`EventStore` (the caller keeps ownership).

    Routes: ``POST /2/httpapi`` and ``POST /amplitude/2/httpapi`` (Amplitude HTTP V2 batches),
    ``GET /healthz``.
    """
    owned = not isinstance(database, EventStore)
    store = EventStore(database) if not isinstance(database, EventStore) else database

    async def ingest(request: Request) -> Response:
        received_at_ms = int(time.time() * 1000)
        encoding = request.headers.get("content-encoding", "identity").strip().lower()
        if encoding in ("gzip", "x-gzip"):
            gzip = True
        elif encoding in ("", "identity"):
            gzip = False
        else:
            return JSONResponse(error_body(415, L.ERROR_UNSUPPORTED_ENCODING), status_code=415)
        raw_limit = L.MAX_BODY_BYTES + (L.GZIP_OVERHEAD_BYTES if gzip else 0)
        declared = _content_length(request)
        if declared is not None and declared > raw_limit:
            return _payload_too_large()
        try:
            body = await read_capped_body(
                request.stream(), gzip=gzip, limit=L.MAX_BODY_BYTES, raw_limit=raw_limit
            )
        except BodyTooLarge:
            return _payload_too_large()
        except InvalidGzip:
            return _bad_request(L.ERROR_INVALID_GZIP)
        except ClientDisconnect:
            return Response(status_code=400)
        try:
            batch = await run_in_threadpool(parse_batch, body)
        except RequestRejected as rejected:
            return JSONResponse(rejected.body, status_code=rejected.status)
        try:
            result = await run_in_threadpool(
                store.insert_batch, batch, received_at_ms=received_at_ms
            )
        except StorageUnavailable as exc:
            logger.warning("refused a batch of %d events with 503: %s", len(batch.events), exc)
            return _storage_unavailable()
        logger.debug(
            "stored %d new events (%d duplicates) for project %r",
            result.inserted,
            result.duplicates,
            batch.project,
        )
        body_out: dict[str, Any] = {
            "code": 200,
            "events_ingested": len(batch.events),
            "payload_size_bytes": batch.payload_size_bytes,
            "server_upload_time": received_at_ms,
            "duplicates": result.duplicates,
        }
        return JSONResponse(body_out)

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

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        try:
            yield
        finally:
            if owned:
                store.close()

    routes = [Route(path, ingest, methods=["POST"]) for path in INGEST_PATHS]
    routes.append(Route("/healthz", healthz, methods=["GET"]))
    app = Starlette(routes=routes, middleware=[Middleware(ForgetClientAddress)], lifespan=lifespan)
    app.state.store = store
    return app
