"""The local database schema and its versioned migrations (``PRAGMA user_version``)."""

from __future__ import annotations

import sqlite3
from typing import Final

#: Each entry migrates from version ``index`` to ``index + 1``. Append only; never edit.
MIGRATIONS: Final[tuple[str, ...]] = (
    # 1: the event queue, key/value state, loss counters, the dropped-event log, linked device
    #    ids (url_params) and sticky experiment assignments.
    """
    CREATE TABLE events (
        id INTEGER PRIMARY KEY,                -- queue order (internal; may be reused)
        insert_id TEXT NOT NULL,               -- UUID made at track(), kept through retries
        event_type TEXT NOT NULL,
        time INTEGER NOT NULL,                 -- event time, UTC milliseconds
        size INTEGER NOT NULL,                 -- bytes of payload
        payload TEXT NOT NULL                  -- the HTTP V2 event JSON, exactly as sent
    );
    CREATE TABLE state (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL                    -- JSON
    );
    CREATE TABLE counters (
        name TEXT PRIMARY KEY,
        value INTEGER NOT NULL DEFAULT 0
    );
    CREATE TABLE dropped_events (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        event_id INTEGER,
        insert_id TEXT,
        event_type TEXT,
        reason TEXT NOT NULL,
        dropped_at INTEGER NOT NULL,
        payload TEXT
    );
    CREATE TABLE linked_devices (
        device_id TEXT PRIMARY KEY,
        seen_at INTEGER NOT NULL               -- newest first when ordered by this, descending
    );
    CREATE TABLE experiments (
        name TEXT NOT NULL,
        device_id TEXT NOT NULL,
        variation TEXT NOT NULL,
        assigned_at INTEGER NOT NULL,
        PRIMARY KEY (name, device_id)
    );
    """,
    # 2: the cross-process upload lease and the ring buffer of the last sent batches.
    """
    CREATE TABLE upload_lease (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        owner TEXT NOT NULL,                   -- random per uploader instance
        pid INTEGER NOT NULL,
        expires_at INTEGER NOT NULL            -- UTC milliseconds
    );
    CREATE TABLE sent_batches (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        sent_at INTEGER NOT NULL,              -- UTC milliseconds
        status INTEGER NOT NULL,               -- HTTP status of the answer
        event_count INTEGER NOT NULL,
        body BLOB NOT NULL                     -- gzip of the JSON array of events, as sent
    );
    """,
    # 3: events arrive through per-process journals (``_journal.py``): insert_id is
    #    unique so a line ingested twice is stored once, and each journal's ingested offset
    #    commits with its rows.
    """
    CREATE UNIQUE INDEX events_insert_id ON events(insert_id);
    CREATE TABLE journal_progress (
        file TEXT PRIMARY KEY,                 -- journal file name (in <data dir>/journal)
        offset INTEGER NOT NULL                -- bytes already copied into events
    );
    """,
    # 4: error and crash reports (``_reports.py``): one row per fingerprint waiting to be sent,
    #    with how many times it happened; and the ring buffer of the last reports sent.
    """
    CREATE TABLE reports (
        id INTEGER PRIMARY KEY,
        fingerprint TEXT NOT NULL UNIQUE,
        event_id TEXT NOT NULL,                -- 32 hex digits, kept through retries
        count INTEGER NOT NULL,                -- occurrences not yet sent
        first_seen INTEGER NOT NULL,           -- UTC milliseconds
        last_seen INTEGER NOT NULL,
        payload TEXT NOT NULL                  -- the Sentry event JSON of the last occurrence
    );
    CREATE TABLE sent_reports (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        sent_at INTEGER NOT NULL,
        status INTEGER NOT NULL,
        body TEXT NOT NULL                     -- the Sentry event JSON, as sent
    );
    """,
)

SCHEMA_VERSION: Final = len(MIGRATIONS)


def migrate(conn: sqlite3.Connection) -> int:
    """Bring the database at ``conn`` to :data:`SCHEMA_VERSION`; return the version found.

    Each step runs in its own transaction, so an interrupted upgrade resumes where it stopped.

    Raises:
        sqlite3.DatabaseError: the file is newer than this code or cannot be migrated.
    """
    found: int = conn.execute("PRAGMA user_version").fetchone()[0]
    if found > SCHEMA_VERSION:
        raise sqlite3.DatabaseError(
            f"database schema version {found} is newer than this library ({SCHEMA_VERSION})"
        )
    for version in range(found, SCHEMA_VERSION):
        conn.execute("BEGIN IMMEDIATE")
        try:
            current: int = conn.execute("PRAGMA user_version").fetchone()[0]
            if current == version:  # another process may have migrated meanwhile
                for statement in _statements(MIGRATIONS[version]):
                    conn.execute(statement)
                conn.execute(f"PRAGMA user_version = {version + 1}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    return found


def _statements(script: str) -> list[str]:
    statements: list[str] = []
    buffer = ""
    for line in script.splitlines(keepends=True):
        buffer += line
        if sqlite3.complete_statement(buffer):
            if buffer.strip():
                statements.append(buffer.strip())
            buffer = ""
    return statements
