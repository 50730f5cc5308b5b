"""PostgreSQL storage (psycopg 3), for deployments where several collector processes on several
hosts share one database.

Same tables as the SQLite store (see ``_storage``), created by versioned migrations recorded in
``schema_migrations``; two collectors starting at once migrate one after the other (advisory
lock). Deduplication is the ``UNIQUE (project, insert_id)`` constraint with ``INSERT ... ON
CONFLICT DO NOTHING``, so two processes receiving the same batch at the same moment store it
once: the second insert waits for the first one's commit on the unique index, then skips. Inserts
take a *shared* advisory lock per (project, device id) and deletion requests an *exclusive* one,
so an event can never slip in between a deletion's tombstone check and its delete.

A small pool of connections (autocommit, explicit transactions) serves the thread pool the ASGI
app calls storage from.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Final, TypeVar

import psycopg

from telemetry.collector._storage import (
    MAX_REASON_LENGTH,
    DeletionResult,
    ForwardRow,
    InsertResult,
    LinkHit,
    Storage,
    StorageUnavailable,
    batch_devices,
    event_rows,
    now_ms,
)
from telemetry.collector._validation import Batch

__all__ = ["PG_MIGRATIONS", "PG_SCHEMA_VERSION", "PostgresStore"]

logger = logging.getLogger("telemetry.collector")

_T = TypeVar("_T")

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
)

PG_SCHEMA_VERSION: Final = len(PG_MIGRATIONS)

#: Advisory lock key serialising migrations of one database.
_MIGRATION_LOCK: Final = 0x7E1E_3E7A
#: First key of the (namespace, hash) advisory locks per (project, device id).
_DEVICE_LOCK_NAMESPACE: Final = 0x7E1E

_LOCK_DEVICES_SHARED: Final = """
    SELECT count(pg_advisory_xact_lock_shared(%s, hashtext(%s || chr(1) || d)))
    FROM unnest(%s::text[]) AS d
"""

_INSERT: Final = """
    WITH ins AS (
        INSERT INTO events
            (project, insert_id, insert_id_generated, device_id, user_id, event_type, time,
             event_time, received_at, event)
        SELECT %(project)s, u.insert_id, u.generated, u.device_id, u.user_id, u.event_type,
               u.time, u.event_time, %(received_at)s, u.event
        FROM unnest(%(insert_id)s::text[], %(generated)s::boolean[], %(device_id)s::text[],
                    %(user_id)s::text[], %(event_type)s::text[], %(time)s::bigint[],
                    %(event_time)s::bigint[], %(event)s::text[])
             AS u(insert_id, generated, device_id, user_id, event_type, time, event_time, event)
        ON CONFLICT (project, insert_id) DO NOTHING
        RETURNING project, insert_id, device_id, event
    ), queued AS (
        INSERT INTO outbox (project, insert_id, device_id, event, created_at, next_attempt_at)
        SELECT project, insert_id, device_id, event, %(received_at)s, %(received_at)s
        FROM ins WHERE %(forward)s
        ON CONFLICT (project, insert_id) DO NOTHING
    )
    SELECT count(*) FROM ins
"""

_CLAIM: Final = """
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


