"""End-to-end tests of the HTTP API against an in-thread collector on 127.0.0.1."""

from __future__ import annotations

import concurrent.futures
import gzip
import json
import socket
import sqlite3
import time
import zlib
from pathlib import Path

import httpx
import pytest

from telemetry.collector import EventStore, _sqlite_store
from tests._fixtures import RunningCollector
from tests.collector_process import start_in_thread

from ._support import DEVICE_ID, PROJECT, batch, event, post, rows


def test_healthz(collector: RunningCollector) -> None:
    response = httpx.get(f"{collector.url}/healthz", timeout=10)
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


@pytest.mark.parametrize("gzipped", [False, True], ids=["plain", "gzip"])
@pytest.mark.parametrize("path", ["/2/httpapi", "/amplitude/2/httpapi"])
def test_batch_is_stored_once_and_resend_reports_duplicates(
    collector: RunningCollector, gzipped: bool, path: str
) -> None:
    events = [event(i) for i in range(25)]
    before = int(time.time() * 1000)
    first = post(collector.url, batch(events), gzipped=gzipped, path=path)
    assert first.status_code == 200, first.text
    body = first.json()
    assert body["code"] == 200
    assert body["events_ingested"] == 25
    assert body["duplicates"] == 0
    assert body["payload_size_bytes"] == len(json.dumps(batch(events)).encode())
    assert before <= body["server_upload_time"] <= int(time.time() * 1000)

    again = post(collector.url, batch(events), gzipped=not gzipped, path=path)
    assert again.status_code == 200
    assert again.json()["events_ingested"] == 25
    assert again.json()["duplicates"] == 25

    stored = rows(collector.database)
    assert len(stored) == 25
    assert [r["insert_id"] for r in stored] == [e["insert_id"] for e in events]
    assert all(r["project"] == PROJECT and r["device_id"] == DEVICE_ID for r in stored)
    assert [json.loads(r["event"]) for r in stored] == events
    assert all(r["received_at"] == body["server_upload_time"] for r in stored)


def test_partly_new_batch_counts_only_the_repeated_events(collector: RunningCollector) -> None:
    assert post(collector.url, batch([event(i) for i in range(5)])).json()["duplicates"] == 0
    response = post(collector.url, batch([event(i) for i in range(3, 8)]))
    assert response.json() == response.json() | {"events_ingested": 5, "duplicates": 2}
    assert len(rows(collector.database)) == 8


def test_events_without_insert_id_are_deduplicated_on_retry(collector: RunningCollector) -> None:
    events = [event(i, insert_id=None) for i in range(4)]
    assert post(collector.url, batch(events)).json()["duplicates"] == 0
    assert post(collector.url, batch(events)).json()["duplicates"] == 4
    stored = rows(collector.database)
    assert len(stored) == 4
    assert all(r["insert_id"].startswith("collector-sha256:") for r in stored)
    assert all(r["insert_id_generated"] == 1 for r in stored)


