"""The signed link tracker (Barnebys Analytics' role): ``GET /r/collect`` and ``/favicon.ico``.

A hit is checked and answered in this order:

1. the signature (``s``, last parameter) over the request URI up to the last ``&s=``:
   HMAC-SHA256 by default, md5(secret + uri) when configured (``telemetry.signed_links``);
   missing or wrong: **400**;
2. ``p`` (program id) and ``k`` (kind) are required: else **307** to ``site_url`` if configured,
   else **400**;
3. a ``url`` whose host is not allowed (``allowed_hosts``; ``.example.com`` means that domain and
   its subdomains; http(s) only): **400**, no open redirect;
4. a row is stored: program id, kind, ``lead = false``, affiliate, url, the client IP *masked*
   (IPv4 /24, IPv6 /48), user agent, ``d1``..``d5``, sponsored (``sp == "1"``), time;
5. lead tracking through a signed session cookie (``session_name``, ``session_max_age``
   minutes): a hit with ``a`` remembers ``{kind, program id}``; a later hit without ``a`` and with
   the same kind adds a second row for the remembered program with ``lead = true`` and clears the
   session. An expired or forged cookie is ignored;
6. the answer: **307** to ``url`` when given, else a 1x1 GIF (``Cache-Control: public,
   max-age=0``). Every answer carries ``Access-Control-Allow-Origin: *``.

Failing to store a row is logged and never breaks the link.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import ipaddress
import json
import logging
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import quote, urlsplit

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from telemetry.collector._config import LinkSettings
from telemetry.collector._storage import LinkHit, StorageUnavailable
from telemetry.signed_links import sign_uri, split_signed_uri

if TYPE_CHECKING:
    from telemetry.collector._app import CollectorState

__all__ = ["EMPTY_GIF", "host_allowed", "link_routes", "mask_ip"]

logger = logging.getLogger("telemetry.collector.links")

#: The smallest transparent 1x1 GIF (43 bytes).
EMPTY_GIF: Final = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")
_CORS: Final = {"Access-Control-Allow-Origin": "*"}
_MAX_PARAM_LENGTH: Final = 2048


def mask_ip(address: str | None) -> str:
    """The address with its host part zeroed (IPv4 /24, IPv6 /48); ``""`` if unknown."""
    if not address:
        return ""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return ""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    prefix = 24 if ip.version == 4 else 48
    return str(ipaddress.ip_network(f"{ip}/{prefix}", strict=False).network_address)


def host_allowed(url: str, allowed: tuple[str, ...]) -> bool:
    """Whether ``url`` is an http(s) URL to an allowed host."""
    try:
        parts = urlsplit(url)
        host = (parts.hostname or "").lower().rstrip(".")
    except ValueError:
        return False
    if parts.scheme not in ("http", "https") or not host or "\\" in url:
        return False
    for entry in allowed:
        if entry.startswith("."):
            if host == entry[1:] or host.endswith(entry):
                return True
        elif host == entry:
            return True
    return False


class _Sessions:
    """Signed session cookies: ``base64url(json) + "." + hex HMAC-SHA256``."""

    def __init__(self, settings: LinkSettings) -> None:
        self._key = hashlib.sha256(b"session:" + settings.secret.reveal().encode()).digest()
        self.name = settings.session_name
        self.max_age = max(1, round(settings.session_max_age_minutes * 60))
        self._max_age_ms = int(settings.session_max_age_minutes * 60_000)

    def _mac(self, payload: str) -> str:
        return hmac.new(self._key, payload.encode(), hashlib.sha256).hexdigest()

    def dump(self, data: dict[str, str], now_ms: int) -> str:
        payload = base64.urlsafe_b64encode(
            json.dumps({**data, "exp": now_ms + self._max_age_ms}).encode()
        ).decode()
        return f"{payload}.{self._mac(payload)}"

    def load(self, cookie: str | None, now_ms: int) -> dict[str, Any] | None:
        if not cookie or "." not in cookie:
            return None
        payload, _, mac = cookie.rpartition(".")
        if not hmac.compare_digest(mac, self._mac(payload)):
            return None
        try:
            data = json.loads(base64.urlsafe_b64decode(payload.encode()))
        except ValueError:
            return None
        if not isinstance(data, dict) or not isinstance(data.get("exp"), int):
            return None
        return data if data["exp"] > now_ms else None


def _request_uri(request: Request) -> str:
    raw_path = request.scope.get("raw_path") or request.url.path.encode()
    query = request.scope.get("query_string", b"")
    uri = raw_path.decode("latin-1")
    return f"{uri}?{query.decode('latin-1')}" if query else uri


def _error(status: int, message: str) -> Response:
    return PlainTextResponse(message, status_code=status, headers=_CORS)


def link_routes(state: CollectorState, settings: LinkSettings) -> list[BaseRoute]:
    """The tracker's routes for ``settings``."""
    sessions = _Sessions(settings)
    secret = settings.secret.reveal()

    async def collect(request: Request) -> Response:
        split = split_signed_uri(_request_uri(request))
        if split is None:
            return _error(400, "Missing `signed` value")
        signed_part, signature = split
        expected = sign_uri(secret, signed_part, settings.signature)
        if not hmac.compare_digest(signature.encode(), expected.encode()):
            return _error(400, "Invalid `signed` value")

        params = request.query_params
        if any(len(v) > _MAX_PARAM_LENGTH for v in params.values()):
            return _error(400, "Parameter too long")
        program_id, kind = params.get("p", ""), params.get("k", "").replace("-", "_")
        if not program_id or not kind:
            if settings.site_url:
                return RedirectResponse(settings.site_url, status_code=307, headers=_CORS)
            return _error(400, "Missing required `programId` and/or `kind` values")
        url = params.get("url", "")
        if url and not host_allowed(url, settings.allowed_hosts):
            return _error(400, "Redirect target not allowed")

        now = state.now_ms()
        affiliate = params.get("a", "")
        dimensions = (
            params.get("d1", ""),
            params.get("d2", ""),
            params.get("d3", ""),
            params.get("d4", ""),
            params.get("d5", ""),
        )
        hit = LinkHit(
            program_id=program_id,
            kind=kind,
            lead=False,
            affiliate=affiliate,
            url=url,
            client_ip=mask_ip(request.scope.get("state", {}).get("peer_host")),
            user_agent=request.headers.get("user-agent", "")[:_MAX_PARAM_LENGTH],
            dimensions=dimensions,
            is_sponsored=params.get("sp") == "1",
            created_at=now,
        )
        hits = [hit]
        session = sessions.load(request.cookies.get(sessions.name), now)
        set_session: str | None = None
        clear_session = False
        if affiliate:
            set_session = sessions.dump({"kind": kind, "programId": program_id}, now)
        elif session is not None and session.get("kind") == kind:
            lead_program = str(session.get("programId", ""))
            hits.append(dataclasses.replace(hit, program_id=lead_program, lead=True, affiliate=""))
            clear_session = True
        try:
            await run_in_threadpool(state.storage.insert_link_hits, hits)
            state.metrics.inc("link_hits", len(hits))
        except StorageUnavailable as exc:
            logger.warning("a link hit was not stored: %s", exc)

        response: Response
        if url:
            response = RedirectResponse(quote(url, safe=":/?#[]@!$&'()*+,;=%~"), 307, _CORS)
        else:
            response = Response(
                EMPTY_GIF,
                media_type="image/gif",
                headers={**_CORS, "Cache-Control": "public, max-age=0"},
            )
        if set_session is not None:
            response.set_cookie(
                sessions.name, set_session, max_age=sessions.max_age, httponly=True, samesite="lax"
            )
        elif clear_session:
            response.delete_cookie(sessions.name, httponly=True, samesite="lax")
        return response

    async def favicon(request: Request) -> Response:
        return Response(status_code=204, headers=_CORS)

    return [
        Route("/r/collect", collect, methods=["GET"]),
        Route("/favicon.ico", favicon, methods=["GET"]),
    ]
