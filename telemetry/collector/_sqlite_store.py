"""The SQLite backend (the default): :class:`EventStore`, the collector's tables in one file."""

from __future__ import annotations

import dataclasses
import functools
import logging
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, Final

from telemetry.collector._reports import Report, ReportGroup
from telemetry.collector._sqlite_schema import (
    DAY_MS,
    EVENT_DAY_SQL,
    EVENT_VALUES,
    INSERT_EVENTS,
    LINK_COLUMNS,
    migrate,
)
from telemetry.collector._sqlite_wal import enter_wal
from telemetry.collector._sqlite_writer_turn import WriterTurn
from telemetry.collector._storage import (
    MAX_REASON_LENGTH,
    MAX_TOMBSTONES,
    REPORT_COLUMNS,
    BatchToStore,
    DeletionResult,
    ForwardRow,
    InsertResult,
    LinkHit,
    ReportForward,
    Storage,
    StorageUnavailable,
    batch_devices,
    event_rows,
    now_ms,
    proof_matches,
    purge_statements,
    refused_devices,
    report_group_queries,
    report_groups,
    report_row,
)
from telemetry.collector._validation import Batch

__all__ = ["EventStore"]

logger = logging.getLogger("telemetry.collector")

#: SQLite's primary result codes of a write that will keep failing until someone acts (disk
#: full, read-only file, I/O error, file gone or damaged), unlike a lock held by another writer.
_LASTING_WRITE_ERRORS: Final = frozenset(
    {
        sqlite3.SQLITE_READONLY,
        sqlite3.SQLITE_IOERR,
        sqlite3.SQLITE_CORRUPT,
        sqlite3.SQLITE_FULL,
        sqlite3.SQLITE_CANTOPEN,
        sqlite3.SQLITE_NOTADB,
    }
)

#: After a lasting write failure, how long the health check answers "not writable" unless a
#: write succeeds meanwhile (then its header probe decides again, so traffic comes back to try).
_FAILURE_HOLD_SECONDS: Final = 30.0

#: Row ids per ``IN (...)`` statement on the outboxes.
_IDS_PER_STATEMENT: Final = 500
#: Keys claimed per statement (3 parameters each, far below SQLite's 32,766).
_KEYS_PER_CLAIM: Final = 1000
#: Events stored per statement (10 parameters each). Few statements, not one per row: each step
#: gives the GIL up and must get it back from the threads decoding other batches (up to the
#: switch interval, 5 ms, each time), which made executemany's 500 steps the ingest's bottleneck.
_EVENTS_PER_INSERT: Final = 1000


def _id_chunks(ids: Sequence[int]) -> Iterator[tuple[list[int], str]]:
    """``ids`` in chunks of at most :data:`_IDS_PER_STATEMENT`, each with its ``?`` marks."""
    for start in range(0, len(ids), _IDS_PER_STATEMENT):
        chunk = list(ids[start : start + _IDS_PER_STATEMENT])
        yield chunk, ",".join("?" * len(chunk))


@functools.cache
def _insert_sql(count: int) -> str:
    """Stores ``count`` events in one statement."""
    return INSERT_EVENTS + ", ".join([EVENT_VALUES] * count)


@functools.cache
def _claim_sql(count: int) -> str:
    """Claims ``count`` dedup keys of one project in one statement, returning the keys taken
    (a key already there is ignored, so it is not returned)."""
    values = ", ".join(["(?1, ?, ?)"] * count)
    return (
        f"INSERT OR IGNORE INTO event_keys (project, day, insert_id) VALUES {values} "
        "RETURNING day, insert_id"
    )


@dataclasses.dataclass(slots=True)
class _Prepared:
    """One batch's statement parameters, built before the write transaction so that the time
    the write turn is held (by one process of several) goes to SQLite, not to Python."""

    item: BatchToStore
    #: Every event's ``events`` row (``event_rows`` order), none refused.
    rows: list[tuple[Any, ...]]
    #: Each row's dedup key ``(day, insert_id)``.
    keys: list[tuple[int, str]]
    #: The parameters of each claiming statement (project, then the keys of up to
    #: ``_KEYS_PER_CLAIM`` rows).
    claims: list[list[Any]]
    #: Every row's values in one list: the insert's parameters when every event is new.
    flat: list[Any]


