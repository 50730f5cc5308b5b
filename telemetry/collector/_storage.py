"""SQLite storage of received events: schema migrations, durable insert-or-ignore, health check."""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from telemetry.collector._validation import Batch

__all__ = ["SCHEMA_VERSION", "EventStore", "InsertResult", "StorageUnavailable"]

logger = logging.getLogger("telemetry.collector")

#: Each migration is a sequence of statements; migration ``n`` (1-based) brings the schema from
#: ``PRAGMA user_version = n - 1`` to ``n``. Append new migrations, never edit old ones.
MIGRATIONS: Final[tuple[tuple[str, ...], ...]] = (
    (
        """
        CREATE TABLE events (
            id INTEGER PRIMARY KEY,
            project TEXT NOT NULL,
            insert_id TEXT NOT NULL,
            insert_id_generated INTEGER NOT NULL DEFAULT 0 CHECK (insert_id_generated IN (0, 1)),
            device_id TEXT,
            user_id TEXT,
            event_type TEXT NOT NULL,
            time INTEGER,
            received_at INTEGER NOT NULL,
            event TEXT NOT NULL,
            UNIQUE (project, insert_id)
        )
        """,
        # Deletion requests (by device) and per-device queries.
        "CREATE INDEX events_device ON events (device_id)",
        "CREATE INDEX events_received ON events (received_at)",
    ),
)

#: The schema version this code writes.
SCHEMA_VERSION: Final = len(MIGRATIONS)

_INSERT: Final = """
    INSERT OR IGNORE INTO events
        (project, insert_id, insert_id_generated, device_id, user_id, event_type, time,
         received_at, event)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
"""


class StorageUnavailable(Exception):
    """The database could not be opened, read or written; nothing was committed."""


@dataclass(frozen=True, slots=True)
class InsertResult:
    """Outcome of storing one batch."""

    #: Rows newly written.
    inserted: int
    #: Events already stored earlier (same ``project`` + ``insert_id``), or repeated in the batch.
    duplicates: int


class EventStore:
    """The collector's event table in one SQLite file (WAL journal, ``synchronous=FULL``).

    Thread-safe: one connection, every use serialised by a lock, so it can be called from worker
    threads (the ASGI app calls it through a thread pool, never on the event loop). A method that
    returns has committed; on any SQLite or OS error it rolls back and raises
    :class:`StorageUnavailable`.
    """

    def __init__(self, path: str | Path, *, busy_timeout_ms: int = 5000) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        try:
            self._conn = sqlite3.connect(
                self.path, isolation_level=None, check_same_thread=False, timeout=0
            )
        except (sqlite3.Error, OSError) as exc:
            raise StorageUnavailable(f"cannot open database {self.path}: {exc}") from exc
        try:
            self._configure(busy_timeout_ms)
            self._migrate()
        except (sqlite3.Error, OSError) as exc:
            self._conn.close()
            raise StorageUnavailable(f"cannot prepare database {self.path}: {exc}") from exc
        except StorageUnavailable:
            self._conn.close()
            raise

    def _configure(self, busy_timeout_ms: int) -> None:
        conn = self._conn
        conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise StorageUnavailable(f"cannot switch {self.path} to WAL (journal_mode={mode})")
        conn.execute("PRAGMA synchronous = FULL")
        conn.execute("PRAGMA foreign_keys = ON")

    def _migrate(self) -> None:
        conn = self._conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            version = int(conn.execute("PRAGMA user_version").fetchone()[0])
            if version > SCHEMA_VERSION:
                raise StorageUnavailable(
                    f"database {self.path} has schema version {version}, newer than this "
                    f"collector's {SCHEMA_VERSION}"
                )
            for number, statements in enumerate(MIGRATIONS[version:], start=version + 1):
                for statement in statements:
                    conn.execute(statement)
                conn.execute(f"PRAGMA user_version = {number}")
                logger.info("database schema migrated to version %d", number)
            conn.execute("COMMIT")
        except BaseException:
            self._rollback()
            raise

    @property
    def schema_version(self) -> int:
        """``PRAGMA user_version`` of the open database."""
        with self._lock:
            return int(self._conn.execute("PRAGMA user_version").fetchone()[0])

    def pragma(self, name: str) -> str:
        """Value of a connection setting, e.g. ``journal_mode`` or ``synchronous``."""
        if not name.isidentifier():
            raise ValueError(f"not a pragma name: {name!r}")
        with self._lock:
            return str(self._conn.execute(f"PRAGMA {name}").fetchone()[0])

    def insert_batch(self, batch: Batch, *, received_at_ms: int | None = None) -> InsertResult:
        """Store every event of ``batch`` in one transaction, ignoring already-stored ones.

        Returns only after ``COMMIT`` (durable with ``synchronous=FULL``).
        """
        received_at = int(time.time() * 1000) if received_at_ms is None else received_at_ms
        rows = [
            (
                batch.project,
                event.insert_id,
                int(event.insert_id_generated),
                event.device_id,
                event.user_id,
                event.event_type,
                event.time,
                received_at,
                event.event_json,
            )
            for event in batch.events
        ]
        inserted = self._write(rows)
        return InsertResult(inserted=inserted, duplicates=len(rows) - inserted)

    def _write(self, rows: Sequence[tuple[object, ...]]) -> int:
        with self._lock:
            conn = self._conn
            try:
                conn.execute("BEGIN IMMEDIATE")
                before = conn.total_changes
                conn.executemany(_INSERT, rows)
                inserted = conn.total_changes - before
                conn.execute("COMMIT")
            except (sqlite3.Error, OSError) as exc:
                self._rollback()
                raise StorageUnavailable(f"storing events failed: {exc}") from exc
            return inserted

    def check_writable(self) -> None:
        """Raise :class:`StorageUnavailable` unless a write transaction can be started now."""
        with self._lock:
            try:
                self._conn.execute("BEGIN IMMEDIATE")
                self._conn.execute("ROLLBACK")
            except (sqlite3.Error, OSError) as exc:
                self._rollback()
                raise StorageUnavailable(f"database is not writable: {exc}") from exc

    def count(self) -> int:
        """Number of stored events."""
        with self._lock:
            return int(self._conn.execute("SELECT count(*) FROM events").fetchone()[0])

    def _rollback(self) -> None:
        if self._conn.in_transaction:
            try:
                self._conn.execute("ROLLBACK")
            except sqlite3.Error:
                logger.warning("rollback failed", exc_info=True)

    def close(self) -> None:
        """Close the connection (idempotent)."""
        with self._lock:
            self._conn.close()
