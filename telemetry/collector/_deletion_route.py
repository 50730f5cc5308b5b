"""The deletion endpoint (``POST /deletion``, ``POST /amplitude/deletion``): with the device's
proof of ownership, delete its events, error reports and pending forwards and keep its
tombstone.

Every request that is well formed gets the same answer, ``{"code": 200}``, whether the proof
matched (rows deleted), did not (nothing done), or the device is unknown: the answer tells a
stranger nothing about a device. Requests are limited per network (see ``_limits``)."""

from __future__ import annotations

import logging
from typing import Final

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from telemetry.collector import _limits as L
from telemetry.collector._body import read_request_body
from telemetry.collector._deletion_request import parse_deletion
from telemetry.collector._links import mask_ip
from telemetry.collector._ratelimit import DeviceRateLimiter
from telemetry.collector._responses import json_error, storage_unavailable
from telemetry.collector._state import CollectorState
from telemetry.collector._storage import StorageUnavailable
from telemetry.collector._validation import RequestRejected
from telemetry.wire import proof_hash

__all__ = ["DELETION_PATHS", "MAX_DELETION_BODY_BYTES", "DeletionRoute"]

logger = logging.getLogger("telemetry.collector")

#: Paths accepting deletion requests (ours, and under balena's ``/amplitude`` prefix).
DELETION_PATHS: Final = ("/deletion", "/amplitude/deletion")
#: Largest accepted deletion request body (decompressed).
MAX_DELETION_BODY_BYTES: Final = 16 * 1024
#: Bucket "project" of the per-network deletion limiter.
_DELETIONS: Final = "deletions"


def _rate_limited(wait: float) -> JSONResponse:
    retry_after = DeviceRateLimiter.retry_after(wait)
    return JSONResponse(
        {"code": 429, "error": L.ERROR_DELETIONS_RATE_LIMITED, "retry_after": retry_after},
        status_code=429,
        headers={"Retry-After": str(retry_after)},
    )


class DeletionRoute:
    """The deletion endpoint over the collector's shared state (:meth:`handle` is the route)."""

    def __init__(self, state: CollectorState) -> None:
        self._state = state

    async def handle(self, request: Request) -> Response:
        """Honour one deletion request, or answer why not (400, 413, 415, 429, 503)."""
        state = self._state
        network = mask_ip(request.scope.get("state", {}).get("peer_host"))
        wait = state.deletion_limiter.take(_DELETIONS, {network: 1})
        if wait > 0:
            state.metrics.inc("deletions_rate_limited")
            return _rate_limited(wait)
        body = await read_request_body(request, MAX_DELETION_BODY_BYTES)
        if isinstance(body, Response):
            return body
        try:
            wanted = parse_deletion(body)
        except RequestRejected as rejected:
            return JSONResponse(rejected.body, status_code=rejected.status)
        if not state.config.knows(wanted.project):
            return json_error(400, L.ERROR_UNKNOWN_PROJECT)
        try:
            result = await run_in_threadpool(
                lambda: state.storage.delete_device(
                    wanted.project,
                    wanted.device_id,
                    wanted.reason,
                    proof_hash=proof_hash(wanted.proof),
                    now=state.now_ms(),
                )
            )
        except StorageUnavailable as exc:
            logger.warning("refused a deletion request with 503: %s", exc)
            return storage_unavailable()
        if not result.verified:
            state.metrics.inc("deletions_unverified")
            logger.info("deletion request for project %r: proof mismatch", wanted.project)
            return JSONResponse({"code": 200})
        state.metrics.inc("deletions")
        state.metrics.inc("events_deleted", result.deleted)
        logger.info(
            "deletion request for project %r: %d events, %d pending forwards and %d error "
            "reports deleted",
            wanted.project,
            result.deleted,
            result.forwards_deleted,
            result.reports_deleted,
        )
        return JSONResponse({"code": 200})
