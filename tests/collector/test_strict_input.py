"""Input a client can send but the collector must refuse with 400 (never 5xx), on both backends,
and the strict JSON it stores."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from telemetry.collector import EventStore, Storage
from telemetry.collector._postgres_store import PostgresStore
from telemetry.collector._validation import parse_batch
from tests.collector_process import start_in_thread

from ._support import PROJECT, batch, event, post


@pytest.fixture
def served(storage: Storage) -> Iterator[tuple[str, Storage]]:
    """The collector over ``storage`` (each backend): ``(url, storage)``."""
    url, stop = start_in_thread(storage)
    try:
        yield url, storage
    finally:
        stop()


def _reject_constant(name: str) -> Any:
    raise ValueError(f"not RFC 8259 JSON: {name}")


def strict_loads(text: str) -> Any:
    """``text`` parsed as RFC 8259 JSON (``NaN``/``Infinity`` refused)."""
    return json.loads(text, parse_constant=_reject_constant)


def stored_texts(storage: Storage) -> list[str]:
    """The ``event`` column of every stored row (events and outbox), on either backend."""
    sql = "SELECT event FROM events UNION ALL SELECT event FROM outbox"
    if isinstance(storage, EventStore):
        conn = sqlite3.connect(storage.path, timeout=10)
        try:
            return [row[0] for row in conn.execute(sql)]
        finally:
            conn.close()
    assert isinstance(storage, PostgresStore)
    return [row[0] for row in storage._pool.run("test", lambda c: c.execute(sql).fetchall())]


def raw_batch(*events: str) -> bytes:
    """A request body around events given as JSON text (which may be JSON Python cannot write)."""
    return f'{{"api_key":"{PROJECT}","events":[{",".join(events)}]}}'.encode()


def good(i: int) -> str:
    return json.dumps(event(i))


def invalid_fields(answer: Any) -> dict[str, list[int]]:
    assert answer.status_code == 400, answer.text
    body = answer.json()
    assert body["code"] == 400
    fields: dict[str, list[int]] = body["events_with_invalid_fields"]
    return fields


def test_a_number_too_large_for_a_float_is_refused_naming_the_event(
    served: tuple[str, Storage],
) -> None:
    url, storage = served
    bad = good(1).replace('"index": 1', '"index": 1e999')
    answer = post(url, raw_batch(good(0), bad, good(2)))
    assert invalid_fields(answer) == {"event_properties": [1]}
    assert storage.count() == 0
    assert post(url, raw_batch(good(0), good(2))).status_code == 200
    assert storage.count() == 2


def test_a_time_at_the_int64_limit_with_a_zero_upload_time_is_refused_naming_the_event(
    served: tuple[str, Storage],
) -> None:
    url, storage = served
    events = [event(0), event(1, time=2**63 - 1)]
    answer = post(url, batch(events), headers={"X-Client-Upload-Time": "0"})
    assert invalid_fields(answer) == {"time": [1]}
    assert storage.count() == 0
    kept = post(
        url, batch([event(0, time=253_402_300_799_999)]), headers={"X-Client-Upload-Time": "0"}
    )
    assert kept.status_code == 200, kept.text


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"device_id": "device-\x0012345"}, "device_id"),
        ({"user_id": "user-\x0012345"}, "user_id"),
        ({"event_type": "Opened\x00"}, "event_type"),
        ({"insert_id": "id-\x00"}, "insert_id"),
        ({"event_properties": {"note": "a\x00b"}}, "event_properties"),
        ({"user_properties": {"k\x00": 1}}, "user_properties"),
        ({"event_properties": {"deep": [{"x": "\x00"}]}}, "event_properties"),
    ],
    ids=["device_id", "user_id", "event_type", "insert_id", "value", "key", "nested"],
)
def test_nul_in_any_string_is_refused_naming_the_event(
    served: tuple[str, Storage], overrides: dict[str, Any], field: str
) -> None:
    url, storage = served
    answer = post(url, batch([event(0), event(1), event(2, **overrides)]))
    assert invalid_fields(answer) == {field: [2]}
    assert storage.count() == 0


def test_a_nul_in_the_api_key_is_refused(served: tuple[str, Storage]) -> None:
    url, storage = served
    answer = post(url, {"api_key": "proj\x00ect", "events": [event(0)]})
    assert answer.status_code == 400
    assert answer.json()["error"] == "Invalid API key"
    assert storage.count() == 0


@pytest.mark.parametrize(
    "encode",
    [
        lambda text: text.encode("utf-16"),
        lambda text: text.encode("utf-16-le"),
        lambda text: text.encode("utf-16-be"),
        lambda text: text.encode("utf-32"),
        lambda text: b"\xef\xbb\xbf" + text.encode("utf-8"),
        lambda text: text.encode("latin-1"),
    ],
    ids=["utf-16-bom", "utf-16-le", "utf-16-be", "utf-32", "utf-8-bom", "latin-1"],
)
def test_bodies_that_are_not_plain_utf8_are_refused(
    served: tuple[str, Storage], encode: Any
) -> None:
    url, storage = served
    text = json.dumps(batch([event(0, event_properties={"name": "caf\u00e9"})]), ensure_ascii=False)
    answer = post(url, encode(text))
    assert answer.status_code == 400, answer.text
    assert answer.json()["events_with_invalid_fields"] == {}
    assert storage.count() == 0


def test_lone_surrogates_and_huge_integers_are_refused_naming_the_event(
    served: tuple[str, Storage],
) -> None:
    url, storage = served
    surrogate = good(1).replace('"index": 1', '"index": "\\ud800"')
    huge = good(2).replace('"index": 2', f'"index": {2**64}')
    tiny = good(3).replace('"index": 3', f'"index": {-(2**63) - 1}')
    bad_key = good(4).replace('"index": 4', '"\\udfff": 4')
    # Beyond Python's 4,300-digit conversion limit: named too, not a whole-body 400 (audit).
    endless = good(5).replace('"index": 5', '"index": ' + "9" * 5_000)
    endless_negative = good(6).replace('"index": 6', '"index": -' + "9" * 4_301)
    answer = post(
        url, raw_batch(good(0), surrogate, huge, tiny, bad_key, endless, endless_negative)
    )
    assert invalid_fields(answer) == {"event_properties": [1, 2, 3, 4, 5, 6]}
    assert storage.count() == 0


def test_stored_events_are_strict_json(served: tuple[str, Storage]) -> None:
    url, storage = served
    edges = {
        "big": 1e308,
        "small": 5e-324,
        "negative_zero": -0.0,
        "int_max": 2**63 - 1,
        "int_min": -(2**63),
        "text": 'caf\u00e9 \u2028 \U0001f600 \x01\x1f \\ "',
    }
    events = [event(0, event_properties=edges), event(1, user_properties={"n": 1.5})]
    assert post(url, batch(events)).status_code == 200
    storage.insert_batch(
        parse_batch(json.dumps(batch([event(2, event_properties=edges)])).encode()), forward=True
    )
    texts = stored_texts(storage)
    assert len(texts) == 4
    for text in texts:
        strict_loads(text)
    assert strict_loads(texts[0])["event_properties"] == edges


@pytest.mark.parametrize("key", ["project", "device_id", "reason"])
def test_a_nul_in_a_deletion_request_is_refused(served: tuple[str, Storage], key: str) -> None:
    url, _ = served
    request = {"project": PROJECT, "device_id": "device-12345", "reason": "opt-out"}
    request[key] += "\x00"
    answer = httpx.post(url + "/deletion", json=request, timeout=10)
    assert answer.status_code == 400, answer.text


def test_nesting_near_pythons_limit_is_a_400_never_a_5xx(served: tuple[str, Storage]) -> None:
    """Found by an outside audit: an event without ``insert_id`` nested about 990 levels deep
    decoded, then overflowed Python's stack while its id was computed; the collector answered
    503 (as for a storage failure), so a client would resend it forever. Every depth around the
    limit is now either stored (200) or refused as invalid JSON (400)."""
    url, _storage = served
    answers: dict[int, int] = {}
    # Every depth: where the limit falls depends on the stack of the thread that decodes.
    for depth in [*range(900, 1_011), 1_100]:
        nested = "[" * depth + "]" * depth
        text = good(depth).replace(f'"index": {depth}', f'"index": {nested}')
        no_id = json.loads(good(depth))
        del no_id["insert_id"]
        text_no_id = json.dumps(no_id).replace(f'"index": {depth}', f'"index": {nested}')
        for body in (raw_batch(text), raw_batch(text_no_id)):
            answer = post(url, body)
            assert answer.status_code in (200, 400), (depth, answer.status_code, answer.text)
            if answer.status_code == 400:
                assert answer.json()["error"] == "Invalid JSON request body", depth
            answers[depth] = answer.status_code
    assert answers[1_100] == 400 and answers[900] == 200
