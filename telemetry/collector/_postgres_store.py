"""The PostgreSQL backend (psycopg 3): :class:`PostgresStore`, for deployments where several
collector processes on several hosts share one database.

Same tables as the SQLite store (see ``_storage``). Deduplication is the ``UNIQUE (project,
insert_id)`` constraint with ``INSERT ... ON CONFLICT DO NOTHING``, so two processes receiving the
same batch at the same moment store it once: the second insert waits for the first one's commit
on the unique index, then skips. Inserts take a *shared* advisory lock per (project, device id)
and deletion requests an *exclusive* one, so an event can never slip in between a deletion's
tombstone check and its delete. The SQL and migrations live in ``_postgres_schema``, the
connections in ``_postgres_pool``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import psycopg

from telemetry.collector._postgres_pool import ConnectionPool
from telemetry.collector._postgres_schema import (
    CLAIM_FORWARDS,
    CLAIM_REPORT_FORWARDS,
    DEVICE_LOCK_NAMESPACE,
    INSERT_EVENTS,
    INSERT_LINK_HIT,
    INSERT_PROOFS,
    INSERT_TOMBSTONE,
    LOCK_DEVICE_EXCLUSIVE,
    LOCK_DEVICES_SHARED,
    TRIM_TOMBSTONES,
    migrate,
)
from telemetry.collector._reports import Report, ReportGroup
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

__all__ = ["PostgresStore"]


class PostgresStore(Storage):
    """The collector's tables in a PostgreSQL database named by a ``postgresql://`` URL."""

    kind = "postgresql"

    def __init__(self, dsn: str, *, pool_size: int = 4, connect_timeout: float = 10.0) -> None:
        self._pool = ConnectionPool(dsn, size=pool_size, connect_timeout=connect_timeout)
        self._pool.run("migrating the schema", migrate)

    @property
    def schema_version(self) -> int:
        row = self._pool.run(
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
        return self.insert_batches([BatchToStore(batch, received_at, skew_ms, forward)])[0]

    def insert_batches(self, batches: Sequence[BatchToStore]) -> list[InsertResult]:
        def work(conn: psycopg.Connection[Any]) -> list[InsertResult]:
            return [_insert_batch(conn, item) for item in batches]

        return self._pool.run("storing events", work)

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

        def work(conn: psycopg.Connection[Any]) -> DeletionResult:
            conn.execute(LOCK_DEVICE_EXCLUSIVE, (DEVICE_LOCK_NAMESPACE, *key))
            known = conn.execute(
                "SELECT 1, proof_hash FROM tombstones WHERE project = %s AND device_id = %s "
                "UNION ALL SELECT 2, proof_hash FROM device_proofs WHERE project = %s "
                "AND device_id = %s ORDER BY 1 LIMIT 1",
                (*key, *key),
            ).fetchone()  # the tombstone's, when there is one
            if not proof_matches(known[1] if known else None, proof_hash):
                return DeletionResult(deleted=0, forwards_deleted=0, verified=False)
            conn.execute(INSERT_TOMBSTONE, (*key, at, reason[:MAX_REASON_LENGTH], proof_hash))
            deleted = conn.execute(
                "DELETE FROM events WHERE project = %s AND device_id = %s", key
            ).rowcount
            forwards = conn.execute(
                "DELETE FROM outbox WHERE project = %s AND device_id = %s", key
            ).rowcount
            conn.execute("DELETE FROM device_proofs WHERE project = %s AND device_id = %s", key)
            reports = conn.execute(
                "DELETE FROM reports WHERE project = %s AND device_id = %s", key
            ).rowcount
            conn.execute("DELETE FROM report_outbox WHERE project = %s AND device_id = %s", key)
            conn.execute(TRIM_TOMBSTONES, (project, max(1, max_tombstones)))
            return DeletionResult(
                deleted=deleted, forwards_deleted=forwards, reports_deleted=reports
            )

        return self._pool.run("deleting a device", work)

    def check_writable(self) -> None:
        """Raise :class:`StorageUnavailable` unless the server can be reached and takes writes:
        not a standby, and its sessions not read-only (``default_transaction_read_only``)."""
        row = self._pool.run(
            "checking that the database is writable",
            lambda c: c.execute(
                "SELECT pg_is_in_recovery(), current_setting('transaction_read_only') = 'on'"
            ).fetchone(),
        )
        if row is None or row[0]:
            raise StorageUnavailable("the PostgreSQL server is a read-only standby")
        if row[1]:
            raise StorageUnavailable("the PostgreSQL sessions are read-only")

    def _scalar(self, sql: str) -> int:
        row = self._pool.run("reading", lambda c: c.execute(sql).fetchone())
        return int(row[0]) if row else 0

    def count(self) -> int:
        return self._scalar("SELECT count(*) FROM events")

    def outbox_count(self) -> int:
        return self._scalar("SELECT count(*) FROM outbox")

    def claim_forwards(self, *, now: int, lease_ms: int, limit: int) -> list[ForwardRow]:
        rows = self._pool.run(
            "claiming forwards",
            lambda c: c.execute(
                CLAIM_FORWARDS, {"now": now, "until": now + lease_ms, "limit": limit}
            ).fetchall(),
        )
        return sorted((ForwardRow(*row) for row in rows), key=lambda r: r.id)

    def forward_done(self, ids: Sequence[int]) -> None:
        if ids:
            self._pool.run(
                "updating the outbox",
                lambda c: c.execute("DELETE FROM outbox WHERE id = ANY(%s)", (list(ids),)),
            )

    def forward_retry(self, ids: Sequence[int], next_attempt_at: int) -> None:
        if ids:
            self._pool.run(
                "updating the outbox",
                lambda c: c.execute(
                    "UPDATE outbox SET attempts = attempts + 1, next_attempt_at = %s "
                    "WHERE id = ANY(%s)",
                    (next_attempt_at, list(ids)),
                ),
            )

    def _pending(self, sql: str, ids: Sequence[int]) -> set[int]:
        if not ids:
            return set()
        rows = self._pool.run(
            "reading the outbox", lambda c: c.execute(sql, (list(ids),)).fetchall()
        )
        return {int(row[0]) for row in rows}

    def forward_pending(self, ids: Sequence[int]) -> set[int]:
        return self._pending("SELECT id FROM outbox WHERE id = ANY(%s)", ids)

    def report_forward_pending(self, ids: Sequence[int]) -> set[int]:
        return self._pending("SELECT id FROM report_outbox WHERE id = ANY(%s)", ids)

    def forward_expire(self, created_before: int) -> int:
        return self._pool.run(
            "expiring forwards",
            lambda c: (
                c.execute("DELETE FROM outbox WHERE created_at < %s", (created_before,)).rowcount
            ),
        )

    def insert_report(
        self, report: Report, *, received_at_ms: int | None = None, forward: bool = False
    ) -> InsertResult:
        received_at = now_ms() if received_at_ms is None else received_at_ms

        def work(conn: psycopg.Connection[Any]) -> InsertResult:
            if report.device_id is not None:
                key = (report.project, report.device_id)
                conn.execute(LOCK_DEVICES_SHARED, (DEVICE_LOCK_NAMESPACE, key[0], [key[1]]))
                tombstone = conn.execute(
                    "SELECT 1 FROM tombstones WHERE project = %s AND device_id = %s", key
                ).fetchone()
                if tombstone is not None:
                    return InsertResult(inserted=0, duplicates=0, rejected=1)
            marks = ", ".join(["%s"] * 16)
            inserted = conn.execute(
                f"INSERT INTO reports ({REPORT_COLUMNS}) VALUES ({marks}) "
                "ON CONFLICT (project, event_id) DO NOTHING",
                report_row(report, received_at),
            ).rowcount
            if inserted and forward:
                conn.execute(
                    "INSERT INTO report_outbox (project, event_id, device_id, payload, "
                    "created_at, next_attempt_at) VALUES (%s, %s, %s, %s, %s, %s) "
                    "ON CONFLICT (project, event_id) DO NOTHING",
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

        return self._pool.run("storing a report", work)

    def report_groups(self, project: str | None = None) -> list[ReportGroup]:
        queries, params = report_group_queries("%s", project)

        def work(conn: psycopg.Connection[Any]) -> list[ReportGroup]:
            aggregates, lasts, releases = (conn.execute(sql, params).fetchall() for sql in queries)
            return report_groups(aggregates, lasts, releases)

        return self._pool.run("reading report groups", work)

    def report_count(self) -> int:
        return self._scalar("SELECT count(*) FROM reports")

    def claim_report_forwards(self, *, now: int, lease_ms: int, limit: int) -> list[ReportForward]:
        rows = self._pool.run(
            "claiming report forwards",
            lambda c: c.execute(
                CLAIM_REPORT_FORWARDS, {"now": now, "until": now + lease_ms, "limit": limit}
            ).fetchall(),
        )
        return sorted((ReportForward(*row) for row in rows), key=lambda r: r.id)

    def report_forward_done(self, ids: Sequence[int]) -> None:
        if ids:
            self._pool.run(
                "updating the report outbox",
                lambda c: c.execute("DELETE FROM report_outbox WHERE id = ANY(%s)", (list(ids),)),
            )

    def report_forward_retry(self, ids: Sequence[int], next_attempt_at: int) -> None:
        if ids:
            self._pool.run(
                "updating the report outbox",
                lambda c: c.execute(
                    "UPDATE report_outbox SET attempts = attempts + 1, next_attempt_at = %s "
                    "WHERE id = ANY(%s)",
                    (next_attempt_at, list(ids)),
                ),
            )

    def report_forward_expire(self, created_before: int) -> int:
        return self._pool.run(
            "expiring report forwards",
            lambda c: (
                c.execute(
                    "DELETE FROM report_outbox WHERE created_at < %s", (created_before,)
                ).rowcount
            ),
        )

    def purge_expired(
        self, *, cutoff_ms: int, project: str | None, excluded: Sequence[str] = (), limit: int
    ) -> int:
        def work(conn: psycopg.Connection[Any]) -> int:
            total = 0
            for sql, scope in purge_statements("%s", "ctid", project, excluded):
                if total >= limit:
                    break
                total += conn.execute(sql, (cutoff_ms, *scope, limit - total)).rowcount
            return total

        return self._pool.run("deleting expired rows", work)

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
        self._pool.run(
            "storing link hits",
            lambda c: c.cursor().executemany(INSERT_LINK_HIT, rows),
        )

    def close(self) -> None:
        self._pool.close()


def _insert_batch(conn: psycopg.Connection[Any], item: BatchToStore) -> InsertResult:
    """Store one batch inside the caller's transaction (see ``Storage.insert_batch``)."""
    batch, received_at = item.batch, item.received_at_ms
    devices = batch_devices(batch)
    tombstones: dict[str, str | None] = {}
    if devices:
        conn.execute(LOCK_DEVICES_SHARED, (DEVICE_LOCK_NAMESPACE, batch.project, devices))
        tombstones = dict(
            conn.execute(
                "SELECT device_id, proof_hash FROM tombstones WHERE project = %s "
                "AND device_id = ANY(%s::text[])",
                (batch.project, devices),
            ).fetchall()
        )
    proofs = {d: h for d, h in batch.device_proofs.items() if d not in tombstones}
    if proofs:
        conn.execute(
            INSERT_PROOFS, (batch.project, received_at, list(proofs), list(proofs.values()))
        )
    refused_by = refused_devices(tombstones, batch.device_proofs)
    rows, refused = event_rows(batch, received_at, item.skew_ms, refused_by)
    if not rows:
        return InsertResult(inserted=0, duplicates=0, rejected=refused)
    columns = list(zip(*rows, strict=True))
    row = conn.execute(
        INSERT_EVENTS,
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
            "forward": item.forward,
        },
    ).fetchone()
    inserted = int(row[0]) if row else 0
    return InsertResult(inserted=inserted, duplicates=len(rows) - inserted, rejected=refused)