@pytest.mark.parametrize(
    ("events", "invalid", "missing"),
    [
        (
            [event(0), event(1, event_type=None), event(2), event(3, device_id="null")],
            {"device_id": [3]},
            {"event_type": [1]},
        ),
        (
            [event(0, time="yesterday"), event(1), event(2, insert_id=7), event(3, time=1.5)],
            {"time": [0, 3], "insert_id": [2]},
            {},
        ),
        ([event(0), event(1, device_id=None)], {}, {"device_id": [1]}),
        ([event(0), event(1, device_id="abc")], {"device_id": [1]}, {}),
        (
            [event(0), event(1, device_id="00000000-0000-0000-0000-000000000000")],
            {"device_id": [1]},
            {},
        ),
        ([event(0), "oops", event(2, big="x" * 40_000)], {"event": [1, 2]}, {}),
    ],
)
@pytest.mark.parametrize("gzipped", [False, True], ids=["plain", "gzip"])
def test_invalid_events_are_named_and_nothing_is_stored(
    collector: RunningCollector,
    events: list[object],
    invalid: dict[str, list[int]],
    missing: dict[str, list[int]],
    gzipped: bool,
) -> None:
    response = post(collector.url, {"api_key": PROJECT, "events": events}, gzipped=gzipped)
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == 400
    assert body["events_with_invalid_fields"] == invalid
    assert body["events_with_missing_fields"] == missing
    assert body["missing_field"] is None
    assert rows(collector.database) == []

    # Amplitude semantics: the client drops the named events and resends the rest.
    named = {i for m in (invalid, missing) for idxs in m.values() for i in idxs}
    rest = [e for i, e in enumerate(events) if i not in named]
    retry = post(collector.url, {"api_key": PROJECT, "events": rest})
    assert retry.status_code == 200
    assert retry.json()["events_ingested"] == len(rest)
    assert len(rows(collector.database)) == len(rest)


@pytest.mark.parametrize(
    ("content", "error", "missing_field"),
    [
        (b"", "Missing request body", None),
        (b"{nope", "Invalid JSON request body", None),
        (b"[1, 2]", "Invalid JSON request body", None),
        (json.dumps({"events": [event(0)]}).encode(), "Request missing required field", "api_key"),
        (json.dumps({"api_key": PROJECT}).encode(), "Request missing required field", "events"),
        (
            json.dumps({"api_key": PROJECT, "events": []}).encode(),
            "Request missing required field",
            "events",
        ),
        (json.dumps({"api_key": PROJECT, "events": "x"}).encode(), "Invalid event JSON", None),
        # Strict JSON: a key repeated in an object, a non-standard constant, invalid UTF-8.
        (
            b'{"api_key": "p1", "events": [{"event_type": "a", "event_type": "b", '
            b'"device_id": "device-1"}]}',
            "Invalid JSON request body",
            None,
        ),
        (
            b'{"api_key": "p1", "events": [{"event_type": "a", "time": NaN, '
            b'"device_id": "device-1"}]}',
            "Invalid JSON request body",
            None,
        ),
        (b'{"api_key": "p\xff", "events": []}', "Invalid JSON request body", None),
    ],
)
def test_malformed_requests_get_400_with_error(
    collector: RunningCollector, content: bytes, error: str, missing_field: str | None
) -> None:
    response = post(collector.url, content)
    assert response.status_code == 400
    assert response.json()["error"] == error
    assert response.json()["missing_field"] == missing_field
    assert rows(collector.database) == []


def test_corrupt_gzip_is_400(collector: RunningCollector) -> None:
    response = httpx.post(
        f"{collector.url}/2/httpapi",
        content=gzip.compress(json.dumps(batch([event(0)])).encode())[:-8],
        headers={"Content-Encoding": "gzip"},
        timeout=10,
    )
    assert response.status_code == 400
    assert response.json()["error"] == "Invalid gzip request body"


def test_unknown_content_encoding_is_415(collector: RunningCollector) -> None:
    response = post(collector.url, batch([event(0)]), headers={"Content-Encoding": "br"})
    assert response.status_code == 415
    assert rows(collector.database) == []


def test_more_than_2000_events_is_413(collector: RunningCollector) -> None:
    small = [{"event_type": "e", "device_id": DEVICE_ID, "insert_id": str(i)} for i in range(2001)]
    for gzipped in (False, True):
        response = post(collector.url, batch(small), gzipped=gzipped)
        assert response.status_code == 413
        assert response.json() == {"code": 413, "error": "Payload too large"}
    assert post(collector.url, batch(small[:2000])).status_code == 200
    assert len(rows(collector.database)) == 2000


