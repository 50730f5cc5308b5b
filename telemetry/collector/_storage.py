"""The storage interface every backend implements: :class:`Storage`, its result and row types,
:class:`StorageUnavailable`, and the row building the backends share.

Every backend keeps the same tables, created by versioned migrations:

* ``events``: one row per stored event, deduplicated on ``(project, insert_id)``
  (PostgreSQL: a ``UNIQUE`` constraint; SQLite: ``event_keys (project, day, insert_id)``, the day
  of the event's ``time``, so a batch's keys share a few pages; see ``_sqlite_schema``);
  ``time`` is the client's raw event time, ``event_time`` the clock-skew corrected one;
* ``tombstones``: one row per honoured deletion request ``(project, device_id, deleted_at,
  reason, proof_hash)``; later events of that device are refused (counted as rejected) unless
  their batch proves another installation (a different proof hash); at most
  ``max_tombstones`` per project, the oldest dropped first;
* ``device_proofs``: the first proof hash a batch carried for ``(project, device_id)`` (trust
  on first use, never replaced); a deletion request must carry the proof that hashes to it;
* ``outbox``: events waiting to be forwarded to Amplitude, filled in the same transaction as the
  insert, deleted once forwarded (or after 7 days);
* ``link_hits``: rows of the signed link tracker (``GET /r/collect``), IPs masked;
* ``reports``: one row per stored error report (a Sentry ``event`` item), ``UNIQUE (project,
  event_id)`` (the dedup key), its payload whole plus the columns grouping and deletion use
  (``fingerprint``, ``count``, ``first_seen``, ``last_seen``, ``release``, ``device_id``...);
  a deletion deletes the device's reports too, and a tombstoned device's reports are refused;
* ``report_outbox``: reports waiting to be forwarded to a Sentry DSN, filled in the insert's
  transaction, deleted once forwarded or dropped (or after 7 days).

Retention (:meth:`Storage.purge_expired`) deletes events and reports by ``received_at`` and
tombstones by ``deleted_at``, a few thousand rows per transaction (``_retention`` runs it).

A method that returns has committed; a failing one has rolled back and raises
:class:`StorageUnavailable`. The backends: SQLite (``_sqlite_store``, the default) and
PostgreSQL (``_postgres_store``); ``_open_storage`` picks one from the ``--database`` argument.
"""

from __future__ import annotations

import abc
import hmac
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from telemetry.collector import _limits as L
from telemetry.collector._reports import Report, ReportGroup
from telemetry.collector._validation import Batch
from telemetry.errors import TelemetryError

__all__ = [
    "MAX_REASON_LENGTH",
    "BatchToStore",
    "DeletionResult",
    "ForwardRow",
    "InsertResult",
    "LinkHit",
    "ReportForward",
    "Storage",
    "StorageUnavailable",
    "batch_devices",
    "event_rows",
    "now_ms",
    "proof_matches",
    "purge_statements",
    "refused_devices",
    "report_groups",
    "report_row",
]

#: Longest ``reason`` kept from a deletion request.
MAX_REASON_LENGTH: Final = 200
#: Most tombstones kept per project; the oldest go first.
MAX_TOMBSTONES: Final = 100_000


class StorageUnavailable(TelemetryError):
    """The database could not be opened, read or written; nothing was committed (a
    :class:`telemetry.TelemetryError`, so one ``except telemetry.TelemetryError`` catches it)."""


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
class BatchToStore:
    """One request's batch and how to store it (the arguments of :meth:`Storage.insert_batch`)."""

    batch: Batch
    received_at_ms: int
    skew_ms: int = 0
    forward: bool = False


@dataclass(frozen=True, slots=True)
class DeletionResult:
    """Outcome of a deletion request."""

    deleted: int
    forwards_deleted: int
    #: False when the proof did not match: nothing was deleted, no tombstone was set.
    verified: bool = True
    #: Error reports of the device deleted (with their pending forwards).
    reports_deleted: int = 0


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
class ReportForward:
    """One ``report_outbox`` row claimed by the report forwarder."""

    id: int
    project: str
    event_id: str
    payload: str
    created_at: int
    attempts: int


#: The ``reports`` columns, in the order of :func:`report_row`.
REPORT_COLUMNS: Final = (
    "project, event_id, device_id, received_at, timestamp, level, platform, release, "
    "environment, exception_type, exception_value, fingerprint, count, first_seen, last_seen, "
    "payload"
)


