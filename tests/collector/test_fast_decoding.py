"""The fast way of decoding a batch (C decoder, then a per-event proof that no key was repeated)
gives exactly the answers of the strict way (a duplicate-key and an int64 callback on every
value): property-tested on hostile bodies, plus the cases the proof rests on."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from telemetry.collector import _limits as L
from telemetry.collector._batch_json import (
    MAX_WHOLE_ARRAY_COMMAS,
    TooManyEvents,
    load_batch,
    lost_a_repeated_key,
)
from telemetry.collector._validation import Batch, RequestRejected, parse_batch

from ._support import DEVICE_ID, PROJECT, batch, event


def outcome(body: bytes, *, fast: bool) -> tuple[Any, ...]:
    """What the collector answers for ``body``: the stored events, or the refusal."""
    try:
        parsed: Batch = parse_batch(body, fast=fast)
    except RequestRejected as rejected:
        return ("refused", rejected.status, rejected.body)
    return ("accepted", parsed.project, parsed.events, dict(parsed.device_proofs))


def body_of(*event_texts: str) -> bytes:
    return f'{{"api_key": "{PROJECT}", "events": [{", ".join(event_texts)}]}}'.encode()


def event_text(extra: str = "") -> str:
    return (
        f'{{"event_type": "Flash", "device_id": "{DEVICE_ID}", "insert_id": "i-1",'
        f' "time": 1700000000000{extra}}}'
    )


def test_an_ordinary_batch_is_decoded_the_fast_way_and_stored_as_the_strict_way_would() -> None:
    body = json.dumps(batch([event(i) for i in range(20)])).encode()
    assert load_batch(body, L.MAX_EVENTS_PER_BATCH).events_text is not None
    assert outcome(body, fast=True) == outcome(body, fast=False)
    assert outcome(body, fast=True)[0] == "accepted"


@pytest.mark.parametrize(
    "extra",
    [
        ', "time": 1700000000001',  # a top-level key repeated
        ', "event_properties": {"a": 1, "a": 2}',  # a nested one
        ', "event_properties": {"a": "x:y", "a": "z"}',  # the dropped value held a colon
        ', "event_properties": {"a:b": 1, "a:b": 1}',  # the key holds one
        ', "event_properties": [{"k": {"a": [], "a": []}}]',  # deep, inside an array
        ', "event_properties" : { "a" : 1 , "a" : 1 }',  # spaced
    ],
)
def test_a_repeated_key_in_an_event_refuses_the_request_the_fast_way_too(extra: str) -> None:
    body = body_of(event_text(), event_text(extra))
    assert load_batch(body, L.MAX_EVENTS_PER_BATCH).events_text is not None  # the fast way
    refused = outcome(body, fast=True)
    assert refused == ("refused", 400, refused[2])
    assert refused[2]["error"] == L.ERROR_INVALID_JSON
    assert refused == outcome(body, fast=False)


def test_an_escaped_colon_cannot_hide_a_repeated_key() -> None:
    """``\\u003a`` decodes to a colon the source does not show as one: such a body takes the
    strict way, so a repeat "balanced" by one is still found."""
    body = body_of(event_text(', "event_properties": {"a": 1, "a": "\\u003a"}'))
    source = '{"a": 1, "a": "\\u003a"}'
    compact = json.dumps(json.loads(source), separators=(",", ":"))
    assert not lost_a_repeated_key(f"[{source}]", [compact])  # what the escape would hide
    with pytest.raises(ValueError, match="duplicate key"):  # the strict way decodes it
        load_batch(body, L.MAX_EVENTS_PER_BATCH)
    unrepeated = body_of(event_text(', "event_properties": {"a": "\\u003a"}'))
    assert load_batch(unrepeated, L.MAX_EVENTS_PER_BATCH).events_text is None
    assert outcome(body, fast=True)[2]["error"] == L.ERROR_INVALID_JSON


def test_a_long_digit_run_takes_the_strict_way_so_an_integer_beyond_64_bits_is_named() -> None:
    body = body_of(event_text(), event_text(f', "event_properties": {{"n": {2**64}}}'))
    assert load_batch(body, L.MAX_EVENTS_PER_BATCH).events_text is None
    refused = outcome(body, fast=True)
    assert refused[:2] == ("refused", 400)
    assert refused[2]["events_with_invalid_fields"] == {"event_properties": [1]}
    assert refused == outcome(body, fast=False)


@pytest.mark.parametrize("count", [L.MAX_EVENTS_PER_BATCH + 1, 30_000])
def test_too_many_events_are_refused_whichever_way_they_are_decoded(count: int) -> None:
    """Below ``MAX_WHOLE_ARRAY_COMMAS`` commas the array is decoded whole and then counted;
    above, item by item, stopping at the first item over the limit."""
    body = body_of(*[event_text()] * count)
    whole = body.count(b",") < MAX_WHOLE_ARRAY_COMMAS
    assert whole == (count == L.MAX_EVENTS_PER_BATCH + 1)
    with pytest.raises(TooManyEvents) as raised:
        load_batch(body, L.MAX_EVENTS_PER_BATCH)
    assert raised.value.parsed == (count if whole else L.MAX_EVENTS_PER_BATCH + 1)
    assert outcome(body, fast=True) == ("refused", 413, outcome(body, fast=True)[2])


# Hostile bodies: keys and strings full of colons, quotes and escapes, numbers at the int64
# edges, whitespace anywhere, and keys repeated at any depth.
_KEYS = st.sampled_from(['"a"', '"b"', '"a:b"', '":"', '"\\":"', '"\\u003a"', '"é"', '"\\u00e9"'])
_SCALARS = st.sampled_from(
    [
        '"x:y"',
        '":"',
        '"\\\\":"',
        '"\\u003A"',
        '""',
        "0",
        "-0",
        "1.5e300",
        "1e999",
        str(2**63 - 1),
        str(2**63),
        str(-(2**63)),
        "123456789012345678",
        "null",
        "true",
        '"\\u0000"',
        '"\\ud800"',
    ]
)
_SPACE = st.sampled_from(["", " ", "\n\t "])


@st.composite
def _objects(draw: st.DrawFn, values: st.SearchStrategy[str]) -> str:
    pairs = draw(st.lists(st.tuples(_KEYS, values), max_size=4))
    a, b = draw(_SPACE), draw(_SPACE)
    return "{" + ",".join(f"{a}{key}{b}:{a}{value}{b}" for key, value in pairs) + "}"


_VALUES = st.recursive(
    _SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3).map(lambda items: "[" + ", ".join(items) + "]"),
        _objects(inner),
    ),
    max_leaves=12,
)


@st.composite
def _event_texts(draw: st.DrawFn) -> str:
    fields = [
        '"event_type": "Flash"',
        f'"device_id": "{DEVICE_ID}"',
        f'"insert_id": "{draw(st.sampled_from(["i-1", "i-2", "i:3"]))}"',
        f'"event_properties": {draw(_VALUES)}',
    ]
    if draw(st.booleans()):  # a top-level key repeated, or an extra one
        fields.append(draw(st.sampled_from(['"event_type": "Other"', '"ip": "192.0.2.1"'])))
    if draw(st.booleans()):
        fields.append(f'"time": {draw(_SCALARS)}')
    order = draw(st.permutations(fields))
    return "{" + draw(_SPACE) + ", ".join(order) + "}"


@settings(max_examples=400, deadline=None)
@given(events=st.lists(st.one_of(_event_texts(), _VALUES), min_size=1, max_size=4))
def test_the_fast_way_answers_exactly_as_the_strict_way(events: list[str]) -> None:
    body = body_of(*events)
    assert outcome(body, fast=True) == outcome(body, fast=False)
