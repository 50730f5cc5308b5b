"""Events written straight to SQLite, and the in-memory overflow for those nothing took.

Without a usable journal (no ``fcntl``, or the journal cannot be created) an append commits
on the ``writer`` connection. When that write fails too, or the journal write failed (disk
full, I/O error), the event waits in a bounded in-memory queue that housekeeping retries;
once full, the oldest waiting event is dropped and counted.
"""

from __future__ import annotations

import collections
import contextlib
import itertools
import sqlite3
from collections.abc import Sequence
from typing import Final

from telemetry._store._connect import is_disk_full
from telemetry._store._db import STORE_WRITE_ERRORS, Database, log
from telemetry.events import utf8_size

OVERFLOW_SIZE: Final = 1_000

# Counter names (also shown by `telemetry status`): events dropped from the full overflow,
# while the disk was full (``dropped_disk_full``) or for another write failure.
DROPPED_OVERFLOW: Final = "dropped_overflow"
DROPPED_DISK_FULL: Final = "dropped_disk_full"

_INSERT_EVENT: Final = (
    "INSERT OR IGNORE INTO events(insert_id, event_type, time, size, payload)"
    " VALUES (?, ?, ?, ?, ?)"
)

#: Events written back from memory per transaction.
_FLUSH_CHUNK: Final = 500

#: An event waiting in memory: insert_id, event type, time (ms), event JSON.
Row = tuple[str, str, int, str]


class Overflow:
    """Direct writes to SQLite and the events kept in memory when a write failed."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._rows: collections.deque[Row] = collections.deque()

    def __len__(self) -> int:
        return len(self._rows)

    def insert(self, row: Row) -> bool:
        """Commit one event on the writer connection; True when it is on disk, False when it
        was kept in memory instead."""
        insert_id, event_type, time_ms, payload = row
        try:
            with self._db.write_lock:
                self._db.writer.execute(
                    _INSERT_EVENT, (insert_id, event_type, time_ms, utf8_size(payload), payload)
                )
            return True
        except sqlite3.Error as exc:
            self.keep(row, exc)
            return False

    def keep(self, row: Row, exc: Exception) -> None:
        """Hold an event the journal or the database refused (``exc``: why)."""
        db = self._db
        db.note_failure(exc)
        # From this failure, not only from ``db.full``: a flush that just emptied the queue
        # may have cleared that flag meanwhile.
        full = is_disk_full(exc)
        with db.lock:
            db.pending_counts[STORE_WRITE_ERRORS] += 1
            if len(self._rows) >= OVERFLOW_SIZE:
                self._rows.popleft()
                reason = DROPPED_DISK_FULL if full or db.full else DROPPED_OVERFLOW
                db.pending_counts[reason] += 1
            self._rows.append(row)
            first = len(self._rows) == 1
        if first:  # once per episode, not once per event
            log.warning("telemetry event kept in memory, database write failed: %s", exc)

    def flush(self) -> int:
        """Move events kept in memory after a failed write into the database, up to
        :data:`_FLUSH_CHUNK` per transaction: one commit writes each page once, where a commit
        per event added WAL pages for every one and could fill again the room that was freed.
        The WAL is checkpointed and emptied first, for the same reason."""
        db = self._db
        if not self._rows:
            return 0
        db.checkpoint("TRUNCATE", wait_ms=250)
        moved = 0
        while True:
            with db.lock:
                rows = list(itertools.islice(self._rows, _FLUSH_CHUNK))
            if not rows:
                break
            params = [(i, kind, ms, utf8_size(payload), payload) for i, kind, ms, payload in rows]
            try:
                with db.write_lock:
                    _in_one_transaction(db.writer, params)
            except sqlite3.Error as exc:
                db.note_failure(exc)
                break
            with db.lock:
                for row in rows:  # unless keep() dropped it meanwhile, or clear() ran
                    if self._rows and self._rows[0] is row:
                        self._rows.popleft()
            moved += len(rows)
        if moved and not self._rows:
            db.full = None
        return moved

    def clear(self) -> int:
        """Forget every event kept in memory; returns how many there were."""
        with self._db.lock:
            count = len(self._rows)
            self._rows.clear()
        return count


def _in_one_transaction(writer: sqlite3.Connection, params: Sequence[tuple[object, ...]]) -> None:
    """Insert ``params`` rows on the (autocommit) writer connection in one transaction."""
    writer.execute("BEGIN IMMEDIATE")
    try:
        writer.executemany(_INSERT_EVENT, params)
        writer.execute("COMMIT")
    except BaseException:
        with contextlib.suppress(sqlite3.Error):
            writer.execute("ROLLBACK")
        raise