def report_row(report: Report, received_at: int) -> tuple[Any, ...]:
    """The ``reports`` row of ``report`` (the order of :data:`REPORT_COLUMNS`)."""
    r = report
    return (
        r.project,
        r.event_id,
        r.device_id,
        received_at,
        r.timestamp,
        r.level,
        r.platform,
        r.release,
        r.environment,
        r.exception_type,
        r.exception_value,
        r.fingerprint,
        r.count,
        r.first_seen,
        r.last_seen,
        r.payload,
    )


#: What retention deletes: (table, age column, row key) in the order it deletes them.
PURGED_TABLES: Final = (
    ("events", "received_at", "id"),
    ("reports", "received_at", "id"),
    ("tombstones", "deleted_at", "{rowkey}"),
)


def purge_statements(
    placeholder: str, rowkey: str, project: str | None, excluded: Sequence[str]
) -> list[tuple[str, tuple[Any, ...]]]:
    """One ``DELETE`` per :data:`PURGED_TABLES` table of at most ``limit`` rows older than a
    cutoff, in the backend's ``placeholder`` style (``rowkey``: its row id column for
    tombstones); each with its scope params. The caller appends ``(cutoff, limit)`` around them:
    the params are ``(cutoff, *scope, limit)``. Scope: ``project`` only, or every project but
    ``excluded``."""
    params: tuple[str, ...]
    if project is not None:
        scope, params = f"AND project = {placeholder}", (project,)
    elif excluded:
        marks = ", ".join([placeholder] * len(excluded))
        scope, params = f"AND project NOT IN ({marks})", tuple(excluded)
    else:
        scope, params = "", ()
    statements = []
    for table, column, key_pattern in PURGED_TABLES:
        key = key_pattern.format(rowkey=rowkey)
        statements.append(
            (
                f"DELETE FROM {table} WHERE {key} IN (SELECT {key} FROM {table} "
                f"WHERE {column} < {placeholder} {scope} LIMIT {placeholder})",
                params,
            )
        )
    return statements


def report_group_queries(
    placeholder: str, project: str | None
) -> tuple[list[str], tuple[str, ...]]:
    """The three reads :func:`report_groups` combines (aggregates, last exception, releases),
    filtered to ``project`` when given, with the backend's ``placeholder``; and their params."""
    where = f"WHERE project = {placeholder}" if project is not None else ""
    also = f"AND project = {placeholder}" if project is not None else ""
    params = (project,) if project is not None else ()
    return [
        "SELECT project, fingerprint, sum(count), count(*), min(first_seen), max(last_seen) "
        f"FROM reports {where} GROUP BY project, fingerprint",
        "SELECT project, fingerprint, exception_type, exception_value FROM (SELECT project, "
        "fingerprint, exception_type, exception_value, row_number() OVER (PARTITION BY project, "
        f"fingerprint ORDER BY last_seen DESC, id DESC) AS n FROM reports {where}) AS ranked "
        "WHERE n = 1",
        f"SELECT DISTINCT project, fingerprint, release FROM reports WHERE release IS NOT NULL "
        f"{also}",
    ], params


def report_groups(
    aggregates: Iterable[Sequence[Any]],
    lasts: Iterable[Sequence[Any]],
    releases: Iterable[Sequence[Any]],
) -> list[ReportGroup]:
    """Groups from the rows of :func:`report_group_queries`, the last seen first."""
    last = {(p, f): (t, v) for p, f, t, v in lasts}
    versions: dict[tuple[str, str], set[str]] = {}
    for p, f, release in releases:
        versions.setdefault((p, f), set()).add(release)
    groups = [
        ReportGroup(
            project=p,
            fingerprint=f,
            count=int(total),
            reports=int(n),
            first_seen=int(first),
            last_seen=int(latest),
            releases=tuple(sorted(versions.get((p, f), ()))),
            exception_type=last.get((p, f), (None, None))[0],
            exception_value=last.get((p, f), (None, None))[1],
        )
        for p, f, total, n, first, latest in aggregates
    ]
    groups.sort(key=lambda g: (-g.last_seen, g.project, g.fingerprint))
    return groups


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


