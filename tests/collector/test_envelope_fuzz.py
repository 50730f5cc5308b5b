"""Hostile envelopes (property tests): never a 5xx, never an exception other than the named
refusals, and nothing stored from a refused envelope, on both backends."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from telemetry.collector import Storage
from telemetry.collector._envelope import EnvelopeRejected, parse_envelope
from telemetry.collector._reports import ReportRejected, parse_report
from telemetry.collector._strict_json import strict_json_loads
from tests.collector_process import start_in_thread

from ._reports_support import envelope, post_envelope, report_config, report_rows, sentry_event
from ._support import PROJECT

#: JSON texts the collector must refuse anywhere in an event.
BAD_TOKENS = ("1e999", "-1E400", '"a\\u0000b"', '"\\ud800"', str(2**64), "NaN", "Infinity")
#: JSON texts that are fine anywhere.
GOOD_TOKENS = ("0", "-7", str(2**63 - 1), "1.5e300", '"caf\\u00e9"', "null", "[]", '"\\u2028"')
#: Where a token goes: (path in the event, whether a good token is also valid there).
PLACES = {
    "extra": True,
    "exception_value": True,
    "frame_function": True,
    "user_id": True,
    "fingerprint_entry": True,
    "timestamp": False,
    "count": False,
}


def _render(slots: list[tuple[str, str]], name: str) -> tuple[bytes, bool]:
    """An event envelope with each ``(place, token)`` written into the event; whether bad."""
    event: dict[str, Any] = sentry_event(name, count=2)
    raw: dict[str, str] = {}
    bad = False
    # A place other than "extra" holds one value: a later slot there replaces an earlier one.
    last = {place: n for n, (place, _) in enumerate(slots)}
    slots = [s for n, s in enumerate(slots) if s[0] == "extra" or last[s[0]] == n]
    for n, (place, token) in enumerate(slots):
        marker = f"@@{n}@@"
        raw[marker] = token
        bad = bad or token in BAD_TOKENS
        value = json.loads(token) if token not in BAD_TOKENS else None
        if place == "extra":
            event.setdefault("extra", {})[f"e{n}"] = {"list": [1, marker]}
        elif place == "exception_value":
            event["exception"]["values"][0]["value"] = marker
        elif place == "frame_function":
            event["exception"]["values"][0]["stacktrace"]["frames"][0]["function"] = marker
        elif place == "user_id":
            event["user"] = {"id": marker}
        elif place == "fingerprint_entry":
            event["fingerprint"] = ["{{ default }}", marker]
        elif place == "timestamp":
            event["timestamp"] = marker
            ok = (
                isinstance(value, int | float)
                and not isinstance(value, bool)
                and value >= 0
                and value < 253_402_300_799
            ) or (value is not None and isinstance(value, str) and value == "2026-01-01")
            bad = bad or (token not in BAD_TOKENS and not ok)
        elif place == "count":
            event["contexts"]["telemetry"]["count"] = marker
            ok = type(value) is int and 1 <= value <= 1_000_000_000
            bad = bad or (token not in BAD_TOKENS and not ok)
    text = json.dumps(event)
    for marker, token in raw.items():
        text = text.replace(json.dumps(marker), token)
    payload = text.encode("utf-8", "surrogatepass")
    return envelope(({"type": "event", "length": len(payload)}, payload)), bad


_slot = st.tuples(st.sampled_from(sorted(PLACES)), st.sampled_from(BAD_TOKENS + GOOD_TOKENS))


@pytest.fixture
def served(storage: Storage) -> Iterator[tuple[str, Storage]]:
    url, stop = start_in_thread(storage, config=report_config())
    try:
        yield url, storage
    finally:
        stop()


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(slots=st.lists(_slot, max_size=3), gzipped=st.booleans(), n=st.integers(0, 10**9))
def test_odd_events_are_refused_with_400_and_nothing_of_them_is_stored(
    served: tuple[str, Storage], slots: list[tuple[str, str]], gzipped: bool, n: int
) -> None:
    url, store = served
    body, bad = _render(slots, f"fuzz-{n}-{slots!r}")
    before = store.report_count()
    answer = post_envelope(url, body, gzipped=gzipped)
    assert answer.status_code < 500, answer.text
    if bad:
        assert answer.status_code == 400, answer.text
        assert "invalid event" in answer.json()["detail"]
        assert store.report_count() == before
    else:
        assert answer.status_code == 200, answer.text
        assert store.report_count() in (before, before + 1)  # +0: the same slots drawn again
        for row in report_rows(store):
            strict_json_loads(row["payload"].encode())


_chunks = st.sampled_from(
    [
        b"{}",
        b'{"event_id":"' + b"b" * 32 + b'"}',
        b'{"type":"event"}',
        b'{"type":"event","length":3}',
        b'{"type":"event","length":99999}',
        b'{"type":"session"}',
        b'{"type":"attachment","length":0}',
        b'{"type":1}',
        b'{"event_id":"' + b"c" * 32 + b'","timestamp":1.5}',
        b"\n",
        b"\x00",
        b"\xff\xfe",
        b"\xed\xa0\x80",
        b"[",
        b"NaN",
        b'{"a":1,"a":2}',
    ]
)
_hostile = st.one_of(
    st.binary(max_size=300),
    st.lists(st.one_of(_chunks, st.binary(max_size=8)), max_size=12).map(b"\n".join),
)


@settings(max_examples=600, deadline=None)
@given(body=_hostile)
def test_the_parsers_only_ever_refuse_by_name(body: bytes) -> None:
    try:
        parsed = parse_envelope(body)
    except EnvelopeRejected as exc:
        message = str(exc)
        assert message
        return
    for item in parsed.items:
        if item.type == "event":
            try:
                report = parse_report(PROJECT, item.payload, envelope_event_id=None, received_at=1)
            except ReportRejected as exc:
                message = str(exc)
                assert message
                continue
            strict_json_loads(report.payload.encode())
            assert len(report.event_id) == 32
            assert report.count >= 1


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(body=_hostile, gzipped=st.booleans())
def test_hostile_bytes_never_get_a_5xx(
    served: tuple[str, Storage], body: bytes, gzipped: bool
) -> None:
    url, store = served
    before = store.report_count()
    answer = post_envelope(url, body, gzipped=gzipped)
    assert answer.status_code in (200, 400), answer.text
    if answer.status_code != 200:
        assert store.report_count() == before
