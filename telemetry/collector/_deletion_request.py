"""Parsing a deletion request: exactly ``project``, ``device_id``, ``reason``, ``proof``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from telemetry.collector import _limits as L
from telemetry.collector._strict_json import storable_text, strict_json_loads
from telemetry.collector._validation import RequestRejected, error_body

__all__ = ["DeletionRequest", "parse_deletion"]

_KEYS: Final = ("project", "device_id", "reason", "proof")
_HEX: Final = frozenset("0123456789abcdef")


@dataclass(frozen=True, slots=True)
class DeletionRequest:
    """A valid deletion request."""

    project: str
    device_id: str
    reason: str
    #: The device's proof of ownership (64 lowercase hex digits).
    proof: str


def _reject(error: str, *, missing_field: str | None = None) -> RequestRejected:
    return RequestRejected(400, error_body(400, error, missing_field=missing_field))


def parse_deletion(body: bytes) -> DeletionRequest:
    """Validate a deletion request body; raise :class:`RequestRejected` (400) if it is not exactly
    an object with the four string keys (no other key, no other type; ``proof`` 64 lowercase hex
    digits)."""
    if not body.strip():
        raise _reject(L.ERROR_MISSING_BODY)
    try:
        payload = strict_json_loads(body)
    except (ValueError, RecursionError):
        raise _reject(L.ERROR_INVALID_JSON) from None
    if not isinstance(payload, dict):
        raise _reject(L.ERROR_INVALID_JSON)
    unknown = sorted(set(payload) - set(_KEYS))
    if unknown:
        raise _reject(f"{L.ERROR_UNKNOWN_KEYS}: {', '.join(repr(k)[:40] for k in unknown[:5])}")
    for key in _KEYS:
        if key not in payload:
            raise _reject(L.ERROR_MISSING_FIELD, missing_field=key)
        if not isinstance(payload[key], str):
            raise _reject(f"{L.ERROR_WRONG_TYPE}: {key}")
    project, device_id, reason = payload["project"], payload["device_id"], payload["reason"]
    for key, value in (("project", project), ("device_id", device_id), ("reason", reason)):
        if not storable_text(value):  # a NUL or a lone surrogate: not storable as text
            raise _reject(f"{L.ERROR_WRONG_TYPE}: {key}")
    if not project.strip() or len(project) > L.MAX_API_KEY_LENGTH:
        raise _reject(L.ERROR_INVALID_API_KEY)
    if not device_id.strip() or len(device_id) > L.MAX_INSERT_ID_LENGTH:
        raise _reject(f"{L.ERROR_WRONG_TYPE}: device_id")
    proof = payload["proof"]
    if len(proof) != 64 or not set(proof) <= _HEX:
        raise _reject(f"{L.ERROR_WRONG_TYPE}: proof")
    return DeletionRequest(project=project, device_id=device_id, reason=reason, proof=proof)
