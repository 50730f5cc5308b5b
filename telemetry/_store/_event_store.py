"""EventStore: the facade over the storage pieces, and the hot path of ``track()``.

It builds one :class:`~telemetry._store._db.Database` and hands it to the pieces
(:mod:`._ingest`, :mod:`._overflow`, :mod:`._queue`, :mod:`._state`, :mod:`._lease`,
:mod:`._links`); every public method delegates to one of them. Only :meth:`EventStore.append`
does its work here, so a tracked event costs no extra call.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Final

from telemetry._store import _journal, _lease, _links, _reserve, _state
from telemetry._store._db import Database, log
from telemetry._store._ingest import JOURNAL_DIR, Ingest
from telemetry._store._overflow import DROPPED_DISK_FULL, DROPPED_OVERFLOW, Overflow
from telemetry._store._queue import (
    DEFAULT_MAX_AGE_DAYS,
    DEFAULT_MAX_BYTES,
    DEFAULT_MAX_EVENTS,
    SENT_LOG_SIZE,
    Queue,
    QueueStats,
    StoredEvent,
)
from telemetry._store._reports import Reports, StoredReport
from telemetry._store._state import EVENT_ID_BLOCK
from telemetry.events import encode_json

_DAY_MS: Final = 86_400_000


class EventStore:
    """The durable queue and key/value state of one app's telemetry.

    Args:
        data_dir: directory holding ``telemetry.db`` (created if missing); ``None`` keeps
            everything in memory.
        max_events, max_bytes, max_age_days: the caps :meth:`enforce_limits` applies.
    """

    def __init__(
        self,
        data_dir: str | os.PathLike[str] | None,
        *,
        max_events: int = DEFAULT_MAX_EVENTS,
        max_bytes: int = DEFAULT_MAX_BYTES,
        max_age_days: float = DEFAULT_MAX_AGE_DAYS,
    ) -> None:
        self.data_dir = Path(data_dir) if data_dir is not None else None
        self.max_events = max_events
        self.max_bytes = max_bytes
        self.max_age_ms = int(max_age_days * _DAY_MS)
        self._closed = False
        # The ids of the batch the uploader has in flight: the caps leave them alone, so that
        # an event delivered during a cap pass is counted as sent, never also as dropped.
        self._in_flight: tuple[int, int] | None = None
        self._db = Database(self.data_dir)
        self.path: Path | None = self._db.path
        self._ingest = Ingest(self._db, self.journal_dir)
        self._overflow = Overflow(self._db)
        self._queue = Queue(self._db, self._ingest, self._overflow)
        self._reports = Reports(self._db)
        if self.path is not None and not self.in_memory:
            self._ingest.start()
            _reserve.ensure(self.path.parent)

    @property
    def degraded(self) -> str | None:
        """What is wrong now (corrupt, disk full) or why the store runs in memory or was
        rebuilt; ``None`` when healthy."""
        return self._db.status()

    @property
    def in_memory(self) -> bool:
        """True when nothing is written to disk (no data dir, or the file was unusable)."""
        return self._db.in_memory

    # ------------------------------------------------------------------ the journal

    @property
    def journal_dir(self) -> Path | None:
        """Where the per-process journals live (``None`` for an in-memory store)."""
        return self.data_dir / JOURNAL_DIR if self.data_dir is not None else None

    def sync_journal(self) -> int:
        """Copy what this process appended to its journal into SQLite; returns how many
        events were copied. Swaps in a fresh journal file once the current one is large."""
        return self._ingest.sync_journal()

    def ingest_orphans(self) -> int:
        """Copy the journals of processes that died into SQLite and remove them."""
        return self._ingest.ingest_orphans()

    def recover(self) -> None:
        """Reopen after a runtime fault; a database found corrupt is moved aside first."""
        self._db.recover()

    # ------------------------------------------------------------------ the hot path

    def append(
        self,
        insert_id: str,
        event_type: str,
        time_ms: int,
        payload: str,
        event_type_json: str | None = None,
    ) -> bool:
        """Make one event durable (``payload`` is its JSON, exactly as it will be sent, with
        the same ``insert_id``, ``event_type`` and ``time``: the journal keeps only the JSON).

        Returns True when the event is on disk (in the journal or the database); False when
        it was kept in the in-memory overflow (or dropped, counted) because neither could
        take it. ``event_type_json``: the name as JSON, when the caller has it.
        """
        journal = self._ingest.journal
        if journal is not None:
            type_json = event_type_json or encode_json(event_type)
            try:
                journal.append(_journal.encode_line(insert_id, time_ms, type_json, payload))
                return True
            except _journal.Retired:  # swapped meanwhile: the current journal takes it
                return self.append(insert_id, event_type, time_ms, payload, type_json)
            except OSError as exc:
                self._overflow.keep((insert_id, event_type, time_ms, payload), exc)
                return False
        return self._overflow.insert((insert_id, event_type, time_ms, payload))

    @property
    def overflow_size(self) -> int:
        """Events waiting in memory because the database could not take them."""
        return len(self._overflow)

    # ------------------------------------------------------------------ the queue

    def pending(self, limit: int = 500, max_bytes: int = 512 * 1024) -> list[StoredEvent]:
        """The oldest queued events, at most ``limit`` of them and ``max_bytes`` in total.

        The first event is returned even when it alone is larger than ``max_bytes``.
        """
        return self._queue.pending(limit, max_bytes)

    def iter_events(self, after_id: int = 0, *, chunk: int = 1_000) -> Iterator[StoredEvent]:
        """Every queued event with an id above ``after_id``, oldest first."""
        return self._queue.iter_events(after_id, chunk)

    def stats(self) -> QueueStats:
        """Queue depth, bytes and the oldest event's time."""
        return self._queue.stats()

    def dropped(self, limit: int = 100) -> list[dict[str, Any]]:
        """The most recently dropped events, newest first, with the reason."""
        return self._queue.dropped(limit)

    def delete(self, ids: Sequence[int]) -> int:
        """Remove events (after delivery); returns how many were removed."""
        return self._queue.delete(ids)

    def drop(self, ids: Sequence[int], reason: str) -> int:
        """Remove events that will never be sent, logging them and counting ``reason``."""
        return self._queue.drop(ids, reason)

    def purge(self) -> int:
        """Delete every queued event (and the in-memory overflow); returns how many."""
        return self._queue.purge()

    def erase(
        self,
        *,
        keep_state: Sequence[str] = (),
        then: Mapping[str, Callable[[Any], Any]] | None = None,
    ) -> int:
        """Forget everything recorded (opt-out): queued events, the overflow, counters, the
        dropped and sent logs, linked device ids, experiment assignments, and every state key
        except ``keep_state``; then set the state keys of ``then`` (each value replaced by
        ``change(value)``, as :meth:`update_state` does); one transaction. Returns how many
        queued events went unsent.

        Then no copy is left on disk: the WAL (which still holds the pages as they were
        before the deletion) is checkpointed and truncated, and the copies of a database once
        found corrupt (``telemetry.db.corrupt-*``, kept for inspection) are removed.
        """
        unsent = self._queue.erase(keep_state, then)
        # Called on the app's thread (a settings toggle): another process's reader may make
        # it wait, so briefly; the next checkpoint finishes the job then.
        self._db.checkpoint("TRUNCATE", wait_ms=250)
        self._remove_corrupt_copies()
        return unsent

    def _remove_corrupt_copies(self) -> None:
        if self.path is None:
            return
        for copy in self.path.parent.glob(f"{self.path.name}.corrupt-*"):
            try:
                copy.unlink()
            except OSError as exc:
                log.warning("telemetry could not remove %s: %s", copy.name, exc.strerror)

    def enforce_limits(self, now_ms: int | None = None) -> dict[str, int]:
        """Apply the age, count and byte caps, oldest first; return drops per reason. The
        batch in flight (:meth:`sending`) is left alone: the queue may exceed a cap by one
        batch until its answer arrives."""
        return self._queue.enforce_limits(
            max_events=self.max_events,
            max_bytes=self.max_bytes,
            max_age_ms=self.max_age_ms,
            now=now_ms,
            keep=self._in_flight,
        )

    @contextlib.contextmanager
    def sending(self, ids: Sequence[int]) -> Iterator[None]:
        """While the uploader waits for the answer to a batch of ``ids``: the caps do not
        drop them (delivered events are counted as sent, not as dropped)."""
        self._in_flight = (min(ids), max(ids)) if ids else None
        try:
            yield
        finally:
            self._in_flight = None

    def ack(
        self, ids: Sequence[int], status: int, body_gzip: bytes, *, counter: str | None = None
    ) -> int:
        """Delete delivered events, log the batch in the sent ring buffer and add how many
        were removed to ``counter``, atomically; returns how many were removed."""
        return self._queue.ack(ids, status, body_gzip, counter)

    def sent_batches(self, limit: int = SENT_LOG_SIZE) -> list[dict[str, Any]]:
        """The last sent batches, newest first: ``sent_at``, ``status``, ``events`` (as sent)."""
        return self._queue.sent_batches(limit)

    # ------------------------------------------------------------------ error reports

    def add_report(self, fingerprint: str, payload: str, at_ms: int | None = None) -> bool:
        """Count one occurrence of an error report, durably; see :meth:`Reports.add`."""
        return self._reports.add(fingerprint, payload, at_ms)

    def pending_reports(self, limit: int = 100) -> list[StoredReport]:
        """Error reports waiting to be sent, oldest first."""
        return self._reports.pending(limit)

    def report_count(self) -> int:
        """How many error reports (fingerprints) wait."""
        return self._reports.count()

    def report_delivered(self, report: StoredReport, status: int, body: str) -> None:
        """``report`` was delivered as ``body``; see :meth:`Reports.delivered`."""
        self._reports.delivered(report, status, body)

    def drop_report(self, report: StoredReport, reason: str) -> None:
        """``report`` was refused for good; its occurrences are counted as ``reason``."""
        self._reports.drop(report, reason)

    def sent_reports(self, limit: int = 50) -> list[dict[str, Any]]:
        """The last error reports sent, newest first."""
        return self._reports.sent(limit)

    # ------------------------------------------------------------------ housekeeping

    def flush_overflow(self) -> int:
        """Move events kept in memory after a failed write into the database."""
        return self._overflow.flush()

    def flush_counters(self) -> None:
        """Persist counters that could not be written when they happened."""
        _state.flush_counters(self._db)

    def checkpoint(self, mode: str = "PASSIVE") -> None:
        """Copy the WAL back into the database file (off the caller's thread)."""
        self._db.checkpoint(mode)

    def check_files(self) -> None:
        """Recover a database found corrupt, and recreate a database or journal that vanished
        or was replaced (carrying over what the open files still hold)."""
        if self.path is None or self.in_memory:
            return
        if self._db.vanished():
            self._ingest.sync_journal()  # into the old (unlinked) file, carried over next
            self._db.replace_vanished()
        self._ingest.replace_moved_journal()
        if self._db.corrupt is not None:
            self._ingest.sync_journal()
            self._db.recover()

    def maintain(self) -> None:
        """One housekeeping pass: damaged or vanished files, journals, overflow, pending
        counters, caps, checkpoint."""
        self.check_files()
        self.sync_journal()
        self.ingest_orphans()
        self.flush_overflow()
        self.flush_counters()
        self.enforce_limits()
        self.checkpoint()
        if self.path is not None and not self.in_memory and self._db.full is None:
            _reserve.ensure(self.path.parent)

    # ------------------------------------------------------------------ state and counters

    def get_state(self, key: str, default: Any = None) -> Any:
        """A JSON value from the ``state`` table."""
        return _state.get_state(self._db, key, default)

    def set_state(self, key: str, value: Any) -> None:
        """Store a JSON value (``None`` deletes the key)."""
        _state.set_state(self._db, key, value)

    def update_state(self, key: str, change: Callable[[Any], Any]) -> Any:
        """Replace the value under ``key`` (``None`` if absent) by ``change(value)`` in one
        transaction, so no other thread or process sharing the file can slip a write in
        between; a ``None`` result deletes the key. ``change`` must be quick and pure (it may
        run under the store's lock). Returns the new value, or ``None`` when the database
        could not be written (logged and counted)."""
        return _state.update_state(self._db, key, change)

    def setdefault_state(self, key: str, value: Any) -> Any:
        """Store ``value`` under ``key`` unless a value is there already; returns the stored
        value. Atomic across processes sharing the file, so two that start together agree
        (e.g. on one device id). Returns ``value`` if the database cannot be written."""
        return _state.setdefault_state(self._db, key, value)

    def state(self) -> dict[str, Any]:
        """Every state key and value."""
        return _state.all_state(self._db)

    def increment(self, name: str, amount: int = 1) -> None:
        """Add to a persisted counter (kept in memory until the database accepts it)."""
        self._db.increment(name, amount)

    def counters(self) -> dict[str, int]:
        """Persisted counters plus any not yet written."""
        return _state.counters(self._db)

    def reset_counters(self) -> None:
        """Forget every counter."""
        _state.reset_counters(self._db)

    def reserve_event_ids(self, block: int = EVENT_ID_BLOCK) -> int:
        """Reserve ``block`` event ids for this process; returns the first.

        The high-water mark only grows, so ids are never reused, across processes too.
        """
        return _state.reserve_event_ids(self._db, block)

    # ------------------------------------------------------------------ upload lease

    def acquire_lease(self, owner: str, ttl_ms: int, *, now_ms: int | None = None) -> bool:
        """Take or renew the upload lease for ``owner``; False when another live uploader
        (in this or another process) holds it."""
        return _lease.acquire_lease(self._db, owner, ttl_ms, now=now_ms)

    def release_lease(self, owner: str) -> None:
        """Give the upload lease up if ``owner`` holds it."""
        _lease.release_lease(self._db, owner)

    # ------------------------------------------------------------------ linked ids, experiments

    def linked_device_ids(self) -> list[str]:
        """Device ids linked through URLs, newest first."""
        return _links.linked_device_ids(self._db)

    def replace_linked_device_ids(self, ids: Sequence[str]) -> None:
        """Store ``ids`` (newest first) as the linked device ids."""
        _links.replace_linked_device_ids(self._db, ids)

    def experiment_assignment(self, name: str, device_id: str) -> str | None:
        """The stored variation of experiment ``name`` for ``device_id``, if any."""
        return _links.experiment_assignment(self._db, name, device_id)

    def assign_experiment(self, name: str, device_id: str, variation: str) -> str:
        """Store a variation unless one exists; return the one that is stored."""
        return _links.assign_experiment(self._db, name, device_id, variation)

    # ------------------------------------------------------------------ read-only queries

    def read_query(
        self, sql: str, params: Sequence[Any] | Mapping[str, Any] = ()
    ) -> list[dict[str, Any]]:
        """Rows of one read-only SQL statement, as dicts (``telemetry query``).

        An authorizer allows reading only: a write, ``ATTACH``, ``PRAGMA`` or a schema change
        is refused by SQLite before it runs.

        Raises:
            StoreError: the statement is invalid or tries to change something.
        """
        self.sync_journal()
        return self._db.read_query(sql, params)

    # ------------------------------------------------------------------ closing

    def close(self) -> None:
        """Flush what is in memory, checkpoint and close both connections."""
        if self._closed:
            return
        self._closed = True
        with contextlib.suppress(sqlite3.Error, OSError):
            self.check_files()
        self._ingest.close()
        with contextlib.suppress(sqlite3.Error):
            self.flush_overflow()
            self._save_losses()
            self.checkpoint("TRUNCATE")
        self._db.close()

    def _save_losses(self) -> None:
        """Count the events still in memory as lost and write every pending counter, giving
        up the reserved space when the disk is full."""
        db = self._db
        left = self._overflow.clear()
        if left:
            log.error("telemetry lost %d events it could not write (%s)", left, db.full)
            with db.lock:
                db.pending_counts[DROPPED_DISK_FULL if db.full else DROPPED_OVERFLOW] += left
        self.flush_counters()
        if db.pending_counts and self.path is not None and _reserve.release(self.path.parent):
            self.flush_counters()
        if db.pending_counts:
            log.error("telemetry counters could not be saved: %s", dict(db.pending_counts))

    def __enter__(self) -> EventStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
