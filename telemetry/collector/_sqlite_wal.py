"""The collector's switch of a SQLite database to WAL, retried while another opener holds it.

The client's event store has its own copy of this helper. It is not shared on purpose: the
collector is deployed on its own and must not import the client's private modules, and a dozen
lines are cheaper to keep twice than a dependency between the two sides that would tie their
releases together.
"""

from __future__ import annotations

import sqlite3
import time


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