def _big_batch(target_bytes: int) -> bytes:
    """A valid batch whose JSON is just over ``target_bytes``."""
    events = []
    size = 0
    i = 0
    while size <= target_bytes:
        e = event(i, event_properties={"pad": "p" * 20_000})
        events.append(e)
        size += len(json.dumps(e)) + 2
        i += 1
    data = json.dumps(batch(events)).encode()
    assert len(data) > target_bytes
    return data


def test_body_over_1_mib_decompressed_is_413(collector: RunningCollector) -> None:
    data = _big_batch(1024 * 1024)
    plain = post(collector.url, data)
    assert plain.status_code == 413
    compressed = gzip.compress(data)
    assert len(compressed) < 100_000
    zipped = post(collector.url, compressed, headers={"Content-Encoding": "gzip"})
    assert zipped.status_code == 413
    assert zipped.json() == {"code": 413, "error": "Payload too large"}
    assert rows(collector.database) == []


def test_body_just_under_1_mib_is_accepted(collector: RunningCollector) -> None:
    events = [event(i, event_properties={"pad": "p" * 20_000}) for i in range(50)]
    data = json.dumps(batch(events)).encode()
    assert 1_000_000 < len(data) < 1024 * 1024
    response = post(collector.url, gzip.compress(data), headers={"Content-Encoding": "gzip"})
    assert response.status_code == 200
    assert len(rows(collector.database)) == 50


def test_content_length_over_limit_is_refused_before_reading(collector: RunningCollector) -> None:
    """A declared 50 MiB body is answered 413 at once, without sending the body."""
    host, port = collector.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(
            b"POST /2/httpapi HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 52428800\r\n\r\n{"
        )
        reply = sock.recv(65536)
    assert reply.startswith(b"HTTP/1.1 413 ")


