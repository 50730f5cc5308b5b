"""Checking the signature of a link tracker hit: the ``s`` parameter over the request URI as sent.

The signing scheme itself (HMAC-SHA256, or md5 for Barnebys compatibility) is
:mod:`telemetry.signed_links`, shared with ``telemetry sign-url``.
"""

from __future__ import annotations

import hmac

from starlette.requests import Request

from telemetry.signed_links import SignatureMethod, sign_uri, split_signed_uri

__all__ = ["request_uri", "signature_problem"]


def request_uri(request: Request) -> str:
    """The path and query exactly as the client sent them (what the signature covers)."""
    raw_path = request.scope.get("raw_path") or request.url.path.encode()
    query = request.scope.get("query_string", b"")
    uri = raw_path.decode("latin-1")
    return f"{uri}?{query.decode('latin-1')}" if query else uri


def signature_problem(request: Request, secret: str, method: SignatureMethod) -> str | None:
    """Why the request's signature is refused (missing or wrong), or ``None`` when it is valid."""
    split = split_signed_uri(request_uri(request))
    if split is None:
        return "Missing `signed` value"
    signed_part, signature = split
    expected = sign_uri(secret, signed_part, method)
    if not hmac.compare_digest(signature.encode(), expected.encode()):
        return "Invalid `signed` value"
    return None
