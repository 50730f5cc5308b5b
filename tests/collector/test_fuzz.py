"""Property-based fuzzing of the ingest endpoint: never a 5xx, nothing stored when refused."""

from __future__ import annotations

import gzip
import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.collector_process import start_in_thread

_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
    | st.text(st.characters(categories=["Cs"]), min_size=1, max_size=2)  # lone surrogates
)
_json = st.recursive(
    _scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
_ids = st.sampled_from(["device-12345", "user-abcdef", "nil", "", "0", "x", None]) | st.text(
    max_size=12
)
_events = st.fixed_dictionaries(
    {},
    optional={
        "event_type": st.text(max_size=10) | st.just("a\udc80") | _json,
        "device_id": _ids | _json,
        "user_id": _ids,
        "time": st.integers(min_value=-5, max_value=2**64) | _json,
        "insert_id": st.uuids().map(str) | st.text(max_size=5) | _json,
        "event_properties": _json,
        "ip": st.just("203.0.113.9"),
    },
)
_bodies = st.fixed_dictionaries(
    {},
    optional={
        "api_key": st.sampled_from(["etcher-fuzz", "", " ", "p\ud800"])
        | st.text(max_size=6)
        | _json,
        "events": st.lists(_events | _json, max_size=6) | _json,
        "options": st.fixed_dictionaries({}, optional={"min_id_length": _json}) | _json,
    },
)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    database = tmp_path_factory.mktemp("fuzz") / "c.db"
    url, stop = start_in_thread(database)
    try:
        yield url, database
    finally:
        stop()


def _count(database: Path) -> int:
    conn = sqlite3.connect(database, timeout=10)
    try:
        return int(conn.execute("SELECT count(*) FROM events").fetchone()[0])
    finally:
        conn.close()


@settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    body=_bodies | _json,
    raw=st.none() | st.binary(max_size=64),
    compress=st.booleans(),
)
def test_ingest_never_fails_and_stores_nothing_it_refuses(
    server: tuple[str, Path], body: Any, raw: bytes | None, compress: bool
) -> None:
    url, database = server
    # json.dumps writes ASCII: surrogates become \udXXX escapes.
    data = raw if raw is not None else json.dumps(body).encode()
    headers = {"Content-Type": "application/json"}
    if compress:
        data = gzip.compress(data)
        headers["Content-Encoding"] = "gzip"
    before = _count(database)
    answer = httpx.post(url + "/2/httpapi", content=data, headers=headers, timeout=30)
    after = _count(database)
    assert answer.status_code < 500, answer.text
    assert answer.headers["content-type"].startswith("application/json")
    if answer.status_code != 200:
        assert after == before
        assert answer.json()["code"] == answer.status_code
    else:
        assert isinstance(body, dict) and isinstance(body.get("events"), list)
        assert after - before <= len(body["events"])
