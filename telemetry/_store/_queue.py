"""The event queue in SQLite: reading it, removing from it, its caps and its two logs.

Owns the ``events`` table once events are in SQLite (they arrive through
:mod:`~telemetry._store._ingest` or :mod:`~telemetry._store._overflow`), the dropped-event
log (``dropped_events``, the last :data:`DROPPED_LOG_SIZE` events removed unsent, with the
reason) and the sent-batch ring buffer (``sent_batches``, the last :data:`SENT_LOG_SIZE`
delivered batches, as sent). Every read first copies this process's journal, so it sees
every event appended before it.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from telemetry._store._db import Database, bump, now_ms
from telemetry._store._ingest import Ingest
from telemetry._store._overflow import Overflow
from telemetry._store._state import update_state_in

DEFAULT_MAX_EVENTS: Final = 20_000
DEFAULT_MAX_BYTES: Final = 10 * 1024 * 1024
DEFAULT_MAX_AGE_DAYS: Final = 30
DROPPED_LOG_SIZE: Final = 1_000
SENT_LOG_SIZE: Final = 100

# Counter names (also shown by `telemetry status`).
DROPPED_CAP_COUNT: Final = "dropped_cap_count"
DROPPED_CAP_BYTES: Final = "dropped_cap_bytes"
DROPPED_AGE: Final = "dropped_age"
DROPPED_PURGED: Final = "dropped_purged"

#: Most ids bound to one ``IN (...)`` list (SQLite limits the parameters of a statement).
_ID_CHUNK: Final = 500


@dataclass(frozen=True, slots=True)
class StoredEvent:
    """A queued event as read back: its queue id and the JSON exactly as it will be sent."""

    id: int
    insert_id: str
    event_type: str
    time: int
    size: int
    json: str

    def as_dict(self) -> dict[str, Any]:
        """The event object, as sent."""
        result: dict[str, Any] = json.loads(self.json)
        return result


@dataclass(frozen=True, slots=True)
class QueueStats:
    """How much is waiting to be sent."""

    events: int
    bytes: int
    oldest_time: int | None


class Queue:
    """Reads and removals of queued events (see the module docstring)."""

    def __init__(self, db: Database, ingest: Ingest, overflow: Overflow) -> None:
        self._db = db
        self._ingest = ingest
        self._overflow = overflow

    # ------------------------------------------------------------------ reading

    def pending(self, limit: int, max_bytes: int) -> list[StoredEvent]:
        """The oldest queued events, at most ``limit`` of them and ``max_bytes`` in total
        (the first one even when it alone is larger)."""
        self._ingest.sync_journal()
        rows = self._db.query(
            "SELECT id, insert_id, event_type, time, size, payload FROM events ORDER BY id LIMIT ?",
            (limit,),
        )
        batch: list[StoredEvent] = []
        total = 0
        for row_id, insert_id, event_type, time_ms, size, payload in rows:
            if batch and total + size > max_bytes:
                break
            total += size
            batch.append(StoredEvent(row_id, insert_id, event_type, time_ms, size, payload))
        return batch

    def iter_events(self, after_id: int, chunk: int) -> Iterator[StoredEvent]:
        """Every queued event with an id above ``after_id``, oldest first."""
        self._ingest.sync_journal()
        last = after_id
        while True:
            rows = self._db.query(
                "SELECT id, insert_id, event_type, time, size, payload FROM events"
                " WHERE id > ? ORDER BY id LIMIT ?",
                (last, chunk),
            )
            for row_id, insert_id, event_type, time_ms, size, payload in rows:
                yield StoredEvent(row_id, insert_id, event_type, time_ms, size, payload)
                last = row_id
            if len(rows) < chunk:
                return

    def stats(self) -> QueueStats:
        """Queue depth (the in-memory overflow included), bytes and the oldest event's time."""
        self._ingest.sync_journal()
        rows = self._db.query("SELECT count(*), coalesce(sum(size), 0), min(time) FROM events")
        count, size, oldest = rows[0] if rows else (0, 0, None)
        return QueueStats(int(count) + len(self._overflow), int(size), oldest)

    def dropped(self, limit: int) -> list[dict[str, Any]]:
        """The most recently dropped events, newest first, with the reason."""
        rows = self._db.query(
            "SELECT event_id, insert_id, event_type, reason, dropped_at, payload"
            " FROM dropped_events ORDER BY id DESC LIMIT ?",
            (limit,),
        )
        keys = ("event_id", "insert_id", "event_type", "reason", "dropped_at", "payload")
        return [dict(zip(keys, row, strict=True)) for row in rows]

    # ------------------------------------------------------------------ removing

    def delete(self, ids: Sequence[int]) -> int:
        """Remove events (after delivery); returns how many were removed."""
        if not ids:
            return 0

        def work(conn: sqlite3.Connection) -> int:
            return sum(
                conn.execute(
                    f"DELETE FROM events WHERE id IN ({','.join('?' * len(part))})", part
                ).rowcount
                for part in _chunks(ids, _ID_CHUNK)
            )

        return int(self._db.write(work, 0))

    def drop(self, ids: Sequence[int], reason: str) -> int:
        """Remove events that will never be sent, logging them and counting ``reason``."""
        if not ids:
            return 0

        def work(conn: sqlite3.Connection) -> int:
            removed = 0
            for part in _chunks(ids, _ID_CHUNK):
                marks = ",".join("?" * len(part))
                removed += _log_dropped(conn, f"id IN ({marks})", part, reason)
            return removed

        return int(self._db.write(work, 0))

    def purge(self) -> int:
        """Delete every queued event (and the in-memory overflow); returns how many."""
        self._ingest.sync_journal()
        overflow = self._overflow.clear()
        removed = int(self._db.write(lambda conn: conn.execute("DELETE FROM events").rowcount, 0))
        self._db.increment(DROPPED_PURGED, removed + overflow)
        return removed + overflow

    def erase(
        self,
        keep_state: Sequence[str],
        then: Mapping[str, Callable[[Any], Any]] | None = None,
    ) -> int:
        """Forget everything recorded except the state keys ``keep_state`` (opt-out), then
        replace the value of each state key of ``then`` by ``change(value)`` (``None``
        deletes it), all in one transaction: a process killed half-way leaves either
        everything as it was or the whole change. Returns how many queued events went unsent."""
        unsent = self._ingest.discard_journals()
        with self._db.lock:
            overflow = self._overflow.clear()
            self._db.pending_counts.clear()
        keep = tuple(keep_state)

        def work(conn: sqlite3.Connection) -> int:
            for name in unsent:
                conn.execute("DELETE FROM journal_progress WHERE file = ?", (name,))
            removed = int(conn.execute("DELETE FROM events").rowcount)
            for table in (
                "dropped_events",
                "sent_batches",
                "linked_devices",
                "experiments",
                "reports",
                "sent_reports",
            ):
                conn.execute(f"DELETE FROM {table}")
            conn.execute("DELETE FROM counters WHERE name != 'opened'")
            marks = ",".join("?" * len(keep)) or "NULL"
            conn.execute(f"DELETE FROM state WHERE key NOT IN ({marks})", keep)
            for key, change in (then or {}).items():
                update_state_in(conn, key, change)
            return removed

        return int(self._db.write(work, 0)) + overflow

    # ------------------------------------------------------------------ caps

    def enforce_limits(
        self,
        *,
        max_events: int,
        max_bytes: int,
        max_age_ms: int,
        now: int | None,
        keep: tuple[int, int] | None = None,
    ) -> dict[str, int]:
        """Apply the age, count and byte caps, oldest first; return drops per reason. Events
        whose id lies in ``keep`` (first, last: the batch in flight) are not dropped.

        Cheap read-only checks come first, so the write lock is taken only when something
        must go (appends on the caller's thread are not held up by a pass with nothing to do).
        """
        spare = "" if keep is None else f" AND id NOT BETWEEN {int(keep[0])} AND {int(keep[1])}"
        self._ingest.sync_journal()
        cutoff = (now_ms() if now is None else now) - max_age_ms
        drops = {DROPPED_AGE: 0, DROPPED_CAP_COUNT: 0, DROPPED_CAP_BYTES: 0}
        oldest = self._db.query("SELECT time FROM events ORDER BY id LIMIT 1")
        if oldest and oldest[0][0] < cutoff:
            drops[DROPPED_AGE] = self._drop_where(
                "id <= (SELECT max(id) FROM events WHERE time < ?)" + spare, (cutoff,), DROPPED_AGE
            )
        rows = self._db.query("SELECT count(*), coalesce(sum(size), 0) FROM events")
        count, size = rows[0] if rows else (0, 0)
        if count > max_events:
            drops[DROPPED_CAP_COUNT] = self._drop_where(
                "id <= (SELECT id FROM events ORDER BY id DESC LIMIT 1 OFFSET ?)" + spare,
                (max_events,),
                DROPPED_CAP_COUNT,
            )
            size = self._db.query("SELECT coalesce(sum(size), 0) FROM events")[0][0]
        if size > max_bytes:
            drops[DROPPED_CAP_BYTES] = self._drop_where(
                "id <= (SELECT id FROM (SELECT id, sum(size) OVER (ORDER BY id DESC) AS acc"
                " FROM events) WHERE acc > ? ORDER BY id DESC LIMIT 1)" + spare,
                (max_bytes,),
                DROPPED_CAP_BYTES,
            )
        return drops

    def _drop_where(self, where: str, params: Sequence[Any], reason: str) -> int:
        return self._db.write(lambda c: _log_dropped(c, where, params, reason), 0)

    # ------------------------------------------------------------------ delivered batches

    def ack(self, ids: Sequence[int], status: int, body_gzip: bytes, counter: str | None) -> int:
        """Delete delivered events, log the batch in the sent ring buffer and add how many
        were removed to ``counter``, atomically; returns how many were removed."""

        def work(conn: sqlite3.Connection) -> int:
            removed = 0
            for part in _chunks(ids, _ID_CHUNK):
                marks = ",".join("?" * len(part))
                removed += conn.execute(f"DELETE FROM events WHERE id IN ({marks})", part).rowcount
            if removed == 0:  # erased meanwhile (opt-out) or acked by another process
                return 0
            if counter is not None:
                bump(conn, counter, removed)
            conn.execute(
                "INSERT INTO sent_batches(sent_at, status, event_count, body) VALUES (?, ?, ?, ?)",
                (now_ms(), status, len(ids), body_gzip),
            )
            conn.execute(
                "DELETE FROM sent_batches WHERE id <= (SELECT max(id) FROM sent_batches) - ?",
                (SENT_LOG_SIZE,),
            )
            return removed

        return int(self._db.write(work, 0))

    def sent_batches(self, limit: int) -> list[dict[str, Any]]:
        """The last sent batches, newest first: ``sent_at``, ``status``, ``events`` (as sent)."""
        rows = self._db.query(
            "SELECT id, sent_at, status, event_count, body FROM sent_batches"
            " ORDER BY id DESC LIMIT ?",
            (limit,),
        )
        return [
            {
                "id": row_id,
                "sent_at": sent_at,
                "status": status,
                "event_count": count,
                "events": json.loads(_gunzip(body)),
            }
            for row_id, sent_at, status, count, body in rows
        ]


