"""Event storage: the :class:`Storage` interface and its SQLite implementation (the default).

Every backend keeps the same tables, created by versioned migrations:

* ``events``: one row per stored event, ``UNIQUE (project, insert_id)`` (the dedup key);
  ``time`` is the client's raw event time, ``event_time`` the clock-skew corrected one;
* ``tombstones``: one row per honoured deletion request ``(project, device_id, deleted_at,
  reason)``; later events of that device are refused (counted as rejected);
* ``outbox``: events waiting to be forwarded to Amplitude, filled in the same transaction as the
  insert, deleted once forwarded (or after 7 days);
* ``link_hits``: rows of the signed link tracker (``GET /r/collect``), IPs masked.

A method that returns has committed; a failing one has rolled back and raises
:class:`StorageUnavailable`. :func:`open_storage` picks the backend from the ``--database``
argument (a ``postgresql://`` URL, else a SQLite file path).
"""

from __future__ import annotations

import abc
import logging
import sqlite3
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from telemetry.collector._sqlite import enter_wal
from telemetry.collector._validation import Batch

__all__ = [
    "SCHEMA_VERSION",
    "DeletionResult",
    "EventStore",
    "ForwardRow",
    "InsertResult",
    "LinkHit",
    "Storage",
    "StorageUnavailable",
    "is_postgres_url",
    "open_storage",
]

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
)

#: The schema version this code writes.
SCHEMA_VERSION: Final = len(MIGRATIONS)

#: Longest ``reason`` kept from a deletion request.
MAX_REASON_LENGTH: Final = 200

_INSERT: Final = """
    INSERT OR IGNORE INTO events
        (project, insert_id, insert_id_generated, device_id, user_id, event_type, time,
         event_time, received_at, event)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
"""

_LINK_COLUMNS: Final = (
    "program_id, kind, lead, affiliate, url, client_ip, user_agent, dimension1, dimension2, "
    "dimension3, dimension4, dimension5, is_sponsored, created_at"
)


class StorageUnavailable(Exception):
    """The database could not be opened, read or written; nothing was committed."""


@dataclass(frozen=True, slots=True)
class InsertResult:
    """Outcome of storing one batch."""

    #: Rows newly written.
    inserted: int
    #: Events already stored earlier (same ``project`` + ``insert_id``), or repeated in the batch.
    duplicates: int
    #: Events refused because their device asked for deletion (a tombstone exists).
    rejected: int = 0


@dataclass(frozen=True, slots=True)
class DeletionResult:
    """Outcome of a deletion request."""

    deleted: int
    forwards_deleted: int


@dataclass(frozen=True, slots=True)
class ForwardRow:
    """One outbox row claimed by the forwarder."""

    id: int
    project: str
    insert_id: str
    device_id: str | None
    event: str
    created_at: int
    attempts: int


@dataclass(frozen=True, slots=True)
class LinkHit:
    """One row of the signed link tracker (``client_ip`` already masked)."""

    program_id: str
    kind: str
    lead: bool
    affiliate: str
    url: str
    client_ip: str
    user_agent: str
    dimensions: tuple[str, str, str, str, str]
    is_sponsored: bool
    created_at: int

    def as_row(self) -> tuple[object, ...]:
        return (
            self.program_id,
            self.kind,
            int(self.lead),
            self.affiliate,
            self.url,
            self.client_ip,
            self.user_agent,
            *self.dimensions,
            int(self.is_sponsored),
            self.created_at,
        )


def now_ms() -> int:
    """Wall-clock time in ms since the epoch."""
    return int(time.time() * 1000)


def event_rows(
    batch: Batch, received_at: int, skew_ms: int, refused_devices: set[str]
) -> tuple[list[tuple[Any, ...]], int]:
    """The ``events`` rows of ``batch`` (column order of the inserts) and how many were refused."""
    rows: list[tuple[Any, ...]] = []
    refused = 0
    for event in batch.events:
        if event.device_id is not None and event.device_id in refused_devices:
            refused += 1
            continue
        corrected = None if event.time is None else max(0, event.time + skew_ms)
        rows.append(
            (
                batch.project,
                event.insert_id,
                event.insert_id_generated,
                event.device_id,
                event.user_id,
                event.event_type,
                event.time,
                corrected,
                received_at,
                event.event_json,
            )
        )
    return rows, refused


def batch_devices(batch: Batch) -> list[str]:
    """The distinct device ids of ``batch``, sorted."""
    return sorted({e.device_id for e in batch.events if e.device_id is not None})


