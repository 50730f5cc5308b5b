"""The SQLite backend's schema: its versioned migrations and the statements its writes share.

The schema version is SQLite's ``PRAGMA user_version``; :func:`migrate` brings an older database
up to :data:`SCHEMA_VERSION` inside the caller's write transaction.

Since version 5 an event's dedup key is ``event_keys (project, day, insert_id)`` (``day``: the UTC
day of the event's ``time``), not a unique index on ``events``: a resent event (same project,
insert_id and time) is stored once; the keys of deleted events are deleted with them.
"""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path
from typing import Final

from telemetry.collector._dashboard_schema import DASHBOARD_SUMMARY_TABLES
from telemetry.collector._storage import StorageUnavailable

__all__ = [
    "DAY_MS",
    "EVENT_DAY_SQL",
    "EVENT_VALUES",
    "INSERT_EVENTS",
    "LINK_COLUMNS",
    "MIGRATIONS",
    "SCHEMA_VERSION",
    "migrate",
]

logger = logging.getLogger("telemetry.collector")

#: Milliseconds per day: ``event_keys.day`` is the event's ``time`` // this (-1 without time).
DAY_MS: Final = 86_400_000
#: ``event_keys.day`` of an ``events`` row, in SQL.
EVENT_DAY_SQL: Final = f"coalesce(time / {DAY_MS}, -1)"

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
    (
        "ALTER TABLE events ADD COLUMN event_time INTEGER",
        "UPDATE events SET event_time = time",
        """
        CREATE TABLE tombstones (
            project TEXT NOT NULL,
            device_id TEXT NOT NULL,
            deleted_at INTEGER NOT NULL,
            reason TEXT NOT NULL,
            PRIMARY KEY (project, device_id)
        )
        """,
        """
        CREATE TABLE outbox (
            id INTEGER PRIMARY KEY,
            project TEXT NOT NULL,
            insert_id TEXT NOT NULL,
            device_id TEXT,
            event TEXT NOT NULL,
            created_at INTEGER NOT NULL,
            next_attempt_at INTEGER NOT NULL,
            attempts INTEGER NOT NULL DEFAULT 0,
            UNIQUE (project, insert_id)
        )
        """,
        "CREATE INDEX outbox_due ON outbox (next_attempt_at)",
        "CREATE INDEX outbox_device ON outbox (project, device_id)",
        """
        CREATE TABLE link_hits (
            id INTEGER PRIMARY KEY,
            program_id TEXT NOT NULL,
            kind TEXT NOT NULL,
            lead INTEGER NOT NULL CHECK (lead IN (0, 1)),
            affiliate TEXT NOT NULL,
            url TEXT NOT NULL,
            client_ip TEXT NOT NULL,
            user_agent TEXT NOT NULL,
            dimension1 TEXT NOT NULL,
            dimension2 TEXT NOT NULL,
            dimension3 TEXT NOT NULL,
            dimension4 TEXT NOT NULL,
            dimension5 TEXT NOT NULL,
            is_sponsored INTEGER NOT NULL CHECK (is_sponsored IN (0, 1)),
            created_at INTEGER NOT NULL
        )
        """,
    ),
    (
        # Proof of ownership (trust on first use); a tombstone keeps the proof hash it was set
        # with. Devices stored before this migration have no proof hash yet.
        """
        CREATE TABLE device_proofs (
            project TEXT NOT NULL,
            device_id TEXT NOT NULL,
            proof_hash TEXT NOT NULL,
            first_seen INTEGER NOT NULL,
            PRIMARY KEY (project, device_id)
        )
        """,
        "ALTER TABLE tombstones ADD COLUMN proof_hash TEXT",
        "CREATE INDEX tombstones_age ON tombstones (project, deleted_at)",
    ),
    (
        # Error reports (Sentry event items) and their forwarding outbox.
        """
        CREATE TABLE reports (
            id INTEGER PRIMARY KEY,
            project TEXT NOT NULL,
            event_id TEXT NOT NULL,
            device_id TEXT,
            received_at INTEGER NOT NULL,
            timestamp INTEGER NOT NULL,
            level TEXT,
            platform TEXT,
            release TEXT,
            environment TEXT,
            exception_type TEXT,
            exception_value TEXT,
            fingerprint TEXT NOT NULL,
            count INTEGER NOT NULL CHECK (count >= 1),
            first_seen INTEGER NOT NULL,
            last_seen INTEGER NOT NULL,
            payload TEXT NOT NULL,
            UNIQUE (project, event_id)
        )
        """,
        "CREATE INDEX reports_group ON reports (project, fingerprint)",
        "CREATE INDEX reports_device ON reports (project, device_id)",
        """
        CREATE TABLE report_outbox (
            id INTEGER PRIMARY KEY,
            project TEXT NOT NULL,
            event_id TEXT NOT NULL,
            device_id TEXT,
            payload TEXT NOT NULL,
            created_at INTEGER NOT NULL,
            next_attempt_at INTEGER NOT NULL,
            attempts INTEGER NOT NULL DEFAULT 0,
            UNIQUE (project, event_id)
        )
        """,
        "CREATE INDEX report_outbox_due ON report_outbox (next_attempt_at)",
        "CREATE INDEX report_outbox_device ON report_outbox (project, device_id)",
    ),
    (
        # Retention deletes reports by age (events: ``events_received``; tombstones:
        # ``tombstones_age``).
        "CREATE INDEX reports_received ON reports (received_at)",
        # Deduplication moves from a UNIQUE index on (project, insert_id), whose random UUIDs
        # made every batch write pages all over the file, to ``event_keys``: clustered by the
        # UTC day of the event's time, so a batch's keys land on a few neighbouring pages.
        """
        CREATE TABLE event_keys (
            project TEXT NOT NULL,
            day INTEGER NOT NULL,
            insert_id TEXT NOT NULL,
            PRIMARY KEY (project, day, insert_id)
        ) WITHOUT ROWID
        """,
        """
        CREATE TABLE events_v5 (
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
            event_time INTEGER
        )
        """,
        "INSERT INTO events_v5 SELECT id, project, insert_id, insert_id_generated, device_id, "
        "user_id, event_type, time, received_at, event, event_time FROM events",
        f"INSERT INTO event_keys SELECT project, {EVENT_DAY_SQL}, insert_id FROM events",
        "DROP TABLE events",
        "ALTER TABLE events_v5 RENAME TO events",
        # Deletion requests: (project, device_id); a batch comes from one device, so it touches
        # one place of this index.
        "CREATE INDEX events_device ON events (project, device_id)",
        "CREATE INDEX events_received ON events (received_at)",
    ),
    DASHBOARD_SUMMARY_TABLES,
)

