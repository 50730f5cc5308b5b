"""Key/value state (JSON values in ``state``), the persisted counters and event id blocks.

:func:`peek_state` reads state without opening the store (nothing is written, not even a
lock file), for when the environment vetoes telemetry and the files must stay untouched.

Counters are added to with :meth:`~telemetry._store._db.Database.increment` (or
:func:`~telemetry._store._db.bump` inside a transaction); increments the database could not
take wait in ``Database.pending_counts`` until :func:`flush_counters` writes them.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Final

from telemetry._store._connect import connect_read_only
from telemetry._store._db import DB_FILENAME, OPENED_ROW, Database

EVENT_ID_BLOCK: Final = 10_000


# ---------------------------------------------------------------------- state


def get_state(db: Database, key: str, default: Any = None) -> Any:
    """A JSON value from the ``state`` table."""
    rows = db.query("SELECT value FROM state WHERE key = ?", (key,))
    return json.loads(rows[0][0]) if rows else default


def set_state(db: Database, key: str, value: Any) -> None:
    """Store a JSON value (``None`` deletes the key)."""
    db.write(lambda conn: _put_state(conn, key, value), None)


def update_state(db: Database, key: str, change: Callable[[Any], Any]) -> Any:
    """Replace the value under ``key`` by ``change(value)`` in one transaction; returns the
    new value, or ``None`` when the database could not be written."""

    return db.write(lambda conn: update_state_in(conn, key, change), None)


def update_state_in(conn: sqlite3.Connection, key: str, change: Callable[[Any], Any]) -> Any:
    """:func:`update_state` inside the caller's transaction; returns the new value."""
    row = conn.execute("SELECT value FROM state WHERE key = ?", (key,)).fetchone()
    value = change(json.loads(row[0]) if row else None)
    _put_state(conn, key, value)
    return value


def setdefault_state(db: Database, key: str, value: Any) -> Any:
    """Store ``value`` under ``key`` unless a value is there already; returns the stored
    value (``value`` when the database cannot be written)."""
    stored = update_state(db, key, lambda current: value if current is None else current)
    return value if stored is None else stored


def all_state(db: Database) -> dict[str, Any]:
    """Every state key and value."""
    return {k: json.loads(v) for k, v in db.query("SELECT key, value FROM state")}


def peek_state(data_dir: Path, keys: Sequence[str]) -> dict[str, Any]:
    """The stored values of ``keys`` in ``data_dir``'s database, read without writing anything
    (not even a lock file): used when the environment vetoes telemetry and the files must
    stay untouched. Missing or unreadable values are absent."""
    db_path = data_dir / DB_FILENAME
    if not db_path.exists() or not keys:
        return {}
    marks = ",".join("?" * len(keys))
    try:
        conn = connect_read_only(db_path)
        try:
            rows = conn.execute(
                f"SELECT key, value FROM state WHERE key IN ({marks})", tuple(keys)
            ).fetchall()
        finally:
            conn.close()
    except sqlite3.Error:
        return {}
    found: dict[str, Any] = {}
    for key, value in rows:
        with contextlib.suppress(ValueError):
            found[key] = json.loads(value)
    return found


def _put_state(conn: sqlite3.Connection, key: str, value: Any) -> None:
    """Write one ``state`` row (``None`` deletes it); inside the caller's transaction."""
    if value is None:
        conn.execute("DELETE FROM state WHERE key = ?", (key,))
        return
    conn.execute(
        "INSERT INTO state(key, value) VALUES (?, ?)"
        " ON CONFLICT(key) DO UPDATE SET value = excluded.value",
        (key, json.dumps(value, separators=(",", ":"))),
    )


# ---------------------------------------------------------------------- counters


def counters(db: Database) -> dict[str, int]:
    """Persisted counters plus any not yet written."""
    result = {k: int(v) for k, v in db.query("SELECT name, value FROM counters")}
    result.pop(OPENED_ROW, None)
    with db.lock:
        for name, value in db.pending_counts.items():
            result[name] = result.get(name, 0) + value
    return result


def flush_counters(db: Database) -> None:
    """Persist counters that could not be written when they happened."""
    with db.lock:
        pending = dict(db.pending_counts)
        db.pending_counts.clear()
    for name, value in pending.items():
        db.increment(name, value)


def reset_counters(db: Database) -> None:
    """Forget every counter."""
    with db.lock:
        db.pending_counts.clear()
    db.write(lambda c: c.execute("DELETE FROM counters WHERE name != ?", (OPENED_ROW,)), None)


# ---------------------------------------------------------------------- event ids


def reserve_event_ids(db: Database, block: int = EVENT_ID_BLOCK) -> int:
    """Reserve ``block`` event ids for this process; returns the first.

    The high-water mark only grows, so ids are never reused, across processes too.
    """

    def work(conn: sqlite3.Connection) -> int:
        row = conn.execute("SELECT value FROM state WHERE key = 'event_id_hw'").fetchone()
        high = int(json.loads(row[0])) if row else 0
        conn.execute(
            "INSERT INTO state(key, value) VALUES ('event_id_hw', ?)"
            " ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            (str(high + block),),
        )
        return high + 1

    first = db.write(work, None)
    if first is None:  # the database is failing: continue from a time-based id
        return int(time.time() * 1000) * 1000
    return int(first)
