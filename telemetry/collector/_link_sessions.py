"""The link tracker's signed session cookies, which remember an affiliate for lead tracking."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Any

from telemetry.collector._config import LinkSettings

__all__ = ["LinkSessions"]


class LinkSessions:
    """Signed session cookies: ``base64url(json) + "." + hex HMAC-SHA256``.

    A cookie carries its expiry (``exp``, ms); an expired or forged one loads as ``None``.
    """

    def __init__(self, settings: LinkSettings) -> None:
        self._key = hashlib.sha256(b"session:" + settings.secret.reveal().encode()).digest()
        self.name = settings.session_name
        self.max_age = max(1, round(settings.session_max_age_minutes * 60))
        self._max_age_ms = int(settings.session_max_age_minutes * 60_000)

    def _mac(self, payload: str) -> str:
        return hmac.new(self._key, payload.encode(), hashlib.sha256).hexdigest()

    def dump(self, data: dict[str, str], now_ms: int) -> str:
        """The cookie value holding ``data`` until ``session_max_age`` from ``now_ms``."""
        payload = base64.urlsafe_b64encode(
            json.dumps({**data, "exp": now_ms + self._max_age_ms}).encode()
        ).decode()
        return f"{payload}.{self._mac(payload)}"

    def load(self, cookie: str | None, now_ms: int) -> dict[str, Any] | None:
        """The data of a valid, unexpired cookie; else ``None``."""
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