#: The schema version this code writes.
SCHEMA_VERSION: Final = len(MIGRATIONS)

#: Stores ``events`` rows (the column order of ``event_rows``) once their keys are claimed; a
#: ``VALUES`` row (``EVENT_VALUES``) per event follows.
INSERT_EVENTS: Final = (
    "INSERT INTO events (project, insert_id, insert_id_generated, device_id, user_id, "
    "event_type, time, event_time, received_at, event) VALUES "
)
EVENT_VALUES: Final = "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"

#: The ``link_hits`` columns, in the order of ``LinkHit.as_row``.
LINK_COLUMNS: Final = (
    "program_id, kind, lead, affiliate, url, client_ip, user_agent, dimension1, dimension2, "
    "dimension3, dimension4, dimension5, is_sponsored, created_at"
)


def migrate(conn: sqlite3.Connection, path: Path) -> None:
    """Apply the migrations ``conn``'s database lacks (the caller holds a write transaction).

    Raises :class:`StorageUnavailable` when the database is newer than this code.
    """
    version = int(conn.execute("PRAGMA user_version").fetchone()[0])
    if version > SCHEMA_VERSION:
        raise StorageUnavailable(
            f"database {path} has schema version {version}, newer than this "
            f"collector's {SCHEMA_VERSION}"
        )
    for number, statements in enumerate(MIGRATIONS[version:], start=version + 1):
        for statement in statements:
            conn.execute(statement)
        conn.execute(f"PRAGMA user_version = {number}")
        logger.info("database schema migrated to version %d", number)
