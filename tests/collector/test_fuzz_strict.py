"""Property test of the ingest endpoint on both backends: events holding non-finite numbers, NUL,
huge integers or lone surrogates, and bodies in odd encodings, are refused with a 400 (naming
exactly the bad events), never a 5xx, and nothing of a refused batch is stored."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from telemetry.collector import Storage
from tests.collector_process import start_in_thread

from ._support import DEVICE_ID, PROJECT, post
from .test_strict_input import stored_texts, strict_loads

#: JSON texts a client may send that the collector must refuse inside an event.
BAD_TOKENS = (
    "1e999",
    "-1e999",
    "1E400",
    '"a\\u0000b"',
    '"\\ud800"',
    '"x\\udfffy"',
    str(2**64),
    str(-(2**63) - 1),
    str(10**30),
)
#: JSON texts that are fine anywhere.
GOOD_TOKENS = ("0", "-7", str(2**63 - 1), str(-(2**63)), "1.5e300", '"caf\\u00e9"', "null", "[]")

_ENCODINGS = {
    "utf-8": lambda text: text.encode("utf-8"),
    "utf-8-bom": lambda text: b"\xef\xbb\xbf" + text.encode("utf-8"),
    "utf-16": lambda text: text.encode("utf-16"),
    "utf-16-le": lambda text: text.encode("utf-16-le"),
    "utf-32": lambda text: text.encode("utf-32"),
}

_token = st.sampled_from(BAD_TOKENS + GOOD_TOKENS)
_places = st.sampled_from(["property", "nested", "key", "time", "event_type", "device_id"])
_event = st.lists(st.tuples(_places, _token), max_size=2)


_STRING_BAD_TOKENS = frozenset(t for t in BAD_TOKENS if t.startswith('"'))
_TOP_LEVEL = ("time", "event_type", "device_id")


def _render(index: int, slots: list[tuple[str, str]]) -> tuple[str, bool]:
    """One event as JSON text with each ``(place, token)`` written in; and whether it is bad."""
    base: dict[str, Any] = {
        "event_type": f"Fuzz {index}",
        "device_id": DEVICE_ID,
        "insert_id": str(uuid.uuid4()),
        "time": 1_700_000_000_000,
        "event_properties": {},
    }
    raw: dict[str, str] = {}
    bad = False
    for n, (place, token) in enumerate(slots):
        marker = f"@@{n}@@"
        if place == "key":  # a string token in a property name; any other as its text
            base["event_properties"][marker] = n
            text = json.loads(token) if token.startswith('"') else token
            raw[marker] = json.dumps(f"k{n}:{text}")  # json.dumps escapes NUL and surrogates
            bad = bad or token in _STRING_BAD_TOKENS
            continue
        raw[marker] = token
        if place == "property":
            base["event_properties"][f"p{n}"] = marker
            bad = bad or token in BAD_TOKENS
        elif place == "nested":
            base["event_properties"][f"n{n}"] = {"list": [1, marker]}
            bad = bad or token in BAD_TOKENS
        else:
            base[place] = marker
    for place in _TOP_LEVEL:
        value = base[place]
        if isinstance(value, str) and value in raw:
            token = raw[value]
            bad = bad or token in BAD_TOKENS or not _good_top_level(place, token)
    text = json.dumps(base)
    for marker, token in raw.items():
        text = text.replace(json.dumps(marker), token)
    return text, bad


def _good_top_level(place: str, token: str) -> bool:
    """Whether a good token is also a valid value of that top-level field."""
    value = json.loads(token)
    if place == "time":
        return value is None or (type(value) is int and 0 <= value <= 253_402_300_799_999)
    if place == "event_type":
        return isinstance(value, str) and bool(value.strip())
    return isinstance(value, str) and len(value) >= 5  # device_id: the only id given


@pytest.fixture
def served(storage: Storage) -> Iterator[tuple[str, Storage]]:
    url, stop = start_in_thread(storage)
    try:
        yield url, storage
    finally:
        stop()


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(events=st.lists(_event, min_size=1, max_size=4), encoding=st.sampled_from(list(_ENCODINGS)))
def test_odd_input_is_refused_with_400_and_nothing_of_it_is_stored(
    served: tuple[str, Storage], events: list[list[tuple[str, str]]], encoding: str
) -> None:
    url, storage = served
    rendered = [_render(i, slots) for i, slots in enumerate(events)]
    text = f'{{"api_key":"{PROJECT}","events":[{",".join(t for t, _ in rendered)}]}}'
    before = storage.count()
    answer = post(url, _ENCODINGS[encoding](text))
    assert answer.status_code < 500, answer.text
    bad = {i for i, (_, is_bad) in enumerate(rendered) if is_bad}
    if encoding != "utf-8":
        assert answer.status_code == 400
        assert answer.json()["events_with_invalid_fields"] == {}
    elif bad:
        assert answer.status_code == 400, answer.text
        body = answer.json()
        named = {
            i
            for key in ("events_with_invalid_fields", "events_with_missing_fields")
            for indexes in body[key].values()
            for i in indexes
        }
        assert named == bad
    else:
        assert answer.status_code == 200, answer.text
    if answer.status_code != 200:
        assert storage.count() == before
    else:
        assert storage.count() == before + len(events)
        for stored in stored_texts(storage):
            strict_loads(stored)
