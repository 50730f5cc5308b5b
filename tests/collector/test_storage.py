"""Tests of the SQLite event store: schema, durability settings, dedup, errors."""

from __future__ import annotations

import json
import sqlite3
import threading
from pathlib import Path

import pytest

from telemetry.collector import SCHEMA_VERSION, EventStore, StorageUnavailable
from telemetry.collector._validation import Batch, parse_batch

from ._support import batch, event, rows


def parsed(*events: dict[str, object], project: str = "etcher-test") -> Batch:
    return parse_batch(json.dumps(batch(list(events)) | {"api_key": project}).encode())


def test_new_database_gets_schema_wal_and_full_sync(tmp_path: Path) -> None:
    store = EventStore(tmp_path / "c.db")
    try:
        assert store.schema_version == SCHEMA_VERSION == 6
        assert store.pragma("journal_mode") == "wal"
        assert store.pragma("synchronous") == "2"  # FULL
    finally:
        store.close()
    conn = sqlite3.connect(tmp_path / "c.db")
    columns = {row[1] for row in conn.execute("PRAGMA table_info(events)")}
    assert {
        "insert_id",
        "project",
        "device_id",
        "user_id",
        "event_type",
        "time",
        "received_at",
        "event",
    } <= columns
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    conn.close()


def test_reopening_keeps_rows_and_does_not_migrate_again(tmp_path: Path) -> None:
    store = EventStore(tmp_path / "c.db")
    store.insert_batch(parsed(event(1)), received_at_ms=123)
    store.close()
    store = EventStore(tmp_path / "c.db")
    assert store.count() == 1
    assert store.schema_version == SCHEMA_VERSION
    store.close()


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "c.db")
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(StorageUnavailable, match="newer"):
        EventStore(tmp_path / "c.db")


def test_unopenable_path_raises_storage_unavailable(tmp_path: Path) -> None:
    with pytest.raises(StorageUnavailable):
        EventStore(tmp_path / "missing-dir" / "c.db")
    (tmp_path / "not-a-db").write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StorageUnavailable):
        EventStore(tmp_path / "not-a-db")


def test_insert_or_ignore_counts_duplicates(tmp_path: Path) -> None:
    store = EventStore(tmp_path / "c.db")
    try:
        first = store.insert_batch(parsed(event(1), event(2)), received_at_ms=1)
        assert (first.inserted, first.duplicates) == (2, 0)
        again = store.insert_batch(parsed(event(2), event(3), event(3)), received_at_ms=2)
        assert (again.inserted, again.duplicates) == (1, 2)
        # The same insert_id in another project is a different event.
        other = store.insert_batch(parsed(event(1), project="other"), received_at_ms=3)
        assert (other.inserted, other.duplicates) == (1, 0)
    finally:
        store.close()
    stored = rows(tmp_path / "c.db")
    assert [(r["project"], r["event_type"], r["received_at"]) for r in stored] == [
        ("etcher-test", "Test Event 1", 1),
        ("etcher-test", "Test Event 2", 1),
        ("etcher-test", "Test Event 3", 2),
        ("other", "Test Event 1", 3),
    ]
    assert json.loads(stored[0]["event"]) == event(1)
    assert stored[0]["insert_id"] == event(1)["insert_id"]
    assert stored[0]["device_id"] == "device-0b1f5c2e"
    assert stored[0]["user_id"] is None
    assert stored[0]["time"] == event(1)["time"]


def test_locked_database_raises_and_commits_nothing(tmp_path: Path) -> None:
    store = EventStore(tmp_path / "c.db", busy_timeout_ms=50)
    blocker = sqlite3.connect(tmp_path / "c.db", isolation_level=None)
    try:
        blocker.execute("BEGIN IMMEDIATE")
        with pytest.raises(StorageUnavailable):
            store.insert_batch(parsed(event(1)))
        with pytest.raises(StorageUnavailable):
            store.check_writable()
        blocker.execute("ROLLBACK")
        store.check_writable()
        assert store.insert_batch(parsed(event(1))).inserted == 1
    finally:
        blocker.close()
        store.close()


def test_collectors_opening_a_new_file_at_once_all_open_it(tmp_path: Path) -> None:
    # Two collector processes started together on one new SQLite file: SQLite refuses the loser
    # of the WAL switch at once ("database is locked", no busy handler); both must still start.
    errors: list[BaseException] = []
    stores: list[EventStore] = []

    def open_store(path: Path, barrier: threading.Barrier) -> None:
        barrier.wait()
        try:
            stores.append(EventStore(path))
        except BaseException as exc:  # collected, asserted below
            errors.append(exc)

    for round_ in range(20):
        barrier = threading.Barrier(4)
        path = tmp_path / f"collector{round_}.db"
        threads = [threading.Thread(target=open_store, args=(path, barrier)) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
    for store in stores:
        store.close()
    assert errors == []
    assert len(stores) == 80
