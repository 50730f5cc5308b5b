"""The collector's operational endpoints: health check, Prometheus metrics, robots.txt."""

from __future__ import annotations

import logging

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response

from telemetry.collector import _limits as L
from telemetry.collector._state import CollectorState
from telemetry.collector._storage import StorageUnavailable

__all__ = ["ServiceRoutes"]

logger = logging.getLogger("telemetry.collector")


class ServiceRoutes:
    """Health, metrics and robots answers over the collector's shared state."""

    def __init__(self, state: CollectorState) -> None:
        self._state = state

    async def healthz(self, request: Request) -> Response:
        """``{"status": "ok"}``, or 503 when the database cannot be written now."""
        try:
            await run_in_threadpool(self._state.storage.check_writable)
        except StorageUnavailable as exc:
            logger.warning("health check failed: %s", exc)
            return JSONResponse(
                {"status": "unavailable", "error": "database is not writable"},
                status_code=503,
                headers={"Retry-After": str(L.RETRY_AFTER_STORAGE_SECONDS)},
            )
        return JSONResponse({"status": "ok"})

    async def metrics(self, request: Request) -> Response:
        """The Prometheus text exposition."""
        return PlainTextResponse(
            self._state.metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8"
        )

    async def robots(self, request: Request) -> Response:
        """Crawlers are asked to stay away from every path."""
        return PlainTextResponse("User-agent: *\nDisallow: /\n")
