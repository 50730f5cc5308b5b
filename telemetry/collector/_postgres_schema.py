"""The PostgreSQL backend's schema and SQL: versioned migrations, advisory lock keys, and the
statements of its batch operations.

Migrations are recorded in ``schema_migrations``; two collectors starting at once migrate one
after the other, because :func:`migrate` first takes a transaction-scoped advisory lock.
"""

from __future__ import annotations

import logging
from typing import Any, Final

import psycopg

from telemetry.collector._dashboard_schema import DASHBOARD_SUMMARY_TABLES
from telemetry.collector._storage import StorageUnavailable

__all__ = [
    "CLAIM_FORWARDS",
    "CLAIM_REPORT_FORWARDS",
    "DEVICE_LOCK_NAMESPACE",
    "INSERT_EVENTS",
    "INSERT_LINK_HIT",
    "INSERT_PROOFS",
    "INSERT_TOMBSTONE",
    "LOCK_DEVICES_SHARED",
    "LOCK_DEVICE_EXCLUSIVE",
    "PG_MIGRATIONS",
    "PG_SCHEMA_VERSION",
    "TRIM_TOMBSTONES",
    "migrate",
]

logger = logging.getLogger("telemetry.collector")

#: Migration ``n`` (1-based) brings the schema from version ``n - 1`` to ``n``. Append only.
PG_MIGRATIONS: Final[tuple[tuple[str, ...], ...]] = (
    (
        """
        CREATE TABLE events (
            id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            project TEXT NOT NULL,
            insert_id TEXT NOT NULL,
            insert_id_generated BOOLEAN NOT NULL DEFAULT FALSE,
            device_id TEXT,
            user_id TEXT,
            event_type TEXT NOT NULL,
            time BIGINT,
            received_at BIGINT NOT NULL,
            event TEXT NOT NULL,
            UNIQUE (project, insert_id)
        )
        """,
        "CREATE INDEX events_device ON events (device_id)",
        "CREATE INDEX events_received ON events (received_at)",
    ),
    (
        "ALTER TABLE events ADD COLUMN event_time BIGINT",
        "UPDATE events SET event_time = time",
        """
        CREATE TABLE tombstones (
            project TEXT NOT NULL,
            device_id TEXT NOT NULL,
            deleted_at BIGINT NOT NULL,
            reason TEXT NOT NULL,
            PRIMARY KEY (project, device_id)
        )
        """,
        """
        CREATE TABLE outbox (
            id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            project TEXT NOT NULL,
            insert_id TEXT NOT NULL,
            device_id TEXT,
            event TEXT NOT NULL,
            created_at BIGINT NOT NULL,
            next_attempt_at BIGINT NOT NULL,
            attempts INTEGER NOT NULL DEFAULT 0,
            UNIQUE (project, insert_id)
        )
        """,
        "CREATE INDEX outbox_due ON outbox (next_attempt_at)",
        "CREATE INDEX outbox_device ON outbox (project, device_id)",
        """
        CREATE TABLE link_hits (
            id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            program_id TEXT NOT NULL,
            kind TEXT NOT NULL,
            lead BOOLEAN NOT NULL,
            affiliate TEXT NOT NULL,
            url TEXT NOT NULL,
            client_ip TEXT NOT NULL,
            user_agent TEXT NOT NULL,
            dimension1 TEXT NOT NULL,
            dimension2 TEXT NOT NULL,
            dimension3 TEXT NOT NULL,
            dimension4 TEXT NOT NULL,
            dimension5 TEXT NOT NULL,
            is_sponsored BOOLEAN NOT NULL,
            created_at BIGINT NOT NULL
        )
        """,
    ),
    (
        # Proof of ownership (trust on first use), as in the SQLite schema.
        """
        CREATE TABLE device_proofs (
            project TEXT NOT NULL,
            device_id TEXT NOT NULL,
            proof_hash TEXT NOT NULL,
            first_seen BIGINT NOT NULL,
            PRIMARY KEY (project, device_id)
        )
        """,
        "ALTER TABLE tombstones ADD COLUMN proof_hash TEXT",
        "CREATE INDEX tombstones_age ON tombstones (project, deleted_at)",
    ),
    (
        # Error reports (Sentry event items) and their forwarding outbox, as in SQLite.
        """
        CREATE TABLE reports (
            id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            project TEXT NOT NULL,
            event_id TEXT NOT NULL,
            device_id TEXT,
            received_at BIGINT NOT NULL,
            timestamp BIGINT NOT NULL,
            level TEXT,
            platform TEXT,
            release TEXT,
            environment TEXT,
            exception_type TEXT,
            exception_value TEXT,
            fingerprint TEXT NOT NULL,
            count BIGINT NOT NULL CHECK (count >= 1),
            first_seen BIGINT NOT NULL,
            last_seen BIGINT NOT NULL,
            payload TEXT NOT NULL,
            UNIQUE (project, event_id)
        )
        """,
        "CREATE INDEX reports_group ON reports (project, fingerprint)",
        "CREATE INDEX reports_device ON reports (project, device_id)",
        """
        CREATE TABLE report_outbox (
            id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            project TEXT NOT NULL,
            event_id TEXT NOT NULL,
            device_id TEXT,
            payload TEXT NOT NULL,
            created_at BIGINT NOT NULL,
            next_attempt_at BIGINT NOT NULL,
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
    ),
    DASHBOARD_SUMMARY_TABLES,
)

PG_SCHEMA_VERSION: Final = len(PG_MIGRATIONS)

#: Advisory lock key serialising migrations of one database.
MIGRATION_LOCK: Final = 0x7E1E_3E7A
#: First key of the (namespace, hash) advisory locks per (project, device id).
DEVICE_LOCK_NAMESPACE: Final = 0x7E1E

#: Takes the shared per-device lock of every device id of a batch (inserts share it).
LOCK_DEVICES_SHARED: Final = """
    SELECT count(pg_advisory_xact_lock_shared(%s, hashtext(%s || chr(1) || d)))
    FROM unnest(%s::text[]) AS d
"""

#: Stores a batch column by column (``unnest`` of arrays), skipping rows already stored, and
#: queues the new rows in the outbox when ``forward``; answers how many rows were new. Every
#: parameter is sent in binary format (``%(name)b``): psycopg then writes each array as length
#: prefixed values instead of formatting (and quoting) a text array literal, which cost most of
#: the insert's CPU.
INSERT_EVENTS: Final = """
    WITH ins AS (
        INSERT INTO events
            (project, insert_id, insert_id_generated, device_id, user_id, event_type, time,
             event_time, received_at, event)
        SELECT %(project)b, u.insert_id, u.generated, u.device_id, u.user_id, u.event_type,
               u.time, u.event_time, %(received_at)b, u.event
        FROM unnest(%(insert_id)b::text[], %(generated)b::boolean[], %(device_id)b::text[],
                    %(user_id)b::text[], %(event_type)b::text[], %(time)b::bigint[],
                    %(event_time)b::bigint[], %(event)b::text[])
             AS u(insert_id, generated, device_id, user_id, event_type, time, event_time, event)
        ON CONFLICT (project, insert_id) DO NOTHING
        RETURNING project, insert_id, device_id, event
    ), queued AS (
        INSERT INTO outbox (project, insert_id, device_id, event, created_at, next_attempt_at)
        SELECT project, insert_id, device_id, event, %(received_at)b, %(received_at)b
        FROM ins WHERE %(forward)b
        ON CONFLICT (project, insert_id) DO NOTHING
    )
    SELECT count(*) FROM ins
"""

#: Leases up to ``limit`` due outbox rows of the project due first, skipping rows another
#: collector holds, until ``until``.
CLAIM_FORWARDS: Final = """
    WITH first AS (
        SELECT project FROM outbox WHERE next_attempt_at <= %(now)s
        ORDER BY next_attempt_at, id LIMIT 1
    ), picked AS (
        SELECT id FROM outbox
        WHERE project = (SELECT project FROM first) AND next_attempt_at <= %(now)s
        ORDER BY id LIMIT %(limit)s
        FOR UPDATE SKIP LOCKED
    )
    UPDATE outbox AS o SET next_attempt_at = %(until)s FROM picked WHERE o.id = picked.id
    RETURNING o.id, o.project, o.insert_id, o.device_id, o.event, o.created_at, o.attempts
"""

#: Records the first proof hash of each device (``unnest`` of two arrays); never replaces one.
INSERT_PROOFS: Final = """
    INSERT INTO device_proofs (project, device_id, proof_hash, first_seen)
    SELECT %s, u.device_id, u.proof_hash, %s
    FROM unnest(%s::text[], %s::text[]) AS u(device_id, proof_hash)
    ON CONFLICT (project, device_id) DO NOTHING
"""

#: Sets a tombstone, or gives a tombstone set before proofs existed its first proof hash.
INSERT_TOMBSTONE: Final = """
    INSERT INTO tombstones (project, device_id, deleted_at, reason, proof_hash)
    VALUES (%s, %s, %s, %s, %s) ON CONFLICT (project, device_id) DO UPDATE
    SET proof_hash = coalesce(tombstones.proof_hash, excluded.proof_hash)
"""

#: Keeps the newest ``max_tombstones`` tombstones of a project.
TRIM_TOMBSTONES: Final = """
    DELETE FROM tombstones WHERE ctid IN (
        SELECT ctid FROM tombstones WHERE project = %s
        ORDER BY deleted_at DESC, device_id DESC OFFSET %s
    )
"""

#: Takes the exclusive per-device lock of one device id (deletion requests hold it).
LOCK_DEVICE_EXCLUSIVE: Final = "SELECT pg_advisory_xact_lock(%s, hashtext(%s || chr(1) || %s))"

#: Leases up to ``limit`` due report outbox rows (oldest first), skipping rows another
#: collector holds, until ``until``.
CLAIM_REPORT_FORWARDS: Final = """
    WITH picked AS (
        SELECT id FROM report_outbox WHERE next_attempt_at <= %(now)s
        ORDER BY next_attempt_at, id LIMIT %(limit)s
        FOR UPDATE SKIP LOCKED
    )
    UPDATE report_outbox AS o SET next_attempt_at = %(until)s FROM picked WHERE o.id = picked.id
    RETURNING o.id, o.project, o.event_id, o.payload, o.created_at, o.attempts
"""

#: Stores one ``link_hits`` row (the order of ``LinkHit.as_row``, booleans as booleans).
INSERT_LINK_HIT: Final = (
    "INSERT INTO link_hits (program_id, kind, lead, affiliate, url, client_ip, "
    "user_agent, dimension1, dimension2, dimension3, dimension4, dimension5, "
    f"is_sponsored, created_at) VALUES ({', '.join(['%s'] * 14)})"
)


def migrate(conn: psycopg.Connection[Any]) -> None:
    """Apply the migrations the database lacks, inside the caller's transaction.

    Raises :class:`StorageUnavailable` when the database is newer than this code.
    """
    conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
    conn.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations ("
        "version INTEGER PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"
    )
    row = conn.execute("SELECT coalesce(max(version), 0) FROM schema_migrations").fetchone()
    version = int(row[0]) if row else 0
    if version > PG_SCHEMA_VERSION:
        raise StorageUnavailable(
            f"the database has schema version {version}, newer than this collector's "
            f"{PG_SCHEMA_VERSION}"
        )
    for number, statements in enumerate(PG_MIGRATIONS[version:], start=version + 1):
        for statement in statements:
            conn.execute(statement)
        conn.execute("INSERT INTO schema_migrations (version) VALUES (%s)", (number,))
        logger.info("database schema migrated to version %d", number)
