"""Device ids linked through URLs (``linked_devices``) and sticky experiment assignments
(``experiments``)."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from telemetry._store._db import Database, now_ms


def linked_device_ids(db: Database) -> list[str]:
    """Device ids linked through URLs, newest first."""
    rows = db.query("SELECT device_id FROM linked_devices ORDER BY seen_at DESC, rowid DESC")
    return [r[0] for r in rows]


def replace_linked_device_ids(db: Database, ids: Sequence[str]) -> None:
    """Store ``ids`` (newest first) as the linked device ids."""
    now = now_ms()

    def work(conn: sqlite3.Connection) -> None:
        conn.execute("DELETE FROM linked_devices")
        conn.executemany(
            "INSERT OR IGNORE INTO linked_devices(device_id, seen_at) VALUES (?, ?)",
            [(device_id, now - index) for index, device_id in enumerate(ids)],
        )

    db.write(work, None)


def experiment_assignment(db: Database, name: str, device_id: str) -> str | None:
    """The stored variation of experiment ``name`` for ``device_id``, if any."""
    rows = db.query(
        "SELECT variation FROM experiments WHERE name = ? AND device_id = ?", (name, device_id)
    )
    return str(rows[0][0]) if rows else None


def assign_experiment(db: Database, name: str, device_id: str, variation: str) -> str:
    """Store a variation unless one exists; return the one that is stored."""

    def work(conn: sqlite3.Connection) -> None:
        conn.execute(
            "INSERT OR IGNORE INTO experiments(name, device_id, variation, assigned_at)"
            " VALUES (?, ?, ?, ?)",
            (name, device_id, variation, now_ms()),
        )

    db.write(work, None)
    return experiment_assignment(db, name, device_id) or variation
