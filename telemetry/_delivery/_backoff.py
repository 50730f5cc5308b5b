"""The retry timing rules of the uploader, as pure functions: backoff after failures and the
wait a ``Retry-After`` header asks for."""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import UTC, datetime


def backoff_delay(
    failures: int,
    *,
    initial: float = 5.0,
    cap: float = 600.0,
    rand: Callable[[float, float], float] = random.uniform,
) -> float:
    """Seconds to wait after ``failures`` consecutive failures (1 = the first failure).

    Exponential with full jitter between ``initial`` and the ceiling ``initial * 2**(n-1)``,
    the ceiling capped at ``cap``: 5 s, then 5-10 s, 5-20 s, ... up to 5-600 s.
    """
    exponent = min(max(0, failures - 1), 64)  # 2**64 * initial is past any cap; no overflow
    ceiling = min(cap, initial * 2.0**exponent)
    return rand(initial, ceiling) if ceiling > initial else initial


def parse_retry_after(
    value: str | None,
    *,
    default: float = 30.0,
    maximum: float = 3600.0,
    now: datetime | None = None,
) -> float:
    """Seconds from a ``Retry-After`` header (seconds or an HTTP date), within [0, maximum]."""
    if not value:
        return default
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        from email.utils import parsedate_to_datetime  # only an HTTP-date needs the parser

        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return default
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - (now or datetime.now(UTC))).total_seconds()
    if seconds != seconds:  # NaN
        return default
    return max(0.0, min(maximum, seconds))