class Storage(abc.ABC):
    """What the collector needs from a database; see the module docstring for the tables."""

    #: ``"sqlite"`` or ``"postgresql"``.
    kind: str

    @property
    @abc.abstractmethod
    def schema_version(self) -> int:
        """The migration version of the open database."""

    @abc.abstractmethod
    def insert_batch(
        self,
        batch: Batch,
        *,
        received_at_ms: int | None = None,
        skew_ms: int = 0,
        forward: bool = False,
    ) -> InsertResult:
        """Store ``batch`` in one transaction, ignoring already-stored events and refusing those
        of tombstoned devices; new rows also go to the outbox when ``forward``. ``skew_ms`` is
        added to each event's ``time`` to give ``event_time``."""

    @abc.abstractmethod
    def delete_device(
        self, project: str, device_id: str, reason: str, *, now: int | None = None
    ) -> DeletionResult:
        """Delete every event and pending forward of the device and keep a tombstone."""

    @abc.abstractmethod
    def check_writable(self) -> None:
        """Raise :class:`StorageUnavailable` unless a write can be made now."""

    @abc.abstractmethod
    def count(self) -> int:
        """Number of stored events."""

    @abc.abstractmethod
    def outbox_count(self) -> int:
        """Number of events waiting to be forwarded."""

    @abc.abstractmethod
    def claim_forwards(self, *, now: int, lease_ms: int, limit: int) -> list[ForwardRow]:
        """Lease up to ``limit`` due outbox rows of one project (oldest first) for ``lease_ms``."""

    @abc.abstractmethod
    def forward_done(self, ids: Sequence[int]) -> None:
        """Delete forwarded (or dropped) outbox rows."""

    @abc.abstractmethod
    def forward_retry(self, ids: Sequence[int], next_attempt_at: int) -> None:
        """Count one more attempt for the rows and make them due at ``next_attempt_at``."""

    @abc.abstractmethod
    def forward_expire(self, created_before: int) -> int:
        """Delete outbox rows created before ``created_before``; return how many."""

    @abc.abstractmethod
    def insert_link_hits(self, hits: Iterable[LinkHit]) -> None:
        """Store rows of the signed link tracker."""

    @abc.abstractmethod
    def close(self) -> None:
        """Release the connection(s) (idempotent)."""