def _clamp_time(ms: int) -> int:
    """``ms`` brought into the range of an accepted ``time`` (0 to ``MAX_TIME_MS``)."""
    return min(L.MAX_TIME_MS, max(0, ms))


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
        corrected = None if event.time is None else _clamp_time(event.time + skew_ms)
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


def refused_devices(tombstones: Mapping[str, str | None], proofs: Mapping[str, str]) -> set[str]:
    """The tombstoned devices whose events a batch may not store: all of them, except those the
    batch proves to be another installation (a proof hash differing from the tombstone's)."""
    return {
        device
        for device, known in tombstones.items()
        if known is None or proofs.get(device) in (None, known)
    }


def proof_matches(known: str | None, given: str | None) -> bool:
    """Whether a deletion may go ahead: no proof to check (``given`` None: the operator's own
    call), none known yet (trust on first use), or equal hashes (constant-time compare)."""
    if given is None or known is None:
        return True
    return hmac.compare_digest(known.encode(), given.encode())


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

    def insert_batches(self, batches: Sequence[BatchToStore]) -> list[InsertResult]:
        """Store several requests' batches in one transaction (one commit, one flush to disk),
        each exactly as :meth:`insert_batch` would, in order; their results in that order. All
        or none are stored (``StorageUnavailable``). This default stores them one by one."""
        return [
            self.insert_batch(
                item.batch,
                received_at_ms=item.received_at_ms,
                skew_ms=item.skew_ms,
                forward=item.forward,
            )
            for item in batches
        ]

    @abc.abstractmethod
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
        """Delete every event, error report and pending forward of the device and keep a
        tombstone, when :func:`proof_matches` the device's known proof hash and ``proof_hash``
        (else nothing, ``verified`` False). ``None``: no check (the HTTP route always passes
        one)."""

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
    def forward_pending(self, ids: Sequence[int]) -> set[int]:
        """Which of ``ids`` are still in the outbox (a deletion may have removed some since
        they were claimed); the forwarder sends only those."""

    @abc.abstractmethod
    def forward_expire(self, created_before: int) -> int:
        """Delete outbox rows created before ``created_before``; return how many."""

    @abc.abstractmethod
    def insert_report(
        self, report: Report, *, received_at_ms: int | None = None, forward: bool = False
    ) -> InsertResult:
        """Store one error report unless its ``(project, event_id)`` is stored already
        (``duplicates`` 1) or its device has a tombstone (``rejected`` 1); a new row also goes to
        the report outbox when ``forward``."""

    @abc.abstractmethod
    def report_groups(self, project: str | None = None) -> list[ReportGroup]:
        """The groups of stored reports (of ``project``, or of all), the last seen first."""

    @abc.abstractmethod
    def report_count(self) -> int:
        """Number of stored error reports."""

    @abc.abstractmethod
    def claim_report_forwards(self, *, now: int, lease_ms: int, limit: int) -> list[ReportForward]:
        """Lease up to ``limit`` due report outbox rows (oldest first) for ``lease_ms``."""

    @abc.abstractmethod
    def report_forward_done(self, ids: Sequence[int]) -> None:
        """Delete forwarded (or dropped) report outbox rows."""

    @abc.abstractmethod
    def report_forward_retry(self, ids: Sequence[int], next_attempt_at: int) -> None:
        """Count one more attempt for the rows and make them due at ``next_attempt_at``."""

    @abc.abstractmethod
    def report_forward_pending(self, ids: Sequence[int]) -> set[int]:
        """Which of ``ids`` are still in the report outbox (a deletion may have removed some
        since they were claimed); the report forwarder sends only those."""

    @abc.abstractmethod
    def report_forward_expire(self, created_before: int) -> int:
        """Delete report outbox rows created before ``created_before``; return how many."""

    @abc.abstractmethod
    def purge_expired(
        self, *, cutoff_ms: int, project: str | None, excluded: Sequence[str] = (), limit: int
    ) -> int:
        """Delete, in one short transaction, at most ``limit`` rows received (tombstones: set)
        before ``cutoff_ms``: events first, then reports, then tombstones; of ``project`` only,
        or (``None``) of every project not in ``excluded``. Return how many rows went; fewer
        than ``limit``: nothing older is left in that scope."""

    @abc.abstractmethod
    def insert_link_hits(self, hits: Iterable[LinkHit]) -> None:
        """Store rows of the signed link tracker."""

    @abc.abstractmethod
    def close(self) -> None:
        """Release the connection(s) (idempotent)."""
