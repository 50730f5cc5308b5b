"""The error answers several routes give: Amplitude-shaped 400/415, 413, the storage 503, and
the 503 of a request the collector's shutdown cut short."""

from __future__ import annotations

from starlette.responses import JSONResponse

from telemetry.collector import _limits as L
from telemetry.collector._validation import error_body

__all__ = ["json_error", "payload_too_large", "stopping", "storage_unavailable"]


def json_error(status: int, error: str, headers: dict[str, str] | None = None) -> JSONResponse:
    """An answer with ``status`` and Amplitude's error body carrying ``error``."""
    return JSONResponse(error_body(status, error), status_code=status, headers=headers)


def payload_too_large() -> JSONResponse:
    """413: too many events, or a body over the cap."""
    return JSONResponse({"code": 413, "error": L.ERROR_PAYLOAD_TOO_LARGE}, status_code=413)


def storage_unavailable() -> JSONResponse:
    """503 with ``Retry-After``: the database could not be written, nothing was committed."""
    return JSONResponse(
        {"code": 503, "error": L.ERROR_STORAGE_UNAVAILABLE},
        status_code=503,
        headers={"Retry-After": str(L.RETRY_AFTER_STORAGE_SECONDS)},
    )


def busy() -> JSONResponse:
    """503 with ``Retry-After``: the bodies being read already fill the process's budget."""
    return JSONResponse(
        {"code": 503, "error": L.ERROR_BUSY},
        status_code=503,
        headers={"Retry-After": str(L.RETRY_AFTER_BUSY_SECONDS)},
    )


def stopping() -> JSONResponse:
    """503 with ``Retry-After`` and ``Connection: close``: the collector stopped before it could
    answer (a batch may have been stored all the same; its resend is deduplicated)."""
    return JSONResponse(
        {"code": 503, "error": L.ERROR_STOPPING},
        status_code=503,
        headers={"Retry-After": str(L.RETRY_AFTER_STORAGE_SECONDS), "Connection": "close"},
    )
