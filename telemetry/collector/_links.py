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

Failing to store a row is logged and never breaks the link. The signature check is
``_link_signature``, the session cookie ``_link_sessions``.
"""

from __future__ import annotations

import base64
import dataclasses
import ipaddress
import logging
from typing import Final
from urllib.parse import quote, urlsplit

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import QueryParams
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from telemetry.collector._config import LinkSettings
from telemetry.collector._link_sessions import LinkSessions
from telemetry.collector._link_signature import signature_problem
from telemetry.collector._state import CollectorState
from telemetry.collector._storage import LinkHit, StorageUnavailable

__all__ = ["EMPTY_GIF", "LinkTracker", "host_allowed", "link_routes", "mask_ip"]

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


def _error(status: int, message: str) -> Response:
    return PlainTextResponse(message, status_code=status, headers=_CORS)


def _program_and_kind(params: QueryParams) -> tuple[str, str]:
    """``p`` and ``k`` (dashes in the kind read as underscores); ``""`` when absent."""
    return params.get("p", ""), params.get("k", "").replace("-", "_")


def _text(value: str) -> str:
    """A parameter as stored: NUL (which PostgreSQL's text refuses, losing the row) becomes
    U+FFFD, as do lone surrogates."""
    if "\0" in value:
        value = value.replace("\0", "\ufffd")
    return value.encode("utf-8", "replace").decode("utf-8") if not value.isascii() else value


def _hit(request: Request, now_ms: int) -> LinkHit:
    """The row a (valid) hit stores; ``lead`` false, the client's address masked; every text
    storable on both backends (:func:`_text`)."""
    params = request.query_params
    program_id, kind = _program_and_kind(params)
    return LinkHit(
        program_id=_text(program_id),
        kind=_text(kind),
        lead=False,
        affiliate=_text(params.get("a", "")),
        url=_text(params.get("url", "")),
        client_ip=mask_ip(request.scope.get("state", {}).get("peer_host")),
        user_agent=_text(request.headers.get("user-agent", "")[:_MAX_PARAM_LENGTH]),
        dimensions=(
            _text(params.get("d1", "")),
            _text(params.get("d2", "")),
            _text(params.get("d3", "")),
            _text(params.get("d4", "")),
            _text(params.get("d5", "")),
        ),
        is_sponsored=params.get("sp") == "1",
        created_at=now_ms,
    )


@dataclasses.dataclass(frozen=True, slots=True)
class _SessionChange:
    """What the answer does to the session cookie: set it to a value, clear it, or neither."""

    set_to: str | None = None
    clear: bool = False


class LinkTracker:
    """``GET /r/collect`` over the collector's shared state (:meth:`collect` is the route)."""

    def __init__(self, state: CollectorState, settings: LinkSettings) -> None:
        self._state = state
        self._settings = settings
        self._sessions = LinkSessions(settings)
        self._secret = settings.secret.reveal()

    async def collect(self, request: Request) -> Response:
        """Check, store and answer one hit (steps 1 to 6 of the module docstring)."""
        refusal = self._refusal(request)
        if refusal is not None:
            return refusal
        now = self._state.now_ms()
        hit = _hit(request, now)
        hits, change = self._lead(hit, request.cookies.get(self._sessions.name), now)
        await self._store(hits)
        return self._answer(hit.url, change)

    def _refusal(self, request: Request) -> Response | None:
        """The answer refusing the hit (bad signature or parameters), if any."""
        problem = signature_problem(request, self._secret, self._settings.signature)
        if problem is not None:
            return _error(400, problem)
        params = request.query_params
        if any(len(v) > _MAX_PARAM_LENGTH for v in params.values()):
            return _error(400, "Parameter too long")
        program_id, kind = _program_and_kind(params)
        if not program_id or not kind:
            if self._settings.site_url:
                return RedirectResponse(self._settings.site_url, status_code=307, headers=_CORS)
            return _error(400, "Missing required `programId` and/or `kind` values")
        url = params.get("url", "")
        if url and not host_allowed(url, self._settings.allowed_hosts):
            return _error(400, "Redirect target not allowed")
        return None

    def _lead(
        self, hit: LinkHit, cookie: str | None, now: int
    ) -> tuple[list[LinkHit], _SessionChange]:
        """The rows to store and the cookie change: a hit with an affiliate starts a session; a
        later one of the same kind without it adds the remembered program's lead row."""
        session = self._sessions.load(cookie, now)
        if hit.affiliate:
            remembered = {"kind": hit.kind, "programId": hit.program_id}
            return [hit], _SessionChange(set_to=self._sessions.dump(remembered, now))
        if session is not None and session.get("kind") == hit.kind:
            lead_program = str(session.get("programId", ""))
            lead = dataclasses.replace(hit, program_id=lead_program, lead=True, affiliate="")
            return [hit, lead], _SessionChange(clear=True)
        return [hit], _SessionChange()

    async def _store(self, hits: list[LinkHit]) -> None:
        """Store the rows; a failure is logged, never answered (the link must keep working)."""
        try:
            await run_in_threadpool(self._state.storage.insert_link_hits, hits)
            self._state.metrics.inc("link_hits", len(hits))
        except StorageUnavailable as exc:
            logger.warning("a link hit was not stored: %s", exc)

    def _answer(self, url: str, change: _SessionChange) -> Response:
        """307 to ``url`` (else the 1x1 GIF), with the session cookie set or cleared."""
        response: Response
        if url:
            response = RedirectResponse(quote(url, safe=":/?#[]@!$&'()*+,;=%~"), 307, _CORS)
        else:
            response = Response(
                EMPTY_GIF,
                media_type="image/gif",
                headers={**_CORS, "Cache-Control": "public, max-age=0"},
            )
        name = self._sessions.name
        if change.set_to is not None:
            response.set_cookie(
                name, change.set_to, max_age=self._sessions.max_age, httponly=True, samesite="lax"
            )
        elif change.clear:
            response.delete_cookie(name, httponly=True, samesite="lax")
        return response


async def _favicon(request: Request) -> Response:
    return Response(status_code=204, headers=_CORS)


def link_routes(state: CollectorState, settings: LinkSettings) -> list[BaseRoute]:
    """The tracker's routes for ``settings``."""
    tracker = LinkTracker(state, settings)
    return [
        Route("/r/collect", tracker.collect, methods=["GET"]),
        Route("/favicon.ico", _favicon, methods=["GET"]),
    ]