def test_gzip_bomb_is_refused(collector: RunningCollector) -> None:
    """413 for 50 MiB of zeros in a 50 KB body. That it is not inflated is proven by the
    collector's memory in ``test_process.py``; the time taken is printed, not asserted."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    bomb = b"".join(compressor.compress(bytes(1 << 20)) for _ in range(50)) + compressor.flush()
    assert len(bomb) < 100_000
    started = time.monotonic()
    response = post(collector.url, bomb, headers={"Content-Encoding": "gzip"})
    assert response.status_code == 413
    assert response.json() == {"code": 413, "error": "Payload too large"}
    print(f"refused in {(time.monotonic() - started) * 1000:.0f} ms")


def test_wrong_method_and_path(collector: RunningCollector) -> None:
    assert httpx.get(f"{collector.url}/2/httpapi", timeout=10).status_code == 405
    assert post(collector.url, batch([event(0)]), path="/v1/batch").status_code == 404


def test_database_error_is_503_with_retry_after_and_commits_nothing(tmp_path: Path) -> None:
    database = tmp_path / "c.db"
    store = EventStore(database, busy_timeout_ms=100)
    url, stop = start_in_thread(store)
    blocker = sqlite3.connect(database, isolation_level=None)
    try:
        blocker.execute("BEGIN IMMEDIATE")  # another writer holds the lock
        response = post(url, batch([event(0), event(1)]))
        assert response.status_code == 503
        assert response.headers["Retry-After"] == "5"
        assert response.json()["code"] == 503
        health = httpx.get(f"{url}/healthz", timeout=10)
        assert health.status_code == 503
        blocker.execute("ROLLBACK")
        assert rows(database) == []
        assert httpx.get(f"{url}/healthz", timeout=10).json() == {"status": "ok"}
        retry = post(url, batch([event(0), event(1)]))
        assert retry.status_code == 200
        assert retry.json()["duplicates"] == 0
        assert len(rows(database)) == 2
    finally:
        blocker.close()
        stop()
        store.close()


def test_concurrent_batches_are_all_stored(collector: RunningCollector) -> None:
    def send(n: int) -> int:
        events = [event(n * 100 + i) for i in range(50)]
        return post(collector.url, batch(events), gzipped=n % 2 == 0).status_code

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        codes = list(pool.map(send, range(16)))
    assert codes == [200] * 16
    assert len(rows(collector.database)) == 16 * 50


@pytest.mark.parametrize("depth", [40, 900, 5000, 200_000])
def test_deeply_nested_json_never_causes_a_server_error(
    collector: RunningCollector, depth: int
) -> None:
    nested = "[" * depth + "]" * depth
    content = (
        '{"api_key": "p", "events": [{"event_type": "e", "device_id": "device-12345", '
        f'"event_properties": {{"x": {nested}}}}}]}}'
    ).encode()
    response = post(collector.url, content)
    assert response.status_code in (200, 400, 413)
    assert response.json()["code"] == response.status_code


def _limit_pages(store: EventStore, pages: int | None) -> None:
    """Let the store's database grow to ``pages`` pages at most (``None``: its size now):
    SQLite then refuses writes that need room with ``SQLITE_FULL``, as on a full disk."""
    with store._lock:
        conn = store._conn
        limit = pages if pages is not None else conn.execute("PRAGMA page_count").fetchone()[0]
        conn.execute(f"PRAGMA max_page_count = {limit}")


def test_healthz_says_unwritable_after_a_full_disk_until_a_write_succeeds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Found by an outside audit: with the disk full, ingest answered 503 while /healthz kept
    answering 200 (its probe was an empty transaction, which needs no room). The disk is filled
    inside SQLite (``max_page_count``: the same ``SQLITE_FULL`` a real full disk gives)."""
    store = EventStore(tmp_path / "c.db")
    url, stop = start_in_thread(store)
    try:
        assert httpx.get(f"{url}/healthz", timeout=10).status_code == 200
        _limit_pages(store, None)
        big = [event(i, event_properties={"blob": "x" * 20_000}) for i in range(20)]
        refused = post(url, batch(big))
        assert refused.status_code == 503 and refused.headers["Retry-After"] == "5"
        health = httpx.get(f"{url}/healthz", timeout=10)
        assert health.status_code == 503 and health.headers["Retry-After"] == "5"
        assert health.json() == {"status": "unavailable", "error": "database is not writable"}
        assert str(tmp_path) not in health.text
        _limit_pages(store, 1_000_000)  # room again
        assert httpx.get(f"{url}/healthz", timeout=10).status_code == 503  # not proven yet
        assert post(url, batch(big)).status_code == 200
        assert httpx.get(f"{url}/healthz", timeout=10).json() == {"status": "ok"}
        # Without a write succeeding, the hold ends and the header probe decides again.
        _limit_pages(store, None)
        more = [event(100 + i, event_properties={"blob": "y" * 20_000}) for i in range(20)]
        assert post(url, batch(more)).status_code == 503
        monkeypatch.setattr(_sqlite_store, "_FAILURE_HOLD_SECONDS", 0.0)
        assert httpx.get(f"{url}/healthz", timeout=10).status_code == 200
    finally:
        stop()
        store.close()


def test_healthz_says_unwritable_for_a_read_only_database(tmp_path: Path) -> None:
    """Found by an outside audit: a read-only database file started and answered /healthz 200
    (SQLite begins and commits an empty write transaction on a read-only file). The probe now
    rewrites the file's header and rolls back. The store's connection is reopened read-only
    (``mode=ro``: what SQLite does for a file it may not write; root ignores file modes)."""
    database = tmp_path / "c.db"
    store = EventStore(database)
    url, stop = start_in_thread(store)
    try:
        with store._lock:
            store._conn.close()
            store._conn = sqlite3.connect(
                f"file:{database}?mode=ro", uri=True, isolation_level=None, check_same_thread=False
            )
        health = httpx.get(f"{url}/healthz", timeout=10)
        assert health.status_code == 503, health.text
        assert post(url, batch([event(0)])).status_code == 503
        assert rows(database) == []
    finally:
        stop()
        store.close()
