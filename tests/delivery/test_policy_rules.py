"""The pure rules behind the response policy: backoff, Retry-After, 400 bodies."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from telemetry._delivery._backoff import backoff_delay, parse_retry_after
from telemetry.wire import rejected_indexes


def test_backoff_is_full_jitter_from_5_s_to_a_10_min_cap():
    assert backoff_delay(1) == 5.0
    rng = random.Random(7)
    for failures in range(1, 30):
        ceiling = min(600.0, 5.0 * 2 ** (failures - 1))
        delays = [backoff_delay(failures, rand=rng.uniform) for _ in range(200)]
        assert min(delays) >= 5.0
        assert max(delays) <= ceiling
        if ceiling >= 40:
            assert max(delays) - min(delays) > ceiling / 4  # spread over the whole range
    assert backoff_delay(10_000) <= 600.0


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, 30.0),
        ("", 30.0),
        ("12", 12.0),
        (" 2.5 ", 2.5),
        ("-5", 0.0),
        ("86400", 3600.0),
        ("soon", 30.0),
        ("nan", 30.0),
    ],
)
def test_retry_after_seconds(value: str | None, expected: float):
    assert parse_retry_after(value) == expected


def test_retry_after_http_date():
    now = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
    later = format_datetime(now + timedelta(seconds=90), usegmt=True)
    assert parse_retry_after(later, now=now) == 90.0
    earlier = format_datetime(now - timedelta(seconds=90), usegmt=True)
    assert parse_retry_after(earlier, now=now) == 0.0


def test_400_bodies_name_events_by_index():
    body = (
        b'{"code":400,"events_with_invalid_fields":{"time":[3,4]},'
        b'"events_with_missing_fields":{"event_type":[0]},'
        b'"events_with_invalid_id_lengths":{"device_id":[9]},"silenced_events":[7, 99, -1]}'
    )
    assert rejected_indexes(body, 10) == {0, 3, 4, 7, 9}
    assert rejected_indexes(b'{"code":400,"error":"Invalid API key"}', 10) == set()
    assert rejected_indexes(b"<html>bad request</html>", 10) == set()
    assert rejected_indexes(b"[1,2]", 10) == set()
