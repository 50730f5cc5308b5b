"""Opening SQLite connections to the store's file, and telling its failures apart.

:func:`connect` opens a connection as the store uses it, :func:`connect_read_only` one that
never writes (for a file that must stay untouched or is damaged), :func:`enter_wal` switches a
new file to WAL. :func:`is_corruption` and :func:`is_disk_full` classify errors, and
:func:`move_aside` renames a corrupt file with its WAL and shared-memory files.
"""

from __future__ import annotations

import contextlib
import errno
import os
import sqlite3
import time
from pathlib import Path


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


def connect(target: str, *, busy_ms: int, uri: bool = False) -> sqlite3.Connection:
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


def is_disk_full(exc: BaseException) -> bool:
    """True for a write refused for lack of space (or over the file size limit)."""
    if isinstance(exc, OSError):
        return exc.errno in (errno.ENOSPC, errno.EFBIG, errno.EDQUOT)
    text = str(exc).lower()
    return "full" in text or "too large" in text


def is_corruption(exc: sqlite3.DatabaseError) -> bool:
    text = str(exc).lower()
    return "malformed" in text or "not a database" in text


def move_aside(path: Path) -> Path:
    """Rename a corrupt database and its WAL and shared-memory files; returns the new name."""
    stamp = time.strftime("%Y%m%dT%H%M%S")
    target = path.with_name(f"{path.name}.corrupt-{stamp}")
    for suffix in ("", "-wal", "-shm"):
        source = Path(f"{path}{suffix}")
        if source.exists():
            with contextlib.suppress(OSError):
                os.replace(source, Path(f"{target}{suffix}"))
    return target
