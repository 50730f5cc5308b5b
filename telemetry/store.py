"""EventStore: the one place that talks to SQLite (the durable, bounded offline event queue).

One database file per app (``telemetry.db`` in the data dir), in WAL mode with
``synchronous=NORMAL``. :meth:`EventStore.append` makes an event durable before it returns,
so a crash or SIGKILL of the app loses nothing: it appends one line to this process's
journal (``<data dir>/journal/*.journal``, see :mod:`telemetry._journal`), which the
housekeeping thread, the uploader and every read copy into SQLite (the line and the offset
reached in one transaction; ``insert_id`` unique). A journal left by a dead process is
ingested by the next process that opens the store. Without a usable journal (no ``fcntl``,
or the journal cannot be created) ``append`` commits to SQLite directly, on a writer
connection whose auto-checkpoint is off so it never pays for a WAL checkpoint. A background
connection serves everything else (upload, housekeeping, CLI, inspector).

Runtime faults never raise into the app. A corrupt file is moved aside and a fresh one
created; an unwritable data dir falls back to an in-memory database; a failed write (disk
full, locked) keeps the event in a small in-memory overflow that is retried later. Every loss
is counted in ``counters``.
"""

from __future__ import annotations

import collections
import contextlib
import gzip
import json
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import psutil
import sqlite_utils

from telemetry import _journal, _schema, _sqlite
from telemetry.errors import StoreError
from telemetry.events import encode_json, utf8_size

log = logging.getLogger("telemetry.store")

DB_FILENAME: Final = "telemetry.db"
DEFAULT_MAX_EVENTS: Final = 20_000
DEFAULT_MAX_BYTES: Final = 10 * 1024 * 1024
DEFAULT_MAX_AGE_DAYS: Final = 30
DROPPED_LOG_SIZE: Final = 1_000
OVERFLOW_SIZE: Final = 1_000
SENT_LOG_SIZE: Final = 100
EVENT_ID_BLOCK: Final = 10_000
_DAY_MS: Final = 86_400_000
_INSERT_EVENT: Final = (
    "INSERT OR IGNORE INTO events(insert_id, event_type, time, size, payload)"
    " VALUES (?, ?, ?, ?, ?)"
)
#: Copies one journal line (insert_id, time, event type JSON, event JSON); SQLite checks the
#: JSON in C without the GIL, and OR IGNORE skips a damaged line (NULL) or a copied one.
_INGEST_LINE: Final = (
    "INSERT OR IGNORE INTO events(insert_id, event_type, time, size, payload)"
    " SELECT ?1, CASE WHEN json_valid(?3) THEN json_extract(?3, '$') END,"
    " CAST(?2 AS INTEGER), length(CAST(?4 AS BLOB)), ?4 WHERE json_valid(?4)"
)
_SAVE_PROGRESS: Final = (
    "INSERT INTO journal_progress(file, offset) VALUES (?, ?)"
    " ON CONFLICT(file) DO UPDATE SET offset = excluded.offset"
)
JOURNAL_DIR: Final = "journal"

