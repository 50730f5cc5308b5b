"""The connection pair to ``telemetry.db``: the only code of the store that opens SQLite.

:class:`Database` opens the file (WAL, ``synchronous=NORMAL``, schema migrated), detects a
corrupt file and moves it aside, falls back to an in-memory database when the data dir is
unusable, reopens after a runtime fault, and runs every query and transaction of the store
(:meth:`Database.query`, :meth:`Database.write`), logging failures instead of raising them
into the app. It also holds the counters that could not be written yet, so that every loss
is counted even while the database refuses writes.

Two connections: ``writer`` serves only appends made straight to SQLite (when there is no
journal) and has auto-checkpoint off, so the caller's thread never pays for a checkpoint;
``conn`` serves everything else. ``write_lock`` guards ``writer``; ``lock`` (re-entrant)
guards ``conn`` and the in-memory state of every piece of the store.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Final, TypeVar

from telemetry._store import _salvage, _schema
from telemetry._store._connect import (
    connect,
    connect_read_only,
    enter_wal,
    is_corruption,
    is_disk_full,
    move_aside,
)
from telemetry.errors import StoreError

# One logger for every module of the store, so an app filters or silences it by one name.
log = logging.getLogger("telemetry.store")

_T = TypeVar("_T")
_D = TypeVar("_D")

DB_FILENAME: Final = "telemetry.db"
#: How long the main connection waits for another process's lock.
_BUSY_MS: Final = 5_000

# Counter names this module increments itself (also shown by `telemetry status`).
STORE_WRITE_ERRORS: Final = "store_write_errors"
STORE_RECOVERED_CORRUPT: Final = "store_recovered_corrupt"
#: Events carried into a fresh file after corruption or a vanished file, and those lost.
STORE_SALVAGED: Final = "store_salvaged_events"
STORE_SALVAGE_LOST: Final = "store_salvage_lost"
STORE_FILE_VANISHED: Final = "store_file_vanished"

#: A row in ``counters`` that proves the file is writable when it is opened; not a counter.
OPENED_ROW: Final = "opened"


def now_ms() -> int:
    """Wall-clock time in UTC milliseconds."""
    return time.time_ns() // 1_000_000


def bump(conn: sqlite3.Connection, name: str, amount: int) -> None:
    """Add ``amount`` to the persisted counter ``name`` (inside the caller's transaction)."""
    conn.execute(
        "INSERT INTO counters(name, value) VALUES (?, ?)"
        " ON CONFLICT(name) DO UPDATE SET value = value + excluded.value",
        (name, amount),
    )


class Database:
    """The open connection pair of one store, its locks and its transaction helpers.

    Args:
        data_dir: directory of ``telemetry.db`` (created if missing); ``None`` keeps
            everything in memory.
    """

    def __init__(self, data_dir: Path | None) -> None:
        self.data_dir = data_dir
        self.path: Path | None = data_dir / DB_FILENAME if data_dir is not None else None
        #: Why the store runs in memory or was rebuilt, if it did; ``None`` when healthy.
        self.degraded: str | None = None
        #: Set when a read or write found the file corrupt: housekeeping recovers it.
        self.corrupt: str | None = None
        #: Set while writes fail for lack of space (cleared by the next write that works).
        self.full: str | None = None
        self._file_id: tuple[int, int] | None = None
        self.write_lock = threading.Lock()
        self.lock = threading.RLock()
        #: Counter increments the database could not take yet (written by the next flush).
        self.pending_counts: collections.Counter[str] = collections.Counter()
        self.writer, self.conn = self._open()

    @property
    def in_memory(self) -> bool:
        """True when nothing is written to disk (no data dir, or the file was unusable)."""
        return self.path is None or (self.degraded or "").startswith("in memory")

    def status(self) -> str | None:
        """What is wrong now or was repaired (``None``: healthy), for ``status()``."""
        now = self.corrupt or self.full
        return "; ".join(filter(None, (now, self.degraded))) or None

    def note_failure(self, exc: BaseException) -> None:
        """Remember a failed read or write that calls for recovery or means a full disk."""
        if isinstance(exc, sqlite3.DatabaseError) and is_corruption(exc):
            if self.corrupt is None:
                log.error("telemetry database %s found corrupt: %s", self.path, exc)
            self.corrupt = f"database corrupt ({exc}); recovering"
        elif is_disk_full(exc):
            self.full = f"disk full: {exc}"

    # ------------------------------------------------------------------ opening and recovery

    def _open(self) -> tuple[sqlite3.Connection, sqlite3.Connection]:
        if self.path is None:
            return self._open_memory("no data dir given")
        try:
            assert self.data_dir is not None
            self.data_dir.mkdir(parents=True, exist_ok=True)
            return self._open_file(self.path)
        except sqlite3.DatabaseError as exc:
            if is_corruption(exc):
                return self._replace_corrupt(self.path, exc)
            return self._open_memory(f"cannot open {self.path}: {exc}")
        except OSError as exc:
            return self._open_memory(f"cannot create {self.data_dir}: {exc}")

    def _replace_corrupt(
        self, path: Path, exc: sqlite3.DatabaseError
    ) -> tuple[sqlite3.Connection, sqlite3.Connection]:
        moved = move_aside(path)
        log.error("telemetry database %s is corrupt (%s); moved to %s", path, exc, moved)
        try:
            writer, conn = self._open_file(path)
        except (sqlite3.Error, OSError) as again:
            return self._open_memory(f"cannot recreate database: {again}")
        self.degraded = f"corrupt database moved to {moved.name}"
        bump(conn, STORE_RECOVERED_CORRUPT, 1)
        try:
            source = connect_read_only(moved)
        except sqlite3.Error as exc:
            log.error("telemetry database %s cannot be read at all: %s", moved, exc)
            return writer, conn
        try:
            self._carry_over(source, conn, f"corrupt database {moved.name}")
        finally:
            source.close()
        return writer, conn

    def _carry_over(self, source: sqlite3.Connection, dest: sqlite3.Connection, what: str) -> None:
        """Copy every readable row of ``source`` into ``dest``; count and log the outcome."""
        try:
            found = _salvage.copy_rows(source, dest)
        except sqlite3.Error as exc:
            log.error("telemetry could not salvage %s: %s", what, exc)
            return
        bump(dest, STORE_SALVAGED, found.events)
        bump(dest, STORE_SALVAGE_LOST, found.events_lost)
        log.error(
            "telemetry salvaged %d queued events from %s; %d could not be read"
            " (%d other rows lost%s)",
            found.events,
            what,
            found.events_lost,
            found.other_lost,
            f"; unreadable: {', '.join(found.unreadable)}" if found.unreadable else "",
        )

    def _open_file(self, path: Path) -> tuple[sqlite3.Connection, sqlite3.Connection]:
        conn = connect(str(path), busy_ms=_BUSY_MS)
        try:
            enter_wal(conn, timeout=5.0)
            check = conn.execute("PRAGMA quick_check").fetchone()[0]
            if check != "ok":
                raise sqlite3.DatabaseError(f"database disk image is malformed: {check}")
            _schema.migrate(conn)
            # Probe that we can really write (a read-only file or dir fails here, not later).
            conn.execute("INSERT OR IGNORE INTO counters(name, value) VALUES (?, 0)", (OPENED_ROW,))
            writer = connect(str(path), busy_ms=1_000)
            writer.execute("PRAGMA wal_autocheckpoint=0")
            info = os.stat(path)
        except BaseException:
            conn.close()
            raise
        self._file_id = (info.st_dev, info.st_ino)
        return writer, conn

    def _open_memory(self, reason: str) -> tuple[sqlite3.Connection, sqlite3.Connection]:
        log.warning("telemetry store runs in memory only: %s", reason)
        self.degraded = f"in memory only: {reason}"
        uri = f"file:telemetry-{id(self)}?mode=memory&cache=shared"
        conn = connect(uri, busy_ms=5_000, uri=True)
        _schema.migrate(conn)
        writer = connect(uri, busy_ms=1_000, uri=True)
        return writer, conn

    def recover(self) -> None:
        """Reopen after a runtime fault; a database found corrupt is moved aside first and
        what can be read of it carried over."""
        with self.write_lock, self.lock:
            self._close_connections()
            self.degraded = self.corrupt = None
            self.writer, self.conn = self._open()

    def vanished(self) -> bool:
        """True when the file at :attr:`path` is gone or is not the one we have open."""
        if self._file_id is None or self.path is None or self.in_memory:
            return False
        try:
            info = os.stat(self.path)
        except OSError:
            return True
        return (info.st_dev, info.st_ino) != self._file_id

    def replace_vanished(self) -> bool:
        """Recreate a vanished or replaced database file and carry over what the open (maybe
        unlinked) file still holds; False when it cannot be recreated (the old file is kept)."""
        assert self.path is not None
        assert self.data_dir is not None
        with self.write_lock, self.lock:
            old_writer, old_conn = self.writer, self.conn
            try:
                self.data_dir.mkdir(parents=True, exist_ok=True)
                self.writer, self.conn = self._open_file(self.path)
            except (sqlite3.Error, OSError) as exc:
                if self.degraded is None or "vanished" not in self.degraded:
                    log.error("telemetry database %s vanished; cannot recreate: %s", self.path, exc)
                self.degraded = f"database file vanished; cannot recreate: {exc}"
                return False
            log.error("telemetry database %s vanished or was replaced; recreating it", self.path)
            bump(self.conn, STORE_FILE_VANISHED, 1)
            self._carry_over(old_conn, self.conn, "the vanished database")
            for conn in (old_writer, old_conn):
                with contextlib.suppress(sqlite3.Error):
                    conn.close()
            self.degraded = "database file vanished; recreated"
            return True

    def close(self) -> None:
        """Close both connections (waiting for a statement in progress on either)."""
        with self.write_lock, self.lock:
            self._close_connections()

    def _close_connections(self) -> None:
        for conn in (self.writer, self.conn):
            with contextlib.suppress(sqlite3.Error):
                conn.close()

    # ------------------------------------------------------------------ statements

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """The rows of one read on ``conn``; ``[]`` (logged) when the read fails."""
        try:
            with self.lock:
                return self.conn.execute(sql, tuple(params)).fetchall()
        except sqlite3.Error as exc:
            log.warning("telemetry store read failed: %s", exc)
            self.note_failure(exc)
            return []

    def write(self, work: Callable[[sqlite3.Connection], _T], default: _D) -> _T | _D:
        """Run ``work(conn)`` in one transaction; log, count and return ``default`` on
        failure."""
        try:
            with self.lock:
                self.conn.execute("BEGIN IMMEDIATE")
                try:
                    result = work(self.conn)
                    self.conn.execute("COMMIT")
                except BaseException:
                    with contextlib.suppress(sqlite3.Error):
                        self.conn.execute("ROLLBACK")
                    raise
                self.full = None
                return result
        except sqlite3.Error as exc:
            log.warning("telemetry store write failed: %s", exc)
            self.note_failure(exc)
            with self.lock:
                self.pending_counts[STORE_WRITE_ERRORS] += 1
            return default

    def increment(self, name: str, amount: int = 1) -> None:
        """Add to a persisted counter (kept in memory until the database accepts it)."""
        if amount <= 0:
            return
        try:
            with self.lock:
                bump(self.conn, name, amount)
        except sqlite3.Error as exc:
            self.note_failure(exc)
            with self.lock:
                self.pending_counts[name] += amount

    def read_query(
        self, sql: str, params: Sequence[Any] | Mapping[str, Any] = ()
    ) -> list[dict[str, Any]]:
        """Rows of one read-only SQL statement, as dicts. An authorizer allows reading only:
        a write, ``ATTACH``, ``PRAGMA`` or a schema change is refused by SQLite before it runs.

        Raises:
            StoreError: the statement is invalid or tries to change something.
        """
        import sqlite_utils  # only the tools that inspect a database pay for its import

        with self.lock:
            self.conn.set_authorizer(_read_only_authorizer)
            try:
                db = sqlite_utils.Database(self.conn, recursive_triggers=False)
                rows = db.query(sql, dict(params) if isinstance(params, Mapping) else params)
                return [dict(row) for row in rows]
            except sqlite3.Error as exc:
                raise StoreError(f"query refused or failed: {exc}") from None
            finally:
                self.conn.set_authorizer(None)

    def checkpoint(self, mode: str = "PASSIVE", *, wait_ms: int | None = None) -> None:
        """Copy the WAL back into the database file. ``wait_ms``: how long a ``FULL``,
        ``RESTART`` or ``TRUNCATE`` checkpoint may wait for another process's readers (default:
        the connection's 5 s); one that cannot finish in time is left to a later one."""
        if self.path is None or mode not in {"PASSIVE", "FULL", "RESTART", "TRUNCATE"}:
            return
        try:
            with self.lock:  # a checkpoint cannot run inside a transaction
                if wait_ms is not None:
                    self.conn.execute(f"PRAGMA busy_timeout = {int(wait_ms)}")
                try:
                    self.conn.execute(f"PRAGMA wal_checkpoint({mode})").fetchall()
                finally:
                    if wait_ms is not None:
                        self.conn.execute(f"PRAGMA busy_timeout = {_BUSY_MS}")
        except sqlite3.Error as exc:
            log.debug("telemetry checkpoint skipped: %s", exc)


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
