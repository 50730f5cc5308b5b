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

from telemetry._store import _schema
from telemetry.errors import StoreError

# One logger for every module of the store, so an app filters or silences it by one name.
log = logging.getLogger("telemetry.store")

_T = TypeVar("_T")
_D = TypeVar("_D")

DB_FILENAME: Final = "telemetry.db"

# Counter names this module increments itself (also shown by `telemetry status`).
STORE_WRITE_ERRORS: Final = "store_write_errors"
STORE_RECOVERED_CORRUPT: Final = "store_recovered_corrupt"

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
        self.write_lock = threading.Lock()
        self.lock = threading.RLock()
        #: Counter increments the database could not take yet (written by the next flush).
        self.pending_counts: collections.Counter[str] = collections.Counter()
        self.writer, self.conn = self._open()

    @property
    def in_memory(self) -> bool:
        """True when nothing is written to disk (no data dir, or the file was unusable)."""
        return self.path is None or (self.degraded or "").startswith("in memory")

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
                return self._replace_corrupt(self.path, exc)
            return self._open_memory(f"cannot open {self.path}: {exc}")
        except OSError as exc:
            return self._open_memory(f"cannot create {self.data_dir}: {exc}")

    def _replace_corrupt(
        self, path: Path, exc: sqlite3.DatabaseError
    ) -> tuple[sqlite3.Connection, sqlite3.Connection]:
        moved = _move_aside(path)
        log.error("telemetry database %s is corrupt (%s); moved to %s", path, exc, moved)
        try:
            writer, conn = self._open_file(path)
        except (sqlite3.Error, OSError) as again:
            return self._open_memory(f"cannot recreate database: {again}")
        self.degraded = f"corrupt database moved to {moved.name}"
        bump(conn, STORE_RECOVERED_CORRUPT, 1)
        return writer, conn

    def _open_file(self, path: Path) -> tuple[sqlite3.Connection, sqlite3.Connection]:
        conn = _connect(str(path), busy_ms=5_000)
        try:
            enter_wal(conn, timeout=5.0)
            check = conn.execute("PRAGMA quick_check").fetchone()[0]
            if check != "ok":
                raise sqlite3.DatabaseError(f"database disk image is malformed: {check}")
            _schema.migrate(conn)
            # Probe that we can really write (a read-only file or dir fails here, not later).
            conn.execute("INSERT OR IGNORE INTO counters(name, value) VALUES (?, 0)", (OPENED_ROW,))
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

    def recover(self) -> None:
        """Reopen after a runtime fault; a database found corrupt is moved aside first."""
        with self.write_lock, self.lock:
            self._close_connections()
            self.degraded = None
            self.writer, self.conn = self._open()

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
                return result
        except sqlite3.Error as exc:
            log.warning("telemetry store write failed: %s", exc)
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
        except sqlite3.Error:
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

    def checkpoint(self, mode: str = "PASSIVE") -> None:
        """Copy the WAL back into the database file."""
        if self.path is None or mode not in {"PASSIVE", "FULL", "RESTART", "TRUNCATE"}:
            return
        try:
            with self.lock:  # a checkpoint cannot run inside a transaction
                self.conn.execute(f"PRAGMA wal_checkpoint({mode})").fetchall()
        except sqlite3.Error as exc:
            log.debug("telemetry checkpoint skipped: %s", exc)


def connect_read_only(path: Path) -> sqlite3.Connection:
    """A connection that reads ``path`` without writing anything: for looking at a database
    that must stay untouched.

    A closed database (no write-ahead log left) is opened ``immutable``, which creates not even
    a lock file. While an app has it open, what it committed may still be in the log only, so
    the log is read too (read-only, through the ``-shm`` index the app already created).

    Raises:
        sqlite3.Error: the file cannot be opened.
    """
    wal = Path(f"{path}-wal")
    if wal.exists() and wal.stat().st_size > 0 and Path(f"{path}-shm").exists():
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
            return conn
        except sqlite3.Error:
            conn.close()  # fall back to the main file alone
    return sqlite3.connect(f"file:{path}?mode=ro&immutable=1", uri=True)


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


def _connect(target: str, *, busy_ms: int, uri: bool = False) -> sqlite3.Connection:
    conn = sqlite3.connect(
        target, isolation_level=None, check_same_thread=False, uri=uri, timeout=busy_ms / 1000
    )
    conn.execute(f"PRAGMA busy_timeout={busy_ms}")
    conn.execute("PRAGMA synchronous=NORMAL")
    return conn


def enter_wal(conn: sqlite3.Connection, *, timeout: float) -> str:
    """Switch ``conn``'s database to WAL, waiting up to ``timeout`` s for other openers.

    Returns the journal mode SQLite reports afterwards (``"wal"`` unless the file system
    cannot hold one). Two processes opening a new database at once both read it, then both
    ask for the exclusive lock the switch needs; SQLite answers one of them "database is
    locked" at once, without calling its busy handler (waiting there could deadlock). The
    other finishes within milliseconds, so trying again shortly succeeds.
    """
    deadline = time.monotonic() + timeout
    pause = 0.005
    while True:
        try:
            return str(conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]).lower()
        except sqlite3.OperationalError as exc:
            if not _is_busy(exc) or time.monotonic() + pause > deadline:
                raise
        time.sleep(pause)
        pause = min(pause * 2, 0.1)


def _is_busy(exc: sqlite3.OperationalError) -> bool:
    """True for "database is locked" / "busy": another connection holds the lock."""
    text = str(exc).lower()
    return "locked" in text or "busy" in text


def _is_corruption(exc: sqlite3.DatabaseError) -> bool:
    text = str(exc).lower()
    return "malformed" in text or "not a database" in text


def _move_aside(path: Path) -> Path:
    """Rename a corrupt database and its WAL and shared-memory files; returns the new name."""
    stamp = time.strftime("%Y%m%dT%H%M%S")
    target = path.with_name(f"{path.name}.corrupt-{stamp}")
    for suffix in ("", "-wal", "-shm"):
        source = Path(f"{path}{suffix}")
        if source.exists():
            with contextlib.suppress(OSError):
                os.replace(source, Path(f"{target}{suffix}"))
    return target