class EventStore(Storage):
    """The collector's tables in one SQLite file (WAL journal, ``synchronous=FULL``).

    Thread-safe: one connection, every use serialised by a lock, so it can be called from worker
    threads (the ASGI app calls it through a thread pool, never on the event loop). Writers take
    ``BEGIN IMMEDIATE``, so transactions of several processes on one file are serialised too.
    """

    kind = "sqlite"

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
        mode = enter_wal(conn, timeout=busy_timeout_ms / 1000)
        if mode != "wal":
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

    def _transaction(self, what: str, work: Any) -> Any:
        """Run ``work(conn)`` inside ``BEGIN IMMEDIATE`` ... ``COMMIT`` under the lock."""
        with self._lock:
            conn = self._conn
            try:
                conn.execute("BEGIN IMMEDIATE")
                result = work(conn)
                conn.execute("COMMIT")
            except (sqlite3.Error, OSError) as exc:
                self._rollback()
                raise StorageUnavailable(f"{what} failed: {exc}") from exc
            except BaseException:
                self._rollback()
                raise
            return result

    def _read(self, sql: str, params: Sequence[object] = ()) -> list[Any]:
        with self._lock:
            try:
                return list(self._conn.execute(sql, params).fetchall())
            except (sqlite3.Error, OSError) as exc:
                raise StorageUnavailable(f"reading failed: {exc}") from exc

    def insert_batch(
        self,
        batch: Batch,
        *,
        received_at_ms: int | None = None,
        skew_ms: int = 0,
        forward: bool = False,
    ) -> InsertResult:
        """Store every event of ``batch`` in one transaction, ignoring already-stored ones.

        Returns only after ``COMMIT`` (durable with ``synchronous=FULL``).
        """
        received_at = now_ms() if received_at_ms is None else received_at_ms
        devices = batch_devices(batch)

        def work(conn: sqlite3.Connection) -> InsertResult:
            refused_devices: set[str] = set()
            if devices:
                marks = ",".join("?" * len(devices))
                refused_devices = {
                    row[0]
                    for row in conn.execute(
                        f"SELECT device_id FROM tombstones WHERE project = ? "
                        f"AND device_id IN ({marks})",
                        (batch.project, *devices),
                    )
                }
            rows, refused = event_rows(batch, received_at, skew_ms, refused_devices)
            last_id = conn.execute("SELECT coalesce(max(id), 0) FROM events").fetchone()[0]
            before = conn.total_changes
            conn.executemany(_INSERT, rows)
            inserted = conn.total_changes - before
            if forward and inserted:
                # Writers are serialised (BEGIN IMMEDIATE), so the rows above ``last_id`` are
                # exactly the ones this batch added.
                conn.execute(
                    "INSERT OR IGNORE INTO outbox (project, insert_id, device_id, event, "
                    "created_at, next_attempt_at) SELECT project, insert_id, device_id, event, "
                    "?, ? FROM events WHERE id > ?",
                    (received_at, received_at, last_id),
                )
            return InsertResult(
                inserted=inserted, duplicates=len(rows) - inserted, rejected=refused
            )

        result: InsertResult = self._transaction("storing events", work)
        return result

    def delete_device(
        self, project: str, device_id: str, reason: str, *, now: int | None = None
    ) -> DeletionResult:
        at = now_ms() if now is None else now

        def work(conn: sqlite3.Connection) -> DeletionResult:
            conn.execute(
                "INSERT OR IGNORE INTO tombstones (project, device_id, deleted_at, reason) "
                "VALUES (?, ?, ?, ?)",
                (project, device_id, at, reason[:MAX_REASON_LENGTH]),
            )
            deleted = conn.execute(
                "DELETE FROM events WHERE project = ? AND device_id = ?", (project, device_id)
            ).rowcount
            forwards = conn.execute(
                "DELETE FROM outbox WHERE project = ? AND device_id = ?", (project, device_id)
            ).rowcount
            return DeletionResult(deleted=deleted, forwards_deleted=forwards)

        result: DeletionResult = self._transaction("deleting a device", work)
        return result

    def check_writable(self) -> None:
        """Raise :class:`StorageUnavailable` unless a write transaction can be started now."""
        self._transaction("checking that the database is writable", lambda conn: None)

    def count(self) -> int:
        """Number of stored events."""
        return int(self._read("SELECT count(*) FROM events")[0][0])

    def outbox_count(self) -> int:
        return int(self._read("SELECT count(*) FROM outbox")[0][0])

    def claim_forwards(self, *, now: int, lease_ms: int, limit: int) -> list[ForwardRow]:
        def work(conn: sqlite3.Connection) -> list[ForwardRow]:
            first = conn.execute(
                "SELECT project FROM outbox WHERE next_attempt_at <= ? "
                "ORDER BY next_attempt_at, id LIMIT 1",
                (now,),
            ).fetchone()
            if first is None:
                return []
            claimed = conn.execute(
                "UPDATE outbox SET next_attempt_at = ? WHERE id IN (SELECT id FROM outbox "
                "WHERE project = ? AND next_attempt_at <= ? ORDER BY id LIMIT ?) "
                "RETURNING id, project, insert_id, device_id, event, created_at, attempts",
                (now + lease_ms, first[0], now, limit),
            ).fetchall()
            return sorted((ForwardRow(*row) for row in claimed), key=lambda r: r.id)

        result: list[ForwardRow] = self._transaction("claiming forwards", work)
        return result

    def _update_ids(self, sql: str, params: Sequence[object], ids: Sequence[int]) -> int:
        if not ids:
            return 0

        def work(conn: sqlite3.Connection) -> int:
            total = 0
            for start in range(0, len(ids), 500):
                chunk = list(ids[start : start + 500])
                marks = ",".join("?" * len(chunk))
                total += conn.execute(sql.format(marks=marks), (*params, *chunk)).rowcount
            return total

        count: int = self._transaction("updating the outbox", work)
        return count

    def forward_done(self, ids: Sequence[int]) -> None:
        self._update_ids("DELETE FROM outbox WHERE id IN ({marks})", (), ids)

    def forward_retry(self, ids: Sequence[int], next_attempt_at: int) -> None:
        self._update_ids(
            "UPDATE outbox SET attempts = attempts + 1, next_attempt_at = ? WHERE id IN ({marks})",
            (next_attempt_at,),
            ids,
        )

    def forward_expire(self, created_before: int) -> int:
        expired: int = self._transaction(
            "expiring forwards",
            lambda conn: (
                conn.execute("DELETE FROM outbox WHERE created_at < ?", (created_before,)).rowcount
            ),
        )
        return expired

    def insert_link_hits(self, hits: Iterable[LinkHit]) -> None:
        rows = [hit.as_row() for hit in hits]
        marks = ",".join("?" * 14)
        self._transaction(
            "storing link hits",
            lambda conn: conn.executemany(
                f"INSERT INTO link_hits ({_LINK_COLUMNS}) VALUES ({marks})", rows
            ),
        )

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


def is_postgres_url(database: str | Path) -> bool:
    """Whether ``database`` names a PostgreSQL server rather than a SQLite file."""
    text = str(database)
    return text.startswith(("postgresql://", "postgres://"))


def open_storage(database: str | Path | Storage) -> Storage:
    """Open (and migrate) the storage that ``database`` names: a ``postgresql://`` URL or a
    SQLite file path. An already open :class:`Storage` is returned as is."""
    if isinstance(database, Storage):
        return database
    if is_postgres_url(database):
        from telemetry.collector._postgres import PostgresStore

        store: Storage = PostgresStore(str(database))
        return store
    return EventStore(database)
