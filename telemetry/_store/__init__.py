"""The local storage layer: the durable, bounded offline event queue and key/value state.

One database file per app (``telemetry.db`` in the data dir), in WAL mode with
``synchronous=NORMAL``. :meth:`EventStore.append` makes an event durable before it returns,
so a crash or SIGKILL of the app loses nothing: it appends one line to this process's
journal (``<data dir>/journal/*.journal``, :mod:`._journal`), which the housekeeping
thread, the uploader and every read copy into SQLite (:mod:`._ingest`: the lines and the
offset reached in one transaction; ``insert_id`` unique). A journal left by a dead process
is ingested by the next process that opens the store. Without a usable journal (no
``fcntl``, or the journal cannot be created) ``append`` commits to SQLite directly
(:mod:`._overflow`), on a writer connection whose auto-checkpoint is off so it never pays
for a WAL checkpoint. A second connection serves everything else (upload, housekeeping,
CLI, inspector); :mod:`._db` is the only module that opens either (through :mod:`._connect`).

Runtime faults never raise into the app. A corrupt file is moved aside and what can still be
read of it is copied into a fresh one (:mod:`._salvage`), at open or by the housekeeping pass
after a read or write found it corrupt; a database or journal that vanished is recreated with
what the open descriptors still hold; an unwritable data dir falls back to an in-memory
database; a failed write (disk full, locked) keeps the event in a small in-memory overflow that
is retried later. Every loss is counted in ``counters`` (:mod:`._reserve` keeps room for that
on a full disk).

Everything outside this package uses :class:`EventStore` and the names exported here.
"""

from __future__ import annotations

from telemetry._store._db import (
    DB_FILENAME,
    STORE_FILE_VANISHED,
    STORE_RECOVERED_CORRUPT,
    STORE_SALVAGE_LOST,
    STORE_SALVAGED,
    STORE_WRITE_ERRORS,
)
from telemetry._store._event_store import EventStore
from telemetry._store._ingest import JOURNAL_DIR, JOURNAL_ORPHANS, JOURNAL_TORN_LINES
from telemetry._store._overflow import DROPPED_DISK_FULL, DROPPED_OVERFLOW, OVERFLOW_SIZE
from telemetry._store._queue import (
    DEFAULT_MAX_AGE_DAYS,
    DEFAULT_MAX_BYTES,
    DEFAULT_MAX_EVENTS,
    DROPPED_AGE,
    DROPPED_CAP_BYTES,
    DROPPED_CAP_COUNT,
    DROPPED_LOG_SIZE,
    DROPPED_PURGED,
    SENT_LOG_SIZE,
    QueueStats,
    StoredEvent,
)
from telemetry._store._reports import (
    REPORTS_CAPTURED,
    REPORTS_DROPPED_CAP,
    REPORTS_SENT,
    StoredReport,
)
from telemetry._store._state import EVENT_ID_BLOCK, peek_state

__all__ = [
    "DB_FILENAME",
    "DEFAULT_MAX_AGE_DAYS",
    "DEFAULT_MAX_BYTES",
    "DEFAULT_MAX_EVENTS",
    "DROPPED_AGE",
    "DROPPED_CAP_BYTES",
    "DROPPED_CAP_COUNT",
    "DROPPED_DISK_FULL",
    "DROPPED_LOG_SIZE",
    "DROPPED_OVERFLOW",
    "DROPPED_PURGED",
    "EVENT_ID_BLOCK",
    "JOURNAL_DIR",
    "JOURNAL_ORPHANS",
    "JOURNAL_TORN_LINES",
    "OVERFLOW_SIZE",
    "REPORTS_CAPTURED",
    "REPORTS_DROPPED_CAP",
    "REPORTS_SENT",
    "SENT_LOG_SIZE",
    "STORE_FILE_VANISHED",
    "STORE_RECOVERED_CORRUPT",
    "STORE_SALVAGED",
    "STORE_SALVAGE_LOST",
    "STORE_WRITE_ERRORS",
    "EventStore",
    "QueueStats",
    "StoredEvent",
    "StoredReport",
    "peek_state",
]