def _prepare(item: BatchToStore, refused_by: set[str] | None = None) -> tuple[_Prepared, int]:
    """``item``'s parameters (the events of ``refused_by`` devices left out) and how many
    events were left out."""
    rows, refused = event_rows(item.batch, item.received_at_ms, item.skew_ms, refused_by or set())
    keys = [(-1 if row[6] is None else row[6] // DAY_MS, row[1]) for row in rows]
    claims: list[list[Any]] = []
    for start in range(0, len(keys), _KEYS_PER_CLAIM):
        params: list[Any] = [item.batch.project]
        for key in keys[start : start + _KEYS_PER_CLAIM]:
            params += key
        claims.append(params)
    flat = [value for row in rows for value in row]
    return _Prepared(item, rows, keys, claims, flat), refused


def _insert_events(conn: sqlite3.Connection, rows: list[tuple[Any, ...]], flat: list[Any]) -> None:
    """Store ``rows`` (``event_rows`` order; ``flat``: their values in one list) with a few
    statements."""
    width = len(rows[0]) if rows else 0
    for start in range(0, len(rows), _EVENTS_PER_INSERT):
        count = min(_EVENTS_PER_INSERT, len(rows) - start)
        conn.execute(_insert_sql(count), flat[start * width : (start + count) * width])


def _insert_batch(conn: sqlite3.Connection, prepared: _Prepared) -> InsertResult:
    """Store one prepared batch inside the caller's write transaction (see
    ``Storage.insert_batch``)."""
    item = prepared.item
    batch, received_at = item.batch, item.received_at_ms
    devices = batch_devices(batch)
    tombstones: dict[str, str | None] = {}
    if devices:
        marks = ",".join("?" * len(devices))
        tombstones = dict(
            conn.execute(
                f"SELECT device_id, proof_hash FROM tombstones WHERE project = ? "
                f"AND device_id IN ({marks})",
                (batch.project, *devices),
            ).fetchall()
        )
    refused = 0
    refused_by = refused_devices(tombstones, batch.device_proofs)
    if refused_by:  # rare: deleted devices' events are left out
        prepared, refused = _prepare(item, refused_by)
    proofs = [
        (batch.project, device, digest, received_at)
        for device, digest in batch.device_proofs.items()
        if device not in tombstones
    ]
    if proofs:
        conn.executemany(
            "INSERT OR IGNORE INTO device_proofs (project, device_id, proof_hash, first_seen) "
            "VALUES (?, ?, ?, ?)",
            proofs,
        )
    new_rows = _claim_keys(conn, prepared)
    rows = prepared.rows
    flat = prepared.flat if len(new_rows) == len(rows) else [v for r in new_rows for v in r]
    if item.forward and new_rows:
        # Writers are serialised (BEGIN IMMEDIATE), so the rows above ``last_id`` are exactly
        # the ones this batch adds.
        last_id = conn.execute("SELECT coalesce(max(id), 0) FROM events").fetchone()[0]
        _insert_events(conn, new_rows, flat)
        conn.execute(
            "INSERT OR IGNORE INTO outbox (project, insert_id, device_id, event, created_at, "
            "next_attempt_at) SELECT project, insert_id, device_id, event, ?, ? FROM events "
            "WHERE id > ?",
            (received_at, received_at, last_id),
        )
    else:
        _insert_events(conn, new_rows, flat)
    inserted = len(new_rows)
    return InsertResult(inserted=inserted, duplicates=len(rows) - inserted, rejected=refused)


def _claim_keys(conn: sqlite3.Connection, prepared: _Prepared) -> list[tuple[Any, ...]]:
    """The rows whose dedup key this call claimed: the events not stored yet; an event
    repeated within the batch counts once, the first time."""
    claimed: set[tuple[int, str]] = set()
    for params in prepared.claims:
        claimed.update(conn.execute(_claim_sql((len(params) - 1) // 2), params).fetchall())
    if len(claimed) == len(prepared.rows):
        return prepared.rows  # every key was new, so every row is (no repeat within the batch)
    new_rows: list[tuple[Any, ...]] = []
    for row, key in zip(prepared.rows, prepared.keys, strict=True):
        if key in claimed:
            claimed.discard(key)
            new_rows.append(row)
    return new_rows


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
        #: Why the last write failed lastingly (``_LASTING_WRITE_ERRORS``) and when
        #: (``time.monotonic()``), until a write succeeds.
        self._write_failure: tuple[str, float] | None = None
        try:
            self._conn = sqlite3.connect(
                self.path, isolation_level=None, check_same_thread=False, timeout=0
            )
        except (sqlite3.Error, OSError) as exc:
            raise StorageUnavailable(f"cannot open database {self.path}: {exc}") from exc
        self._turn = WriterTurn(self.path, busy_timeout_ms / 1000, enabled=False)
        try:
            self._configure(busy_timeout_ms)
            # Only for a database in WAL mode on disk: no stray lock file for one that fails.
            self._turn = WriterTurn(self.path, busy_timeout_ms / 1000)
            self._migrate()
        except (sqlite3.Error, OSError) as exc:
            self._conn.close()
            self._turn.close()
            raise StorageUnavailable(f"cannot prepare database {self.path}: {exc}") from exc
        except StorageUnavailable:
            self._conn.close()
            self._turn.close()
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
            migrate(conn, self.path)
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
        with self._lock, self._turn.taken():
            conn = self._conn
            try:
                conn.execute("BEGIN IMMEDIATE")
                result = work(conn)
                conn.execute("COMMIT")
            except (sqlite3.Error, OSError) as exc:
                self._note_failure(exc)
                self._rollback()
                raise StorageUnavailable(f"{what} failed: {exc}") from exc
            except BaseException:
                self._rollback()
                raise
            self._write_failure = None
            return result

    def _note_failure(self, exc: BaseException) -> None:
        code = getattr(exc, "sqlite_errorcode", None)
        if isinstance(exc, OSError) or (code is not None and code & 0xFF in _LASTING_WRITE_ERRORS):
            self._write_failure = (str(exc), time.monotonic())

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
        return self.insert_batches([BatchToStore(batch, received_at, skew_ms, forward)])[0]

    def insert_batches(self, batches: Sequence[BatchToStore]) -> list[InsertResult]:
        """Store the batches in one transaction; returns only after ``COMMIT``."""

        prepared = [_prepare(item)[0] for item in batches]

        def work(conn: sqlite3.Connection) -> list[InsertResult]:
            return [_insert_batch(conn, one) for one in prepared]

        results: list[InsertResult] = self._transaction("storing events", work)
        return results

    def delete_device(
        self,
        project: str,
        device_id: str,
        reason: str,
        *,
        proof_hash: str | None = None,
        now: int | None = None,
        max_tombstones: int = MAX_TOMBSTONES,
    ) -> DeletionResult:
        at = now_ms() if now is None else now
        key = (project, device_id)

        def work(conn: sqlite3.Connection) -> DeletionResult:
            tombstone = conn.execute(
                "SELECT proof_hash FROM tombstones WHERE project = ? AND device_id = ?", key
            ).fetchone()
            known = conn.execute(
                "SELECT proof_hash FROM device_proofs WHERE project = ? AND device_id = ?", key
            ).fetchone()
            if not proof_matches(tombstone[0] if tombstone else known and known[0], proof_hash):
                return DeletionResult(deleted=0, forwards_deleted=0, verified=False)
            conn.execute(
                "INSERT INTO tombstones (project, device_id, deleted_at, reason, proof_hash) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT (project, device_id) DO UPDATE SET "
                "proof_hash = coalesce(tombstones.proof_hash, excluded.proof_hash)",
                (*key, at, reason[:MAX_REASON_LENGTH], proof_hash),
            )
            conn.execute(
                f"DELETE FROM event_keys WHERE (project, day, insert_id) IN (SELECT project, "
                f"{EVENT_DAY_SQL}, insert_id FROM events WHERE project = ? AND device_id = ?)",
                key,
            )
            deleted = conn.execute(
                "DELETE FROM events WHERE project = ? AND device_id = ?", key
            ).rowcount
            forwards = conn.execute(
                "DELETE FROM outbox WHERE project = ? AND device_id = ?", key
            ).rowcount
            conn.execute("DELETE FROM device_proofs WHERE project = ? AND device_id = ?", key)
            reports = conn.execute(
                "DELETE FROM reports WHERE project = ? AND device_id = ?", key
            ).rowcount
            conn.execute("DELETE FROM report_outbox WHERE project = ? AND device_id = ?", key)
            conn.execute(
                "DELETE FROM tombstones WHERE rowid IN (SELECT rowid FROM tombstones "
                "WHERE project = ? ORDER BY deleted_at DESC, rowid DESC LIMIT -1 OFFSET ?)",
                (project, max(1, max_tombstones)),
            )
            return DeletionResult(
                deleted=deleted, forwards_deleted=forwards, reports_deleted=reports
            )

        result: DeletionResult = self._transaction("deleting a device", work)
        return result

    def check_writable(self) -> None:
        """Raise :class:`StorageUnavailable` unless the database takes a write now.

        The probe rewrites the file's header (the schema version, unchanged) and rolls it back,
        which a read-only file refuses. A full disk only shows when a real write needs room, so
        after a write failed lastingly (disk full, read-only, I/O error) the answer stays "not
        writable" until a write succeeds, for at most :data:`_FAILURE_HOLD_SECONDS`.
        """
        failure = self._write_failure
        if failure is not None and time.monotonic() - failure[1] < _FAILURE_HOLD_SECONDS:
            raise StorageUnavailable(f"the last write failed: {failure[0]}")
        with self._lock, self._turn.taken():
            conn = self._conn
            try:
                conn.execute("BEGIN IMMEDIATE")
                version = int(conn.execute("PRAGMA user_version").fetchone()[0])
                conn.execute(f"PRAGMA user_version = {version}")
            except (sqlite3.Error, OSError) as exc:
                self._note_failure(exc)
                raise StorageUnavailable(
                    f"checking that the database is writable failed: {exc}"
                ) from exc
            finally:
                self._rollback()

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

    def insert_report(
        self, report: Report, *, received_at_ms: int | None = None, forward: bool = False
    ) -> InsertResult:
        received_at = now_ms() if received_at_ms is None else received_at_ms

        def work(conn: sqlite3.Connection) -> InsertResult:
            if report.device_id is not None:
                tombstone = conn.execute(
                    "SELECT 1 FROM tombstones WHERE project = ? AND device_id = ?",
                    (report.project, report.device_id),
                ).fetchone()
                if tombstone is not None:
                    return InsertResult(inserted=0, duplicates=0, rejected=1)
            marks = ",".join("?" * 16)
            inserted = conn.execute(
                f"INSERT OR IGNORE INTO reports ({REPORT_COLUMNS}) VALUES ({marks})",
                report_row(report, received_at),
            ).rowcount
            if inserted and forward:
                conn.execute(
                    "INSERT OR IGNORE INTO report_outbox (project, event_id, device_id, payload, "
                    "created_at, next_attempt_at) VALUES (?, ?, ?, ?, ?, ?)",
                    (
                        report.project,
                        report.event_id,
                        report.device_id,
                        report.payload,
                        received_at,
                        received_at,
                    ),
                )
            return InsertResult(inserted=inserted, duplicates=1 - inserted)

        result: InsertResult = self._transaction("storing a report", work)
        return result

    def report_groups(self, project: str | None = None) -> list[ReportGroup]:
        queries, params = report_group_queries("?", project)
        aggregates, lasts, releases = (self._read(sql, params) for sql in queries)
        return report_groups(aggregates, lasts, releases)

    def report_count(self) -> int:
        return int(self._read("SELECT count(*) FROM reports")[0][0])

    def claim_report_forwards(self, *, now: int, lease_ms: int, limit: int) -> list[ReportForward]:
        def work(conn: sqlite3.Connection) -> list[ReportForward]:
            claimed = conn.execute(
                "UPDATE report_outbox SET next_attempt_at = ? WHERE id IN (SELECT id FROM "
                "report_outbox WHERE next_attempt_at <= ? ORDER BY next_attempt_at, id LIMIT ?) "
                "RETURNING id, project, event_id, payload, created_at, attempts",
                (now + lease_ms, now, limit),
            ).fetchall()
            return sorted((ReportForward(*row) for row in claimed), key=lambda r: r.id)

        result: list[ReportForward] = self._transaction("claiming report forwards", work)
        return result

    def report_forward_done(self, ids: Sequence[int]) -> None:
        self._update_ids("DELETE FROM report_outbox WHERE id IN ({marks})", (), ids)

    def report_forward_retry(self, ids: Sequence[int], next_attempt_at: int) -> None:
        self._update_ids(
            "UPDATE report_outbox SET attempts = attempts + 1, next_attempt_at = ? "
            "WHERE id IN ({marks})",
            (next_attempt_at,),
            ids,
        )

    def report_forward_expire(self, created_before: int) -> int:
        expired: int = self._transaction(
            "expiring report forwards",
            lambda conn: (
                conn.execute(
                    "DELETE FROM report_outbox WHERE created_at < ?", (created_before,)
                ).rowcount
            ),
        )
        return expired

    def _update_ids(self, sql: str, params: Sequence[object], ids: Sequence[int]) -> int:
        if not ids:
            return 0

        def work(conn: sqlite3.Connection) -> int:
            total = 0
            for chunk, marks in _id_chunks(ids):
                total += conn.execute(sql.format(marks=marks), (*params, *chunk)).rowcount
            return total

        count: int = self._transaction("updating the outbox", work)
        return count

    def _pending(self, table: str, ids: Sequence[int]) -> set[int]:
        found: set[int] = set()
        for chunk, marks in _id_chunks(ids):
            rows = self._read(f"SELECT id FROM {table} WHERE id IN ({marks})", chunk)
            found.update(int(row[0]) for row in rows)
        return found

    def forward_pending(self, ids: Sequence[int]) -> set[int]:
        return self._pending("outbox", ids)

    def report_forward_pending(self, ids: Sequence[int]) -> set[int]:
        return self._pending("report_outbox", ids)

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

    def purge_expired(
        self, *, cutoff_ms: int, project: str | None, excluded: Sequence[str] = (), limit: int
    ) -> int:
        def work(conn: sqlite3.Connection) -> int:
            statements = purge_statements("?", "rowid", project, excluded)
            total = self._purge_events(conn, cutoff_ms, statements[0], limit)
            for sql, scope in statements[1:]:
                if total >= limit:
                    break
                total += conn.execute(sql, (cutoff_ms, *scope, limit - total)).rowcount
            return total

        purged: int = self._transaction("deleting expired rows", work)
        return purged

    @staticmethod
    def _purge_events(
        conn: sqlite3.Connection, cutoff_ms: int, statement: tuple[str, tuple[Any, ...]], limit: int
    ) -> int:
        """Delete up to ``limit`` expired events (``statement``: the generic one, whose scope
        is reused) and their dedup keys."""
        sql, scope = statement
        where = sql[sql.index("WHERE received_at") : sql.rindex(")")]
        conn.execute("CREATE TEMP TABLE IF NOT EXISTS purged (id INTEGER PRIMARY KEY)")
        conn.execute("DELETE FROM temp.purged")
        conn.execute(
            f"INSERT INTO temp.purged SELECT id FROM events {where}", (cutoff_ms, *scope, limit)
        )
        conn.execute(
            f"DELETE FROM event_keys WHERE (project, day, insert_id) IN (SELECT project, "
            f"{EVENT_DAY_SQL}, insert_id FROM events WHERE id IN temp.purged)"
        )
        deleted: int = conn.execute("DELETE FROM events WHERE id IN temp.purged").rowcount
        return deleted

    def insert_link_hits(self, hits: Iterable[LinkHit]) -> None:
        rows = [hit.as_row() for hit in hits]
        marks = ",".join("?" * 14)
        self._transaction(
            "storing link hits",
            lambda conn: conn.executemany(
                f"INSERT INTO link_hits ({LINK_COLUMNS}) VALUES ({marks})", rows
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
            self._turn.close()