def _log_dropped(conn: sqlite3.Connection, where: str, params: Sequence[Any], reason: str) -> int:
    """Remove the events matching ``where``, copying the newest of them to the dropped log and
    counting them under ``reason``; inside the caller's transaction."""
    now = now_ms()
    conn.execute(
        "INSERT INTO dropped_events(event_id, insert_id, event_type, reason, dropped_at,"
        " payload) SELECT json_extract(payload, '$.event_id'), insert_id, event_type, ?, ?,"
        f" payload FROM (SELECT * FROM events WHERE {where} ORDER BY id DESC LIMIT ?)"
        " ORDER BY id",  # only the newest drops fit in the log: copy no more than that
        (reason, now, *params, DROPPED_LOG_SIZE),
    )
    removed: int = conn.execute(f"DELETE FROM events WHERE {where}", tuple(params)).rowcount
    if removed:
        bump(conn, reason, removed)
        conn.execute(
            "DELETE FROM dropped_events WHERE id <= (SELECT max(id) FROM dropped_events) - ?",
            (DROPPED_LOG_SIZE,),
        )
    return removed


def _chunks(items: Sequence[int], size: int) -> Iterator[Sequence[int]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _gunzip(body: bytes) -> bytes:
    import gzip  # only reading the sent log needs it, never start-up or track()

    return gzip.decompress(body)