class PostgresStore(Storage):
    """The collector's tables in a PostgreSQL database named by a ``postgresql://`` URL."""

    kind = "postgresql"

    def __init__(self, dsn: str, *, pool_size: int = 4, connect_timeout: float = 10.0) -> None:
        self._dsn = dsn
        self._connect_timeout = connect_timeout
        self._pool: queue.LifoQueue[psycopg.Connection[Any]] = queue.LifoQueue()
        self._slots = threading.BoundedSemaphore(pool_size)
        self._all: list[psycopg.Connection[Any]] = []
        self._all_lock = threading.Lock()
        self._closed = False
        self._run("migrating the schema", self._migrate)

    # -- connections ---------------------------------------------------------------------------

    def _connect(self) -> psycopg.Connection[Any]:
        conn = psycopg.connect(
            self._dsn,
            autocommit=True,
            connect_timeout=max(1, int(self._connect_timeout)),
            application_name="telemetry-collector",
        )
        with self._all_lock:
            self._all.append(conn)
        return conn

    @contextmanager
    def _connection(self) -> Iterator[psycopg.Connection[Any]]:
        if self._closed:
            raise StorageUnavailable("the PostgreSQL store is closed")
        self._slots.acquire()
        conn: psycopg.Connection[Any] | None = None
        try:
            try:
                conn = self._pool.get_nowait()
            except queue.Empty:
                conn = self._connect()
            yield conn
        finally:
            if conn is not None:
                if conn.closed or conn.broken:
                    with self._all_lock:
                        if conn in self._all:
                            self._all.remove(conn)
                else:
                    self._pool.put(conn)
            self._slots.release()

    def _run(self, what: str, work: Callable[[psycopg.Connection[Any]], _T]) -> _T:
        """Run ``work(conn)`` in one transaction; map driver errors to StorageUnavailable."""
        try:
            with self._connection() as conn, conn.transaction():
                return work(conn)
        except psycopg.Error as exc:
            # psycopg messages carry no password (and never event data of ours).
            message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise StorageUnavailable(f"{what} failed: {message}") from exc

    def _migrate(self, conn: psycopg.Connection[Any]) -> None:
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
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

    # -- Storage -------------------------------------------------------------------------------

    @property
    def schema_version(self) -> int:
        row = self._run(
            "reading the schema version",
            lambda c: c.execute("SELECT max(version) FROM schema_migrations").fetchone(),
        )
        return int(row[0]) if row and row[0] is not None else 0

    def insert_batch(
        self,
        batch: Batch,
        *,
        received_at_ms: int | None = None,
        skew_ms: int = 0,
        forward: bool = False,
    ) -> InsertResult:
        received_at = now_ms() if received_at_ms is None else received_at_ms
        devices = batch_devices(batch)

        def work(conn: psycopg.Connection[Any]) -> InsertResult:
            refused_devices: set[str] = set()
            if devices:
                conn.execute(_LOCK_DEVICES_SHARED, (_DEVICE_LOCK_NAMESPACE, batch.project, devices))
                refused_devices = {
                    row[0]
                    for row in conn.execute(
                        "SELECT device_id FROM tombstones WHERE project = %s "
                        "AND device_id = ANY(%s::text[])",
                        (batch.project, devices),
                    )
                }
            rows, refused = event_rows(batch, received_at, skew_ms, refused_devices)
            if not rows:
                return InsertResult(inserted=0, duplicates=0, rejected=refused)
            columns = list(zip(*rows, strict=True))
            row = conn.execute(
                _INSERT,
                {
                    "project": batch.project,
                    "received_at": received_at,
                    "insert_id": list(columns[1]),
                    "generated": [bool(v) for v in columns[2]],
                    "device_id": list(columns[3]),
                    "user_id": list(columns[4]),
                    "event_type": list(columns[5]),
                    "time": list(columns[6]),
                    "event_time": list(columns[7]),
                    "event": list(columns[9]),
                    "forward": forward,
                },
            ).fetchone()
            inserted = int(row[0]) if row else 0
            return InsertResult(
                inserted=inserted, duplicates=len(rows) - inserted, rejected=refused
            )

        return self._run("storing events", work)

    def delete_device(
        self, project: str, device_id: str, reason: str, *, now: int | None = None
    ) -> DeletionResult:
        at = now_ms() if now is None else now

        def work(conn: psycopg.Connection[Any]) -> DeletionResult:
            conn.execute(
                "SELECT pg_advisory_xact_lock(%s, hashtext(%s || chr(1) || %s))",
                (_DEVICE_LOCK_NAMESPACE, project, device_id),
            )
            conn.execute(
                "INSERT INTO tombstones (project, device_id, deleted_at, reason) "
                "VALUES (%s, %s, %s, %s) ON CONFLICT (project, device_id) DO NOTHING",
                (project, device_id, at, reason[:MAX_REASON_LENGTH]),
            )
            deleted = conn.execute(
                "DELETE FROM events WHERE project = %s AND device_id = %s", (project, device_id)
            ).rowcount
            forwards = conn.execute(
                "DELETE FROM outbox WHERE project = %s AND device_id = %s", (project, device_id)
            ).rowcount
            return DeletionResult(deleted=deleted, forwards_deleted=forwards)

        return self._run("deleting a device", work)

    def check_writable(self) -> None:
        row = self._run(
            "checking that the database is writable",
            lambda c: c.execute("SELECT pg_is_in_recovery()").fetchone(),
        )
        if row is None or row[0]:
            raise StorageUnavailable("the PostgreSQL server is a read-only standby")

    def _scalar(self, sql: str) -> int:
        row = self._run("reading", lambda c: c.execute(sql).fetchone())
        return int(row[0]) if row else 0

    def count(self) -> int:
        return self._scalar("SELECT count(*) FROM events")

    def outbox_count(self) -> int:
        return self._scalar("SELECT count(*) FROM outbox")

    def claim_forwards(self, *, now: int, lease_ms: int, limit: int) -> list[ForwardRow]:
        rows = self._run(
            "claiming forwards",
            lambda c: c.execute(
                _CLAIM, {"now": now, "until": now + lease_ms, "limit": limit}
            ).fetchall(),
        )
        return sorted((ForwardRow(*row) for row in rows), key=lambda r: r.id)

    def forward_done(self, ids: Sequence[int]) -> None:
        if ids:
            self._run(
                "updating the outbox",
                lambda c: c.execute("DELETE FROM outbox WHERE id = ANY(%s)", (list(ids),)),
            )

    def forward_retry(self, ids: Sequence[int], next_attempt_at: int) -> None:
        if ids:
            self._run(
                "updating the outbox",
                lambda c: c.execute(
                    "UPDATE outbox SET attempts = attempts + 1, next_attempt_at = %s "
                    "WHERE id = ANY(%s)",
                    (next_attempt_at, list(ids)),
                ),
            )

    def forward_expire(self, created_before: int) -> int:
        return self._run(
            "expiring forwards",
            lambda c: (
                c.execute("DELETE FROM outbox WHERE created_at < %s", (created_before,)).rowcount
            ),
        )

    def insert_link_hits(self, hits: Iterable[LinkHit]) -> None:
        rows = [
            (
                h.program_id,
                h.kind,
                h.lead,
                h.affiliate,
                h.url,
                h.client_ip,
                h.user_agent,
                *h.dimensions,
                h.is_sponsored,
                h.created_at,
            )
            for h in hits
        ]
        marks = ", ".join(["%s"] * 14)
        sql = (
            "INSERT INTO link_hits (program_id, kind, lead, affiliate, url, client_ip, "
            "user_agent, dimension1, dimension2, dimension3, dimension4, dimension5, "
            f"is_sponsored, created_at) VALUES ({marks})"
        )
        self._run(
            "storing link hits",
            lambda c: c.cursor().executemany(sql, rows),
        )

    def close(self) -> None:
        self._closed = True
        with self._all_lock:
            connections, self._all = self._all, []
        for conn in connections:
            try:
                conn.close()
            except psycopg.Error:
                logger.warning("closing a PostgreSQL connection failed", exc_info=True)
