"""The ``[dashboard]`` table of the collector's configuration: who may log in, how long a
session lasts, and how the summaries are kept up to date.

Example::

    [dashboard]
    token = "a long random string"     # what the login form asks for (required)
    session_hours = 12                 # a login lasts this long (default 12)
    settle_seconds = 300               # summaries count events received this long ago or more
    refresh_seconds = 10               # how often the summaries catch up
    secure_cookies = false             # true behind a TLS proxy: cookies only over https
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, Final

__all__ = ["MIN_TOKEN_LENGTH", "DashboardSettings", "parse_dashboard"]

#: A token shorter than this is refused: it would be guessable.
MIN_TOKEN_LENGTH: Final = 16

_KEYS: Final = frozenset(
    {"token", "session_hours", "settle_seconds", "refresh_seconds", "secure_cookies"}
)


@dataclass(frozen=True)
class DashboardSettings:
    """The parsed ``[dashboard]`` table. The token is kept only as its SHA-256 digest."""

    token_sha256: bytes
    session_hours: float = 12.0
    #: Events received less than this long ago are not summarised yet: a batch's
    #: ``received_at`` is taken when its request starts, before its transaction commits.
    settle_seconds: float = 300.0
    refresh_seconds: float = 10.0
    #: Cookies always carry ``Secure`` (the collector behind a TLS proxy: it sees plain HTTP
    #: and trusts no forwarded header); else only when the request itself came over https.
    secure_cookies: bool = False

    def __repr__(self) -> str:
        return (
            f"DashboardSettings(token=********, session_hours={self.session_hours}, "
            f"settle_seconds={self.settle_seconds}, refresh_seconds={self.refresh_seconds}, "
            f"secure_cookies={self.secure_cookies})"
        )


def _number(table: dict[str, Any], key: str, default: float, *, zero: bool = False) -> float:
    value = table.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"[dashboard].{key} must be a number")
    if value < 0 or (value == 0 and not zero):
        raise ValueError(f"[dashboard].{key} must be {'>= 0' if zero else 'positive'}")
    return float(value)


def parse_dashboard(table: Any) -> DashboardSettings:
    """The settings of a ``[dashboard]`` table; :class:`ValueError` naming the key (never a
    value) when it is wrong."""
    if not isinstance(table, dict):
        raise ValueError("[dashboard] must be a table")
    unknown = sorted(set(table) - _KEYS)
    if unknown:
        raise ValueError(f"unknown key(s) in [dashboard]: {', '.join(unknown)}")
    token = table.get("token")
    if not isinstance(token, str) or len(token) < MIN_TOKEN_LENGTH:
        raise ValueError(
            f"[dashboard].token must be a string of at least {MIN_TOKEN_LENGTH} characters"
        )
    secure_cookies = table.get("secure_cookies", False)
    if not isinstance(secure_cookies, bool):
        raise ValueError("[dashboard].secure_cookies must be true or false")
    return DashboardSettings(
        token_sha256=hashlib.sha256(token.encode()).digest(),
        session_hours=_number(table, "session_hours", 12.0),
        settle_seconds=_number(table, "settle_seconds", 300.0, zero=True),
        refresh_seconds=_number(table, "refresh_seconds", 10.0),
        secure_cookies=secure_cookies,
    )
