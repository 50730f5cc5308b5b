"""Every row of the response policy's tables (the docstring of ``telemetry._delivery._policy``)
checked against :func:`decide` and :func:`decide_deletion`, which are pure: no store, no
network, no clock."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from telemetry._delivery import _policy
from telemetry._delivery._policy import (
    DELETION_REFUSED,
    DELETION_SENT,
    DROPPED_OVERSIZE,
    DROPPED_REJECTED_4XX,
    DROPPED_REJECTED_400,
    Action,
    Backoff,
    Deliver,
    Drop,
    Pause,
    Shrink,
    UploadPolicy,
    decide,
    decide_deletion,
)

POLICY = UploadPolicy()
NOW = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
NAMED_400 = b'{"code":400,"events_with_invalid_fields":{"time":[3]},"silenced_events":[7]}'


def table_rows(which: int) -> list[str]:
    """The first column of the ``which``-th table in the module docstring."""
    doc = _policy.__doc__ or ""
    tables = re.findall(r"^=+  =+\n(.*?)^=+  =+$", doc, flags=re.M | re.S)
    rows = [line for line in tables[which].splitlines() if line and not line.startswith(" ")]
    return [re.split(r"\s{2,}", row)[0] for row in rows]


# (row of the table, status, headers, body, batch size, the action expected)
BATCH_CASES: list[tuple[str, int | None, dict[str, str], bytes, int, Action]] = [
    ("2xx", 200, {}, b"", 500, Deliver("upload_2xx")),
    ("2xx", 202, {}, b"", 1, Deliver("upload_2xx")),
    ("2xx", 299, {}, b"", 3, Deliver("upload_2xx")),
    ("400", 400, {}, NAMED_400, 10, Drop("upload_400", DROPPED_REJECTED_400, frozenset({3, 7}))),
    ("400", 400, {}, NAMED_400, 5, Drop("upload_400", DROPPED_REJECTED_400, frozenset({3}))),
    ("400", 400, {}, b'{"code":400,"error":"Invalid API key"}', 10,
     Drop("upload_400", DROPPED_REJECTED_400, None)),
    ("400", 400, {}, b"<html>bad request</html>", 10,
     Drop("upload_400", DROPPED_REJECTED_400, None)),
    ("413", 413, {}, b"", 40, Shrink("upload_413", 20)),
    ("413", 413, {}, b"", 3, Shrink("upload_413", 1)),
    ("413", 413, {}, b"", 1, Drop("upload_413", DROPPED_OVERSIZE, None, batch_limit=500)),
    ("429", 429, {"Retry-After": "12"}, b"", 10, Pause("upload_429", 12.0)),
    ("429", 429, {"retry-after": "86400"}, b"", 10, Pause("upload_429", 3600.0)),
    ("429", 429, {}, b"", 10, Pause("upload_429", 30.0)),
    ("429", 429, {"Retry-After": "soon"}, b"", 10, Pause("upload_429", 30.0)),
    ("429", 429, {"Retry-After": format_datetime(NOW + timedelta(seconds=90), usegmt=True)},
     b"", 10, Pause("upload_429", 90.0)),
    *(("401, 403, 404, 405, 410", s, {}, b"", 10, Pause(f"upload_{s}", 3600.0))
      for s in (401, 403, 404, 405, 410)),
    ("other 4xx", 402, {}, b"", 10, Drop("upload_other_4xx", DROPPED_REJECTED_4XX)),
    ("other 4xx", 422, {}, b"", 10, Drop("upload_other_4xx", DROPPED_REJECTED_4XX)),
    ("other 4xx", 451, {}, b"", 10, Drop("upload_other_4xx", DROPPED_REJECTED_4XX)),
    ("408, 5xx, network error", 408, {}, b"", 10, Backoff("upload_408")),
    ("408, 5xx, network error", 500, {}, b"", 10, Backoff("upload_5xx")),
    ("408, 5xx, network error", 503, {"Retry-After": "5"}, b"", 10, Backoff("upload_5xx")),
    ("408, 5xx, network error", 599, {}, b"", 10, Backoff("upload_5xx")),
    ("408, 5xx, network error", None, {}, b"", 10, Backoff(None)),
    ("3xx, 1xx", 302, {"Location": "http://x.example/"}, b"", 10, Backoff("upload_other_status")),
    ("3xx, 1xx", 307, {}, b"", 10, Backoff("upload_other_status")),
    ("3xx, 1xx", 199, {}, b"", 10, Backoff("upload_other_status")),
]  # fmt: skip

DELETION_CASES: list[tuple[str, int | None, dict[str, str], Action]] = [
    ("2xx", 200, {}, Deliver(DELETION_SENT)),
    ("2xx", 204, {}, Deliver(DELETION_SENT)),
    ("400, 422", 400, {}, Drop(DELETION_REFUSED, DELETION_REFUSED)),
    ("400, 422", 422, {}, Drop(DELETION_REFUSED, DELETION_REFUSED)),
    ("429", 429, {"Retry-After": "7"}, Pause(None, 7.0)),
    ("429", 429, {}, Pause(None, 30.0)),
    *(("401, 403, 404, 405, 410", s, {}, Pause(None, 3600.0)) for s in (401, 403, 404, 405, 410)),
    ("other, network error", 413, {}, Backoff(None)),
    ("other, network error", 500, {}, Backoff(None)),
    ("other, network error", None, {}, Backoff(None)),
]  # fmt: skip


def test_the_cases_cover_every_row_of_both_tables():
    assert table_rows(0) == list(dict.fromkeys(row for row, *_ in BATCH_CASES))
    assert table_rows(1) == list(dict.fromkeys(row for row, *_ in DELETION_CASES))


@pytest.mark.parametrize(
    ("row", "status", "headers", "body", "size", "expected"),
    BATCH_CASES,
    ids=[f"{c[0]}: {c[1]}" for c in BATCH_CASES],
)
def test_batch_answers(
    row: str,
    status: int | None,
    headers: dict[str, str],
    body: bytes,
    size: int,
    expected: Action,
):
    assert decide(status, headers, body, size, POLICY, now=NOW) == expected


@pytest.mark.parametrize(
    ("row", "status", "headers", "expected"),
    DELETION_CASES,
    ids=[f"{c[0]}: {c[1]}" for c in DELETION_CASES],
)
def test_deletion_answers(row: str, status: int | None, headers: dict[str, str], expected: Action):
    assert decide_deletion(status, headers, POLICY, now=NOW) == expected


def test_the_times_come_from_the_policy():
    policy = UploadPolicy(
        retry_after_default=1.5, retry_after_max=2.5, config_error_pause=9.0, max_batch_events=4
    )
    assert decide(429, {}, b"", 3, policy) == Pause("upload_429", 1.5)
    assert decide(429, {"Retry-After": "60"}, b"", 3, policy) == Pause("upload_429", 2.5)
    assert decide(403, {}, b"", 3, policy) == Pause("upload_403", 9.0)
    assert decide(413, {}, b"", 1, policy) == Drop(
        "upload_413", DROPPED_OVERSIZE, None, batch_limit=4
    )
    assert decide_deletion(410, {}, policy) == Pause(None, 9.0)
