"""Signed tracking links for the collector's link tracker (``GET /r/collect``, Barnebys style).

A link is ``BASE?QUERY&s=SIGNATURE`` where the signature covers the request URI up to, not
including, the last ``&s=`` (path + ``?`` + query, exactly as sent):

* ``hmac-sha256`` (default): hex HMAC-SHA256 keyed with the secret;
* ``md5``: hex md5(secret + uri), the original Barnebys scheme, for compatibility only.

Parameters: ``p`` program id and ``k`` kind (required), ``a`` affiliate (lead), ``url`` redirect
target, ``d1``..``d5`` dimensions, ``sp`` sponsored (``1``). This module has no web framework
dependency; ``telemetry sign-url`` uses it.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence
from typing import Final, Literal
from urllib.parse import urlencode, urlsplit

__all__ = ["LINK_PARAMS", "SIGNATURE_METHODS", "sign_uri", "signed_url", "split_signed_uri"]

SignatureMethod = Literal["hmac-sha256", "md5"]
SIGNATURE_METHODS: Final = ("hmac-sha256", "md5")
#: The query parameters a link may carry (besides ``s``).
LINK_PARAMS: Final = ("p", "k", "a", "url", "d1", "d2", "d3", "d4", "d5", "sp", "_h")

_SIGNATURE_MARK: Final = "&s="


def sign_uri(secret: str, uri: str, method: SignatureMethod = "hmac-sha256") -> str:
    """The signature (hex) of ``uri`` (path + ``?`` + query, without ``&s=...``)."""
    if method == "hmac-sha256":
        return hmac.new(secret.encode(), uri.encode(), hashlib.sha256).hexdigest()
    if method == "md5":
        return hashlib.md5((secret + uri).encode(), usedforsecurity=False).hexdigest()
    raise ValueError(f"unknown signature method {method!r}")


def signed_url(
    base: str,
    params: Sequence[tuple[str, str]],
    secret: str,
    method: SignatureMethod = "hmac-sha256",
) -> str:
    """``base`` (e.g. ``https://t.example.com/r/collect``) with ``params`` and a signature."""
    parts = urlsplit(base)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.query:
        raise ValueError("base must be an http(s) URL without a query, e.g. https://host/r/collect")
    unknown = [key for key, _ in params if key not in LINK_PARAMS]
    if unknown:
        raise ValueError(f"unknown link parameter(s): {', '.join(unknown)}")
    query = urlencode(list(params))
    uri = f"{parts.path or '/'}?{query}"
    return f"{parts.scheme}://{parts.netloc}{uri}{_SIGNATURE_MARK}{sign_uri(secret, uri, method)}"


def split_signed_uri(uri: str) -> tuple[str, str] | None:
    """``(signed part, signature)`` of a request URI, or ``None`` if it carries no ``&s=``.

    The signature is whatever follows the last ``&s=``; the signed part is everything before it.
    """
    index = uri.rfind(_SIGNATURE_MARK)
    if index < 0:
        return None
    return uri[:index], uri[index + len(_SIGNATURE_MARK) :]