# Counter names (also shown by `telemetry status`).
DROPPED_CAP_COUNT: Final = "dropped_cap_count"
DROPPED_CAP_BYTES: Final = "dropped_cap_bytes"
DROPPED_AGE: Final = "dropped_age"
DROPPED_OVERFLOW: Final = "dropped_overflow"
DROPPED_PURGED: Final = "dropped_purged"
STORE_WRITE_ERRORS: Final = "store_write_errors"
STORE_RECOVERED_CORRUPT: Final = "store_recovered_corrupt"
JOURNAL_TORN_LINES: Final = "journal_torn_lines"
JOURNAL_ORPHANS: Final = "journal_orphans_ingested"


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


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


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
        self.path: Path | None = self.data_dir / DB_FILENAME if self.data_dir else None
        self.max_events = max_events
        self.max_bytes = max_bytes
        self.max_age_ms = int(max_age_days * _DAY_MS)
        #: Why the store runs in memory or was rebuilt, if it did; ``None`` when healthy.
        self.degraded: str | None = None
        self._write_lock = threading.Lock()
        self._lock = threading.RLock()
        self._overflow: collections.deque[tuple[str, str, int, str]] = collections.deque()
        self._pending_counts: collections.Counter[str] = collections.Counter()
        self._closed = False
        self._writer, self._conn = self._open()
        self.db = sqlite_utils.Database(self._conn)
        self._ingest_lock = threading.Lock()
        self._journal: _journal.JournalFile | None = None
        self._ingested = 0  # bytes of our journal copied into SQLite
        if self.path is not None and not self.in_memory:
            self._journal = self._new_journal()
            self.ingest_orphans()

    @property
    def in_memory(self) -> bool:
        """True when nothing is written to disk (no data dir, or the file was unusable)."""
        return self.path is None or (self.degraded or "").startswith("in memory")

    # ------------------------------------------------------------------ the journal

    @property
    def journal_dir(self) -> Path | None:
        """Where the per-process journals live (``None`` for an in-memory store)."""
        return self.data_dir / JOURNAL_DIR if self.data_dir is not None else None

    def _new_journal(self) -> _journal.JournalFile | None:
        directory = self.journal_dir
        if directory is None or not _journal.AVAILABLE:
            return None
        try:
            return _journal.JournalFile(directory)
        except OSError as exc:
            log.warning("telemetry journal unavailable (%s); writing to SQLite directly", exc)
            return None

    def sync_journal(self) -> int:
        """Copy what this process appended to its journal into SQLite; returns how many
        events were copied. Swaps in a fresh journal file once the current one is large."""
        journal = self._journal
        if journal is None or journal.size <= self._ingested:
            return 0
        with self._ingest_lock:
            journal = self._journal
            if journal is None:
                return 0
            copied = self._ingest_own(journal)
            if journal.size >= _journal.ROTATE_BYTES and self._ingested == journal.size:
                self._rotate(journal)
            return copied

    def _ingest_own(self, journal: _journal.JournalFile) -> int:
        copied = 0
        target = journal.size  # what was written by now: never chase a writer that keeps going
        while target > self._ingested:
            try:
                data = journal.read_from(self._ingested)
            except OSError as exc:
                log.warning("telemetry journal unreadable: %s", exc)
                break
            if not data:
                break
            done = self._copy_lines(journal.path.name, data, self._ingested + len(data))
            if done is None:
                break
            self._ingested += len(data)
            copied += done
        return copied

    def _swap_journal(self, old: _journal.JournalFile, new: _journal.JournalFile | None) -> None:
        """Appends go to ``new`` (``None``: to SQLite directly) from now on."""
        with old.lock:  # an append in progress finishes in the old file first
            self._journal = new

    def _rotate(self, old: _journal.JournalFile) -> None:
        new = self._new_journal()
        if new is None:
            return
        self._swap_journal(old, new)
        self._ingest_own(old)
        if self._ingested >= old.size:
            old.close(remove=True)
            self._forget_progress(old.path.name)
        else:  # the database refused the rest: leave it as an orphan for later
            old.close(remove=False)
        self._ingested = 0

    def _copy_lines(self, name: str, data: bytes, end: int) -> int | None:
        """Insert the events in ``data`` and record ``end`` as ``name``'s offset, in one
        transaction; returns how many lines were events, or None when the write failed."""
        lines, torn = _journal.split_lines(data)

        def work(conn: sqlite3.Connection) -> int:
            before = conn.total_changes
            conn.executemany(_INGEST_LINE, lines)
            copied = conn.total_changes - before
            conn.execute(_SAVE_PROGRESS, (name, end))
            if torn:
                self._bump(conn, JOURNAL_TORN_LINES, torn)
            return copied

        result = self._write(work, None)
        return None if result is None else int(result)

    def _progress(self, name: str) -> int:
        rows = self._query("SELECT offset FROM journal_progress WHERE file = ?", (name,))
        return int(rows[0][0]) if rows else 0

    def _forget_progress(self, name: str) -> None:
        self._write(
            lambda c: c.execute("DELETE FROM journal_progress WHERE file = ?", (name,)), None
        )

    def _claimed_orphans(self) -> Iterator[tuple[Path, int]]:
        """Journals no live process holds, each locked by us while the caller handles it."""
        directory = self.journal_dir
        if directory is None or not _journal.AVAILABLE or not directory.exists():
            return
        own = self._journal.path if self._journal is not None else None
        for path in _journal.orphans(directory, own):
            with _journal.claim(path) as fd:
                if fd is not None:
                    yield path, fd

    def ingest_orphans(self) -> int:
        """Copy the journals of processes that died into SQLite and remove them."""
        copied = 0
        with self._ingest_lock:
            for path, fd in self._claimed_orphans():
                offset = self._progress(path.name)
                failed = False
                while data := _journal.read_from(fd, offset):
                    done = self._copy_lines(path.name, data, offset + len(data))
                    if done is None:
                        failed = True
                        break
                    offset += len(data)
                    copied += done
                if failed:  # the database refused it: try again at the next pass
                    continue
                with contextlib.suppress(OSError):
                    path.unlink()
                self._forget_progress(path.name)
                self.increment(JOURNAL_ORPHANS)
        return copied

    def _discard_journals(self) -> list[str]:
        """Delete every journal we can claim without copying it (opt-out); returns their
        names."""
        removed: list[str] = []
        with self._ingest_lock:
            old = self._journal
            if old is not None:
                self._swap_journal(old, self._new_journal())
                old.close(remove=True)
                removed.append(old.path.name)
                self._ingested = 0
            for path, _fd in self._claimed_orphans():
                with contextlib.suppress(OSError):
                    path.unlink()
                removed.append(path.name)
        return removed

    # ------------------------------------------------------------------ opening and recovery

    def _open(self) -> tuple[sqlite3.Connection, sqlite3.Connection]:
        if self.path is None:
            return self._open_memory("no data dir given")
        try:
            assert self.data_dir is not None
            self.data_dir.mkdir(parents=True, exist_ok=True)
            return self._open_file(self.path)
        except sqlite3.DatabaseError as exc:
            if _is_corruption(exc):
                moved = self._move_aside(self.path)
                log.error(
                    "telemetry database %s is corrupt (%s); moved to %s", self.path, exc, moved
                )
                try:
                    writer, conn = self._open_file(self.path)
                except (sqlite3.Error, OSError) as again:
                    return self._open_memory(f"cannot recreate database: {again}")
                self.degraded = f"corrupt database moved to {moved.name}"
                self._bump(conn, STORE_RECOVERED_CORRUPT, 1)
                return writer, conn
            return self._open_memory(f"cannot open {self.path}: {exc}")
        except OSError as exc:
            return self._open_memory(f"cannot create {self.data_dir}: {exc}")

    def _open_file(self, path: Path) -> tuple[sqlite3.Connection, sqlite3.Connection]:
        conn = _connect(str(path), busy_ms=5_000)
        try:
            _sqlite.enter_wal(conn, timeout=5.0)
            check = conn.execute("PRAGMA quick_check").fetchone()[0]
            if check != "ok":
                raise sqlite3.DatabaseError(f"database disk image is malformed: {check}")
            _schema.migrate(conn)
            # Probe that we can really write (a read-only file or dir fails here, not later).
            conn.execute("INSERT OR IGNORE INTO counters(name, value) VALUES ('opened', 0)")
            writer = _connect(str(path), busy_ms=1_000)
            writer.execute("PRAGMA wal_autocheckpoint=0")
        except BaseException:
            conn.close()
            raise
        return writer, conn

    def _open_memory(self, reason: str) -> tuple[sqlite3.Connection, sqlite3.Connection]:
        log.warning("telemetry store runs in memory only: %s", reason)
        self.degraded = f"in memory only: {reason}"
        uri = f"file:telemetry-{id(self)}?mode=memory&cache=shared"
        conn = _connect(uri, busy_ms=5_000, uri=True)
        _schema.migrate(conn)
        writer = _connect(uri, busy_ms=1_000, uri=True)
        return writer, conn

    @staticmethod
    def _move_aside(path: Path) -> Path:
        stamp = time.strftime("%Y%m%dT%H%M%S")
        target = path.with_name(f"{path.name}.corrupt-{stamp}")
        for suffix in ("", "-wal", "-shm"):
            source = Path(f"{path}{suffix}")
            if source.exists():
                with contextlib.suppress(OSError):
                    os.replace(source, Path(f"{target}{suffix}"))
        return target

    def recover(self) -> None:
        """Reopen after a runtime fault; a database found corrupt is moved aside first."""
        with self._write_lock, self._lock:
            for conn in (self._writer, self._conn):
                with contextlib.suppress(sqlite3.Error):
                    conn.close()
            self.degraded = None
            self._writer, self._conn = self._open()
            self.db = sqlite_utils.Database(self._conn)

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
        journal = self._journal
        if journal is not None:
            type_json = event_type_json or encode_json(event_type)
            try:
                journal.append(_journal.encode_line(insert_id, time_ms, type_json, payload))
                return True
            except OSError as exc:
                self._keep_in_overflow((insert_id, event_type, time_ms, payload), exc)
                return False
        try:
            with self._write_lock:
                self._writer.execute(
                    _INSERT_EVENT, (insert_id, event_type, time_ms, utf8_size(payload), payload)
                )
            return True
        except sqlite3.Error as exc:
            self._keep_in_overflow((insert_id, event_type, time_ms, payload), exc)
            return False

    def _keep_in_overflow(self, row: tuple[str, str, int, str], exc: Exception) -> None:
        with self._lock:
            self._pending_counts[STORE_WRITE_ERRORS] += 1
            if len(self._overflow) >= OVERFLOW_SIZE:
                self._overflow.popleft()
                self._pending_counts[DROPPED_OVERFLOW] += 1
            self._overflow.append(row)
        log.warning("telemetry event kept in memory, database write failed: %s", exc)

    @property
    def overflow_size(self) -> int:
        """Events waiting in memory because the database could not take them."""
        return len(self._overflow)

    # ------------------------------------------------------------------ reading the queue

    def pending(self, limit: int = 500, max_bytes: int = 512 * 1024) -> list[StoredEvent]:
        """The oldest queued events, at most ``limit`` of them and ``max_bytes`` in total.

        The first event is returned even when it alone is larger than ``max_bytes``.
        """
        self.sync_journal()
        rows = self._query(
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

    def iter_events(self, after_id: int = 0, *, chunk: int = 1_000) -> Iterator[StoredEvent]:
        """Every queued event with an id above ``after_id``, oldest first."""
        self.sync_journal()
        last = after_id
        while True:
            rows = self._query(
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
        """Queue depth, bytes and the oldest event's time."""
        self.sync_journal()
        rows = self._query("SELECT count(*), coalesce(sum(size), 0), min(time) FROM events")
        count, size, oldest = rows[0] if rows else (0, 0, None)
        return QueueStats(int(count) + len(self._overflow), int(size), oldest)

    def dropped(self, limit: int = 100) -> list[dict[str, Any]]:
        """The most recently dropped events, newest first, with the reason."""
        rows = self._query(
            "SELECT event_id, insert_id, event_type, reason, dropped_at, payload"
            " FROM dropped_events ORDER BY id DESC LIMIT ?",
            (limit,),
        )
        keys = ("event_id", "insert_id", "event_type", "reason", "dropped_at", "payload")
        return [dict(zip(keys, row, strict=True)) for row in rows]

    # ------------------------------------------------------------------ removing events

    def delete(self, ids: Sequence[int]) -> int:
        """Remove events (after delivery); returns how many were removed."""
        if not ids:
            return 0

        def work(conn: sqlite3.Connection) -> int:
            return sum(
                conn.execute(
                    f"DELETE FROM events WHERE id IN ({','.join('?' * len(part))})", part
                ).rowcount
                for part in _chunks(ids, 500)
            )

        return int(self._write(work, 0))

    def drop(self, ids: Sequence[int], reason: str) -> int:
        """Remove events that will never be sent, logging them and counting ``reason``."""
        if not ids:
            return 0

        def work(conn: sqlite3.Connection) -> int:
            removed = 0
            for part in _chunks(ids, 500):
                marks = ",".join("?" * len(part))
                removed += self._log_dropped(conn, f"id IN ({marks})", part, reason)
            return removed

        return int(self._write(work, 0))

    def purge(self) -> int:
        """Delete every queued event (and the in-memory overflow); returns how many."""
        self.sync_journal()
        with self._lock:
            overflow = len(self._overflow)
            self._overflow.clear()
        removed = int(self._write(lambda conn: conn.execute("DELETE FROM events").rowcount, 0))
        self.increment(DROPPED_PURGED, removed + overflow)
        return removed + overflow

    def erase(self, *, keep_state: Sequence[str] = ()) -> int:
        """Forget everything recorded (opt-out): queued events, the overflow, counters, the
        dropped and sent logs, linked device ids, experiment assignments, and every state key
        except ``keep_state``; one transaction. Returns how many queued events went unsent."""
        unsent = self._discard_journals()
        with self._lock:
            overflow = len(self._overflow)
            self._overflow.clear()
            self._pending_counts.clear()
        keep = tuple(keep_state)

        def work(conn: sqlite3.Connection) -> int:
            for name in unsent:
                conn.execute("DELETE FROM journal_progress WHERE file = ?", (name,))
            removed = int(conn.execute("DELETE FROM events").rowcount)
            for table in ("dropped_events", "sent_batches", "linked_devices", "experiments"):
                conn.execute(f"DELETE FROM {table}")
            conn.execute("DELETE FROM counters WHERE name != 'opened'")
            marks = ",".join("?" * len(keep)) or "NULL"
            conn.execute(f"DELETE FROM state WHERE key NOT IN ({marks})", keep)
            return removed

        return int(self._write(work, 0)) + overflow

    def enforce_limits(self, now_ms: int | None = None) -> dict[str, int]:
        """Apply the age, count and byte caps, oldest first; return drops per reason.

        Cheap read-only checks come first, so the write lock is taken only when something
        must go (appends on the caller's thread are not held up by a pass with nothing to do).
        """
        self.sync_journal()
        cutoff = (_now_ms() if now_ms is None else now_ms) - self.max_age_ms
        drops = {DROPPED_AGE: 0, DROPPED_CAP_COUNT: 0, DROPPED_CAP_BYTES: 0}
        oldest = self._query("SELECT time FROM events ORDER BY id LIMIT 1")
        if oldest and oldest[0][0] < cutoff:
            drops[DROPPED_AGE] = self._write(
                lambda c: self._log_dropped(
                    c,
                    "id <= (SELECT max(id) FROM events WHERE time < ?)",
                    (cutoff,),
                    DROPPED_AGE,
                ),
                0,
            )
        rows = self._query("SELECT count(*), coalesce(sum(size), 0) FROM events")
        count, size = rows[0] if rows else (0, 0)
        if count > self.max_events:
            drops[DROPPED_CAP_COUNT] = self._write(
                lambda c: self._log_dropped(
                    c,
                    "id <= (SELECT id FROM events ORDER BY id DESC LIMIT 1 OFFSET ?)",
                    (self.max_events,),
                    DROPPED_CAP_COUNT,
                ),
                0,
            )
            size = self._query("SELECT coalesce(sum(size), 0) FROM events")[0][0]
        if size > self.max_bytes:
            drops[DROPPED_CAP_BYTES] = self._write(
                lambda c: self._log_dropped(
                    c,
                    "id <= (SELECT id FROM (SELECT id, sum(size) OVER (ORDER BY id DESC) AS acc"
                    " FROM events) WHERE acc > ? ORDER BY id DESC LIMIT 1)",
                    (self.max_bytes,),
                    DROPPED_CAP_BYTES,
                ),
                0,
            )
        return drops

    def _log_dropped(
        self, conn: sqlite3.Connection, where: str, params: Sequence[Any], reason: str
    ) -> int:
        now = _now_ms()
        conn.execute(
            "INSERT INTO dropped_events(event_id, insert_id, event_type, reason, dropped_at,"
            " payload) SELECT json_extract(payload, '$.event_id'), insert_id, event_type, ?, ?,"
            f" payload FROM (SELECT * FROM events WHERE {where} ORDER BY id DESC LIMIT ?)"
            " ORDER BY id",  # only the newest drops fit in the log: copy no more than that
            (reason, now, *params, DROPPED_LOG_SIZE),
        )
        removed: int = conn.execute(f"DELETE FROM events WHERE {where}", tuple(params)).rowcount
        if removed:
            self._bump(conn, reason, removed)
            conn.execute(
                "DELETE FROM dropped_events WHERE id <= (SELECT max(id) FROM dropped_events) - ?",
                (DROPPED_LOG_SIZE,),
            )
        return removed

    # ------------------------------------------------------------------ housekeeping

    def flush_overflow(self) -> int:
        """Move events kept in memory after a failed write into the database."""
        moved = 0
        while self._overflow:
            with self._lock:
                if not self._overflow:
                    break
                row = self._overflow[0]
            insert_id, event_type, time_ms, payload = row
            try:
                with self._write_lock:
                    self._writer.execute(
                        _INSERT_EVENT, (insert_id, event_type, time_ms, utf8_size(payload), payload)
                    )
            except sqlite3.Error:
                break
            with self._lock:
                if self._overflow and self._overflow[0] is row:
                    self._overflow.popleft()
            moved += 1
        return moved

    def flush_counters(self) -> None:
        """Persist counters that could not be written when they happened."""
        with self._lock:
            pending = dict(self._pending_counts)
            self._pending_counts.clear()
        for name, value in pending.items():
            self.increment(name, value)

    def checkpoint(self, mode: str = "PASSIVE") -> None:
        """Copy the WAL back into the database file (off the caller's thread)."""
        if self.path is None or mode not in {"PASSIVE", "FULL", "RESTART", "TRUNCATE"}:
            return
        try:
            with self._lock:  # a checkpoint cannot run inside a transaction
                self._conn.execute(f"PRAGMA wal_checkpoint({mode})").fetchall()
        except sqlite3.Error as exc:
            log.debug("telemetry checkpoint skipped: %s", exc)

    def maintain(self) -> None:
        """One housekeeping pass: journals, overflow, pending counters, caps, checkpoint."""
        self.sync_journal()
        self.ingest_orphans()
        self.flush_overflow()
        self.flush_counters()
        self.enforce_limits()
        self.checkpoint()

    # ------------------------------------------------------------------ state and counters

    def get_state(self, key: str, default: Any = None) -> Any:
        """A JSON value from the ``state`` table."""
        rows = self._query("SELECT value FROM state WHERE key = ?", (key,))
        return json.loads(rows[0][0]) if rows else default

    def set_state(self, key: str, value: Any) -> None:
        """Store a JSON value (``None`` deletes the key)."""
        self._write(lambda conn: _put_state(conn, key, value), None)

    def update_state(self, key: str, change: Callable[[Any], Any]) -> Any:
        """Replace the value under ``key`` (``None`` if absent) by ``change(value)`` in one
        transaction, so no other thread or process sharing the file can slip a write in
        between; a ``None`` result deletes the key. ``change`` must be quick and pure (it may
        run under the store's lock). Returns the new value, or ``None`` when the database
        could not be written (logged and counted)."""

        def work(conn: sqlite3.Connection) -> Any:
            row = conn.execute("SELECT value FROM state WHERE key = ?", (key,)).fetchone()
            value = change(json.loads(row[0]) if row else None)
            _put_state(conn, key, value)
            return value

        return self._write(work, None)

    def setdefault_state(self, key: str, value: Any) -> Any:
        """Store ``value`` under ``key`` unless a value is there already; returns the stored
        value. Atomic across processes sharing the file, so two that start together agree
        (e.g. on one device id). Returns ``value`` if the database cannot be written."""
        stored = self.update_state(key, lambda current: value if current is None else current)
        return value if stored is None else stored

    def state(self) -> dict[str, Any]:
        """Every state key and value."""
        return {k: json.loads(v) for k, v in self._query("SELECT key, value FROM state")}

    def increment(self, name: str, amount: int = 1) -> None:
        """Add to a persisted counter (kept in memory until the database accepts it)."""
        if amount <= 0:
            return
        try:
            with self._lock:
                self._bump(self._conn, name, amount)
        except sqlite3.Error:
            with self._lock:
                self._pending_counts[name] += amount

    def counters(self) -> dict[str, int]:
        """Persisted counters plus any not yet written."""
        result = {k: int(v) for k, v in self._query("SELECT name, value FROM counters")}
        result.pop("opened", None)
        with self._lock:
            for name, value in self._pending_counts.items():
                result[name] = result.get(name, 0) + value
        return result

    def reset_counters(self) -> None:
        """Forget every counter."""
        with self._lock:
            self._pending_counts.clear()
        self._write(lambda c: c.execute("DELETE FROM counters WHERE name != 'opened'"), None)

    @staticmethod
    def _bump(conn: sqlite3.Connection, name: str, amount: int) -> None:
        conn.execute(
            "INSERT INTO counters(name, value) VALUES (?, ?)"
            " ON CONFLICT(name) DO UPDATE SET value = value + excluded.value",
            (name, amount),
        )

    # ------------------------------------------------------------------ event ids

    def reserve_event_ids(self, block: int = EVENT_ID_BLOCK) -> int:
        """Reserve ``block`` event ids for this process; returns the first.

        The high-water mark only grows, so ids are never reused, across processes too.
        """

        def work(conn: sqlite3.Connection) -> int:
            row = conn.execute("SELECT value FROM state WHERE key = 'event_id_hw'").fetchone()
            high = int(json.loads(row[0])) if row else 0
            conn.execute(
                "INSERT INTO state(key, value) VALUES ('event_id_hw', ?)"
                " ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                (str(high + block),),
            )
            return high + 1

        first = self._write(work, None)
        if first is None:  # the database is failing: continue from a time-based id
            return int(time.time() * 1000) * 1000
        return int(first)

    # ------------------------------------------------------------------ upload lease and log

    def acquire_lease(self, owner: str, ttl_ms: int, *, now_ms: int | None = None) -> bool:
        """Take or renew the upload lease for ``owner``; False when another live uploader
        (in this or another process) holds it."""
        now = _now_ms() if now_ms is None else now_ms
        pid = os.getpid()

        def work(conn: sqlite3.Connection) -> bool:
            row = conn.execute("SELECT owner, pid, expires_at FROM upload_lease").fetchone()
            if row is not None and row[0] != owner and row[2] > now and _pid_alive(row[1]):
                return False
            conn.execute(
                "INSERT INTO upload_lease(id, owner, pid, expires_at) VALUES (1, ?, ?, ?)"
                " ON CONFLICT(id) DO UPDATE SET owner = excluded.owner, pid = excluded.pid,"
                " expires_at = excluded.expires_at",
                (owner, pid, now + ttl_ms),
            )
            return True

        return bool(self._write(work, False))

    def release_lease(self, owner: str) -> None:
        """Give the upload lease up if ``owner`` holds it."""
        self._write(lambda c: c.execute("DELETE FROM upload_lease WHERE owner = ?", (owner,)), None)

    def ack(
        self, ids: Sequence[int], status: int, body_gzip: bytes, *, counter: str | None = None
    ) -> int:
        """Delete delivered events, log the batch in the sent ring buffer and add how many
        were removed to ``counter``, atomically; returns how many were removed."""

        def work(conn: sqlite3.Connection) -> int:
            removed = 0
            for part in _chunks(ids, 500):
                marks = ",".join("?" * len(part))
                removed += conn.execute(f"DELETE FROM events WHERE id IN ({marks})", part).rowcount
            if removed == 0:  # erased meanwhile (opt-out) or acked by another process
                return 0
            if counter is not None:
                self._bump(conn, counter, removed)
            conn.execute(
                "INSERT INTO sent_batches(sent_at, status, event_count, body) VALUES (?, ?, ?, ?)",
                (_now_ms(), status, len(ids), body_gzip),
            )
            conn.execute(
                "DELETE FROM sent_batches WHERE id <= (SELECT max(id) FROM sent_batches) - ?",
                (SENT_LOG_SIZE,),
            )
            return removed

        return int(self._write(work, 0))

    def sent_batches(self, limit: int = SENT_LOG_SIZE) -> list[dict[str, Any]]:
        """The last sent batches, newest first: ``sent_at``, ``status``, ``events`` (as sent)."""
        rows = self._query(
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
                "events": json.loads(gzip.decompress(body)),
            }
            for row_id, sent_at, status, count, body in rows
        ]

    # ------------------------------------------------------------------ linked ids, experiments

    def linked_device_ids(self) -> list[str]:
        """Device ids linked through URLs, newest first."""
        rows = self._query("SELECT device_id FROM linked_devices ORDER BY seen_at DESC, rowid DESC")
        return [r[0] for r in rows]

    def replace_linked_device_ids(self, ids: Sequence[str]) -> None:
        """Store ``ids`` (newest first) as the linked device ids."""
        now = _now_ms()

        def work(conn: sqlite3.Connection) -> None:
            conn.execute("DELETE FROM linked_devices")
            conn.executemany(
                "INSERT OR IGNORE INTO linked_devices(device_id, seen_at) VALUES (?, ?)",
                [(device_id, now - index) for index, device_id in enumerate(ids)],
            )

        self._write(work, None)

    def experiment_assignment(self, name: str, device_id: str) -> str | None:
        """The stored variation of experiment ``name`` for ``device_id``, if any."""
        rows = self._query(
            "SELECT variation FROM experiments WHERE name = ? AND device_id = ?", (name, device_id)
        )
        return str(rows[0][0]) if rows else None

    def assign_experiment(self, name: str, device_id: str, variation: str) -> str:
        """Store a variation unless one exists; return the one that is stored."""

        def work(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT OR IGNORE INTO experiments(name, device_id, variation, assigned_at)"
                " VALUES (?, ?, ?, ?)",
                (name, device_id, variation, _now_ms()),
            )

        self._write(work, None)
        return self.experiment_assignment(name, device_id) or variation

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
        import sqlite_utils  # only the tools that inspect a database pay for its import

        self.sync_journal()
        with self._lock:
            self._conn.set_authorizer(_read_only_authorizer)
            try:
                db = sqlite_utils.Database(self._conn, recursive_triggers=False)
                rows = db.query(sql, dict(params) if isinstance(params, Mapping) else params)
                return [dict(row) for row in rows]
            except sqlite3.Error as exc:
                raise StoreError(f"query refused or failed: {exc}") from None
            finally:
                self._conn.set_authorizer(None)

    # ------------------------------------------------------------------ plumbing

    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        try:
            with self._lock:
                return self._conn.execute(sql, tuple(params)).fetchall()
        except sqlite3.Error as exc:
            log.warning("telemetry store read failed: %s", exc)
            return []

    def _write(self, work: Any, default: Any) -> Any:
        """Run ``work(conn)`` in one transaction; log and return ``default`` on failure."""
        try:
            with self._lock:
                self._conn.execute("BEGIN IMMEDIATE")
                try:
                    result = work(self._conn)
                    self._conn.execute("COMMIT")
                except BaseException:
                    with contextlib.suppress(sqlite3.Error):
                        self._conn.execute("ROLLBACK")
                    raise
                return result
        except sqlite3.Error as exc:
            log.warning("telemetry store write failed: %s", exc)
            with self._lock:
                self._pending_counts[STORE_WRITE_ERRORS] += 1
            return default

    def close(self) -> None:
        """Flush what is in memory, checkpoint and close both connections."""
        if self._closed:
            return
        self._closed = True
        journal = self._journal
        if journal is not None:
            with self._ingest_lock:
                self._ingest_own(journal)
                done = self._ingested >= journal.size
                journal.close(remove=done)
                self._journal = None
            if done:
                self._forget_progress(journal.path.name)
        with contextlib.suppress(sqlite3.Error):
            self.flush_overflow()
            self.flush_counters()
            self.checkpoint("TRUNCATE")
        with self._write_lock, self._lock:
            for conn in (self._writer, self._conn):
                with contextlib.suppress(sqlite3.Error):
                    conn.close()

    def __enter__(self) -> EventStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _connect(target: str, *, busy_ms: int, uri: bool = False) -> sqlite3.Connection:
    conn = sqlite3.connect(
        target, isolation_level=None, check_same_thread=False, uri=uri, timeout=busy_ms / 1000
    )
    conn.execute(f"PRAGMA busy_timeout={busy_ms}")
    conn.execute("PRAGMA synchronous=NORMAL")
    return conn


def _put_state(conn: sqlite3.Connection, key: str, value: Any) -> None:
    """Write one ``state`` row (``None`` deletes it); inside the caller's transaction."""
    if value is None:
        conn.execute("DELETE FROM state WHERE key = ?", (key,))
        return
    conn.execute(
        "INSERT INTO state(key, value) VALUES (?, ?)"
        " ON CONFLICT(key) DO UPDATE SET value = excluded.value",
        (key, json.dumps(value, separators=(",", ":"))),
    )


#: What a read-only query may do; sqlite-utils wraps each query in a savepoint.
_READ_ACTIONS: Final = frozenset(
    {
        sqlite3.SQLITE_SELECT,
        sqlite3.SQLITE_READ,
        sqlite3.SQLITE_FUNCTION,
        sqlite3.SQLITE_RECURSIVE,
        sqlite3.SQLITE_SAVEPOINT,
    }
)


def _read_only_authorizer(action: int, *_args: object) -> int:
    return sqlite3.SQLITE_OK if action in _READ_ACTIONS else sqlite3.SQLITE_DENY


def peek_state(data_dir: Path, keys: Sequence[str]) -> dict[str, Any]:
    """The stored values of ``keys`` in ``data_dir``'s database, read without writing anything
    (not even a lock file): used when the environment vetoes telemetry and the files must
    stay untouched. Missing or unreadable values are absent."""
    db_path = data_dir / DB_FILENAME
    if not db_path.exists() or not keys:
        return {}
    marks = ",".join("?" * len(keys))
    try:
        conn = sqlite3.connect(f"file:{db_path}?mode=ro&immutable=1", uri=True)
        try:
            rows = conn.execute(
                f"SELECT key, value FROM state WHERE key IN ({marks})", tuple(keys)
            ).fetchall()
        finally:
            conn.close()
    except sqlite3.Error:
        return {}
    found: dict[str, Any] = {}
    for key, value in rows:
        with contextlib.suppress(ValueError):
            found[key] = json.loads(value)
    return found


def _pid_alive(pid: int) -> bool:
    return pid == os.getpid() or psutil.pid_exists(pid)


def _is_corruption(exc: sqlite3.DatabaseError) -> bool:
    text = str(exc).lower()
    return "malformed" in text or "not a database" in text


def _chunks(items: Sequence[int], size: int) -> Iterator[Sequence[int]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
