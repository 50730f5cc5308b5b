"""The dashboard's login: the token check (constant time, on SHA-256 digests), signed session
cookies, the login form's CSRF token (double submit: a cookie and a form field that must match)
and the per-network limit on login attempts."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Callable
from typing import Final

from starlette.requests import Request
from starlette.responses import Response

from telemetry.collector._dashboard_settings import DashboardSettings
from telemetry.collector._links import mask_ip
from telemetry.collector._ratelimit import DeviceRateLimiter

__all__ = [
    "CSRF_COOKIE",
    "LOGIN_BURST",
    "LOGIN_PER_SECOND",
    "SESSION_COOKIE",
    "DashboardAuth",
]

SESSION_COOKIE: Final = "dashboard_session"
CSRF_COOKIE: Final = "dashboard_csrf"
#: Login attempts per network (IPv4 /24, IPv6 /48): a burst of 10, then one per 6 s.
LOGIN_BURST: Final = 10
LOGIN_PER_SECOND: Final = 1 / 6
_COOKIE_PATH: Final = "/dashboard"
#: Hex digits of a session's HMAC-SHA256 signature.
_SIGNATURE_LENGTH: Final = 64


class DashboardAuth:
    """Checks tokens and issues and verifies session cookies for one :class:`DashboardSettings`.

    The session key is derived from the token, so every collector process with the same
    configuration accepts the same sessions, and changing the token ends them all.
    """

    def __init__(
        self,
        settings: DashboardSettings,
        *,
        clock: Callable[[], float] = time.time,
        limiter: DeviceRateLimiter | None = None,
    ) -> None:
        self._settings = settings
        self._key = hmac.new(settings.token_sha256, b"dashboard-session-v1", "sha256").digest()
        self._clock = clock
        #: Login attempts per network (shared by the worker processes when given theirs).
        self.limiter = limiter or DeviceRateLimiter(LOGIN_PER_SECOND, LOGIN_BURST)

    # ------------------------------------------------------------------ token and limit

    def token_matches(self, given: str) -> bool:
        """Whether ``given`` is the configured token (compared as digests, in constant time)."""
        digest = hashlib.sha256(given.encode("utf-8", "surrogatepass")).digest()
        return hmac.compare_digest(digest, self._settings.token_sha256)

    def login_wait(self, request: Request) -> float:
        """Seconds the sender's network must wait before another login attempt (0: go on);
        takes one attempt from its budget when it may go on."""
        network = mask_ip(request.scope.get("state", {}).get("peer_host")) or "unknown"
        return self.limiter.take("dashboard-login", {network: 1})

    # ------------------------------------------------------------------ sessions

    def _sign(self, payload: str) -> str:
        return hmac.new(self._key, payload.encode(), "sha256").hexdigest()

    def new_session(self) -> str:
        """A session cookie value: ``expiry.nonce.signature``."""
        expires = int(self._clock() + self._settings.session_hours * 3600)
        payload = f"{expires}.{secrets.token_hex(16)}"
        return f"{payload}.{self._sign(payload)}"

    def is_logged_in(self, request: Request) -> bool:
        """Whether the request carries a valid, unexpired session cookie (any other value,
        non-ASCII included, is simply not a session)."""
        value = request.cookies.get(SESSION_COOKIE, "")
        payload, _, signature = value.rpartition(".")
        if not payload or not value.isascii() or len(signature) != _SIGNATURE_LENGTH:
            return False
        if not hmac.compare_digest(self._sign(payload).encode(), signature.encode()):
            return False
        expires, _, _ = payload.partition(".")
        return expires.isdigit() and int(expires) > self._clock()

    def set_session(self, response: Response, request: Request) -> None:
        response.set_cookie(
            SESSION_COOKIE,
            self.new_session(),
            max_age=int(self._settings.session_hours * 3600),
            path=_COOKIE_PATH,
            httponly=True,
            samesite="strict",
            secure=self._secure(request),
        )

    def _secure(self, request: Request) -> bool:
        """Whether cookies get ``Secure``: always with ``secure_cookies`` (a TLS proxy in
        front; the collector itself speaks plain HTTP), else when the request came over https."""
        return self._settings.secure_cookies or request.url.scheme == "https"

    @staticmethod
    def clear_session(response: Response) -> None:
        response.delete_cookie(SESSION_COOKIE, path=_COOKIE_PATH, httponly=True, samesite="strict")

    # ------------------------------------------------------------------ CSRF

    @staticmethod
    def csrf_token(request: Request) -> str:
        """The login form's CSRF token: the request's cookie, or a new random one."""
        current = request.cookies.get(CSRF_COOKIE, "")
        if len(current) == 43 and current.replace("-", "").replace("_", "").isalnum():
            return current
        return secrets.token_urlsafe(32)

    def set_csrf(self, response: Response, request: Request, token: str) -> None:
        response.set_cookie(
            CSRF_COOKIE,
            token,
            path=_COOKIE_PATH,
            httponly=True,
            samesite="strict",
            secure=self._secure(request),
        )

    @staticmethod
    def csrf_matches(request: Request, form_token: str) -> bool:
        """Whether the form's token is the one in the request's CSRF cookie."""
        cookie = request.cookies.get(CSRF_COOKIE, "")
        return bool(cookie) and hmac.compare_digest(cookie.encode(), form_token.encode())
