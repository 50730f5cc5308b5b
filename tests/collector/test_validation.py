"""Unit tests of request parsing and Amplitude-style validation (no HTTP)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from telemetry.collector import _limits as L
from telemetry.collector._validation import (
    GENERATED_INSERT_ID_PREFIX,
    RequestRejected,
    parse_batch,
)

from ._support import batch, event


def encode(body: Any) -> bytes:
    return json.dumps(body).encode()


def rejection(body: bytes) -> RequestRejected:
    with pytest.raises(RequestRejected) as info:
        parse_batch(body)
    return info.value


def test_valid_batch_is_parsed() -> None:
    events = [event(i) for i in range(3)]
    parsed = parse_batch(encode(batch(events)))
    assert parsed.project == "etcher-test"
    assert [e.insert_id for e in parsed.events] == [e["insert_id"] for e in events]
    assert [e.event_type for e in parsed.events] == ["Test Event 0", "Test Event 1", "Test Event 2"]
    assert all(e.device_id == "device-0b1f5c2e" and e.user_id is None for e in parsed.events)
    assert [e.time for e in parsed.events] == [1_700_000_000_000 + i for i in range(3)]
    assert [json.loads(e.event_json) for e in parsed.events] == events
    assert parsed.payload_size_bytes == len(encode(batch(events)))


def test_ip_is_never_kept() -> None:
    parsed = parse_batch(encode(batch([event(0, ip="203.0.113.7"), event(1, ip="$remote")])))
    for e in parsed.events:
        assert "ip" not in json.loads(e.event_json)
        assert "203.0.113.7" not in e.event_json


def test_missing_insert_id_gets_a_deterministic_one() -> None:
    a = {"event_type": "Opened", "device_id": "device-12345", "time": 5, "event_properties": {}}
    reordered = dict(reversed(list(a.items())))
    first = parse_batch(encode(batch([a]))).events[0]
    again = parse_batch(encode(batch([reordered]))).events[0]
    other = parse_batch(encode(batch([{**a, "time": 6}]))).events[0]
    assert first.insert_id_generated
    assert first.insert_id.startswith(GENERATED_INSERT_ID_PREFIX)
    assert first.insert_id == again.insert_id
    assert first.insert_id != other.insert_id
    explicit = parse_batch(encode(batch([event(0)]))).events[0]
    assert not explicit.insert_id_generated


def test_user_id_alone_is_enough_and_invalid_second_id_is_ignored() -> None:
    parsed = parse_batch(
        encode(
            batch(
                [
                    event(0, device_id=None, user_id="user-12345"),
                    event(1, user_id="null"),
                    event(2, device_id="abc", user_id="user-12345"),
                ]
            )
        )
    )
    assert [(e.device_id, e.user_id) for e in parsed.events] == [
        (None, "user-12345"),
        ("device-0b1f5c2e", None),
        (None, "user-12345"),
    ]


@pytest.mark.parametrize(
    ("bad_event", "invalid", "missing"),
    [
        (event(0, event_type=None), {}, {"event_type": [1]}),
        (event(0, event_type=""), {"event_type": [1]}, {}),
        (event(0, event_type="   "), {"event_type": [1]}, {}),
        (event(0, event_type=42), {"event_type": [1]}, {}),
        (event(0, device_id=None), {}, {"device_id": [1]}),
        (event(0, device_id="abcd"), {"device_id": [1]}, {}),
        (event(0, device_id=12345678), {"device_id": [1]}, {}),
        (event(0, device_id="NULL", user_id="none"), {"device_id": [1], "user_id": [1]}, {}),
        (event(0, time="2024-01-01T00:00:00Z"), {"time": [1]}, {}),
        (event(0, time=1.7e12), {"time": [1]}, {}),
        (event(0, time=True), {"time": [1]}, {}),
        (event(0, time=-1), {"time": [1]}, {}),
        (event(0, insert_id=123), {"insert_id": [1]}, {}),
        (event(0, insert_id=""), {"insert_id": [1]}, {}),
        (event(0, insert_id="x" * 1025), {"insert_id": [1]}, {}),
        ("not an event", {"event": [1]}, {}),
        (None, {"event": [1]}, {}),
        (event(0, event_properties={"blob": "x" * L.MAX_EVENT_BYTES}), {"event": [1]}, {}),
    ],
)
def test_invalid_event_is_named_by_index(
    bad_event: Any, invalid: dict[str, list[int]], missing: dict[str, list[int]]
) -> None:
    rejected = rejection(encode(batch([event(0), bad_event, event(2)])))
    assert rejected.status == 400
    assert rejected.body["code"] == 400
    assert rejected.body["events_with_invalid_fields"] == invalid
    assert rejected.body["events_with_missing_fields"] == missing
    assert rejected.body["missing_field"] is None
    assert rejected.body["error"] in (L.ERROR_INVALID_EVENTS, L.ERROR_MISSING_FIELD)


@pytest.mark.parametrize("placeholder", sorted(L.PLACEHOLDER_IDS))
@pytest.mark.parametrize("transform", [str.lower, str.upper, str.title])
def test_placeholder_ids_are_refused(placeholder: str, transform: Any) -> None:
    value = transform(placeholder)
    rejected = rejection(encode(batch([event(0, device_id=value)], options={"min_id_length": 1})))
    assert rejected.body["events_with_invalid_fields"] == {"device_id": [0]}


def test_min_id_length_option() -> None:
    assert parse_batch(encode(batch([event(0, device_id="abc")], options={"min_id_length": 3})))
    rejected = rejection(encode(batch([event(0, device_id="abc")], options={"min_id_length": 4})))
    assert rejected.body["events_with_invalid_fields"] == {"device_id": [0]}


def test_event_at_size_limit_is_accepted() -> None:
    probe = event(0, event_properties={"blob": ""})
    size = len(json.dumps(probe, separators=(",", ":")).encode())
    fitting = event(0, event_properties={"blob": "x" * (L.MAX_EVENT_BYTES - size)})
    assert len(parse_batch(encode(batch([fitting]))).events) == 1


@pytest.mark.parametrize(
    ("body", "error", "missing_field"),
    [
        (b"", L.ERROR_MISSING_BODY, None),
        (b"  \n", L.ERROR_MISSING_BODY, None),
        (b"{not json", L.ERROR_INVALID_JSON, None),
        (b'{"api_key": "p", "events": [{"time": NaN}]}', L.ERROR_INVALID_JSON, None),
        (b"\xff\xfe\xfa", L.ERROR_INVALID_JSON, None),
        (b"[" * 100_000, L.ERROR_INVALID_JSON, None),
        (encode([event(0)]), L.ERROR_INVALID_JSON, None),
        (encode("text"), L.ERROR_INVALID_JSON, None),
        (encode({"events": [event(0)]}), L.ERROR_MISSING_FIELD, "api_key"),
        (encode({"api_key": None, "events": [event(0)]}), L.ERROR_MISSING_FIELD, "api_key"),
        (encode({"api_key": 7, "events": [event(0)]}), L.ERROR_INVALID_API_KEY, None),
        (encode({"api_key": " ", "events": [event(0)]}), L.ERROR_INVALID_API_KEY, None),
        (encode({"api_key": "p"}), L.ERROR_MISSING_FIELD, "events"),
        (encode({"api_key": "p", "events": []}), L.ERROR_MISSING_FIELD, "events"),
        (encode({"api_key": "p", "events": {"0": event(0)}}), L.ERROR_INVALID_EVENT_JSON, None),
        (encode(batch([event(0)], options=[])), L.ERROR_INVALID_OPTIONS, None),
        (encode(batch([event(0)], options={"min_id_length": 0})), L.ERROR_INVALID_OPTIONS, None),
        (encode(batch([event(0)], options={"min_id_length": "5"})), L.ERROR_INVALID_OPTIONS, None),
    ],
)
def test_request_level_errors(body: bytes, error: str, missing_field: str | None) -> None:
    rejected = rejection(body)
    assert rejected.status == 400
    assert rejected.body == {
        "code": 400,
        "error": error,
        "missing_field": missing_field,
        "events_with_invalid_fields": {},
        "events_with_missing_fields": {},
    }


def test_too_many_events_is_413() -> None:
    assert len(parse_batch(encode(batch([event(i) for i in range(2000)]))).events) == 2000
    rejected = rejection(encode(batch([event(i) for i in range(2001)])))
    assert rejected.status == 413
    assert rejected.body == {"code": 413, "error": "Payload too large"}


_BREAKAGES: dict[str, dict[str, Any]] = {
    "no event_type": {"event_type": None},
    "empty event_type": {"event_type": ""},
    "no ids": {"device_id": None},
    "short id": {"device_id": "ab"},
    "placeholder id": {"device_id": "Unknown"},
    "iso time": {"time": "2024-01-01"},
    "float time": {"time": 1.5},
    "int insert_id": {"insert_id": 5},
}


@settings(max_examples=60, deadline=None)
@given(st.lists(st.sampled_from([None, *_BREAKAGES]), min_size=1, max_size=40))
def test_exactly_the_broken_indexes_are_named(plan: list[str | None]) -> None:
    events = [event(i, **_BREAKAGES[kind]) if kind else event(i) for i, kind in enumerate(plan)]
    broken = {i for i, kind in enumerate(plan) if kind}
    if not broken:
        assert len(parse_batch(encode(batch(events))).events) == len(events)
        return
    body = rejection(encode(batch(events))).body
    named: set[int] = set()
    for mapping in (body["events_with_invalid_fields"], body["events_with_missing_fields"]):
        for indexes in mapping.values():
            assert indexes == sorted(indexes)
            named.update(indexes)
    assert named == broken
