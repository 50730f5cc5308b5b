"""The SQLite layout of schema 5: dedup keys in ``event_keys`` (clustered by day) instead of a
unique index on random insert_ids. A version 4 database migrates with its rows and keys; resent
events stay duplicates; deletion and retention remove the keys of the events they delete."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

from telemetry.collector import EventStore
from telemetry.collector._sqlite_schema import MIGRATIONS
from telemetry.collector._validation import Batch, parse_batch

from ._support import DEVICE_ID, PROJECT, batch, event


def parsed(*events: dict[str, Any], project: str = PROJECT) -> Batch:
    return parse_batch(json.dumps(batch(list(events)) | {"api_key": project}).encode())


def _count(path: Path, table: str) -> int:
    with sqlite3.connect(path) as conn:
        return int(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])


def test_a_version_4_database_migrates_and_keeps_deduplicating(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path, isolation_level=None)
    for statement in (s for migration in MIGRATIONS[:4] for s in migration):
        conn.execute(statement)
    conn.execute("PRAGMA user_version = 4")
    for i, e in enumerate([event(1), event(2), event(3, time=None)]):
        conn.execute(
            "INSERT INTO events (project, insert_id, device_id, event_type, time, event_time, "
            "received_at, event) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (PROJECT, e["insert_id"], DEVICE_ID, e["event_type"], e.get("time"), None, i, "{}"),
        )
    conn.close()
    store = EventStore(path)
    try:
        assert store.schema_version == 6
        assert store.count() == 3
        again = store.insert_batch(parsed(event(1), event(2), event(3, time=None), event(4)))
        assert (again.inserted, again.duplicates) == (1, 3)
    finally:
        store.close()
    assert _count(path, "event_keys") == 4
    columns = [r[1] for r in sqlite3.connect(path).execute("PRAGMA table_info(events)")]
    assert columns[-1] == "event_time" and columns[:3] == ["id", "project", "insert_id"]


def test_deletion_and_retention_delete_the_keys_of_deleted_events(tmp_path: Path) -> None:
    path = tmp_path / "c.db"
    store = EventStore(path)
    try:
        store.insert_batch(parsed(event(1), event(2)), received_at_ms=1)
        store.insert_batch(
            parsed(event(3, device_id="device-other-01"), event(4, device_id="device-other-01")),
            received_at_ms=10**13,
        )
        assert _count(path, "event_keys") == 4
        assert store.delete_device(PROJECT, "device-other-01", "x").deleted == 2
        assert _count(path, "event_keys") == 2
        assert store.purge_expired(cutoff_ms=2, project=None, limit=100) == 2
        assert (_count(path, "event_keys"), store.count()) == (0, 0)
        # Their keys gone, the same events may be stored again (e.g. another installation).
        assert store.insert_batch(parsed(event(1)), received_at_ms=3).inserted == 1
    finally:
        store.close()
