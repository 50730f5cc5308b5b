"""The upload lease: one uploader at a time per data dir, across threads and processes.

The lease is one row (owner, pid, expiry). An uploader takes it when it is free, expired,
already its own, or held by a process that no longer exists, and renews it while it works.
"""

from __future__ import annotations

import os
import sqlite3

from telemetry._store._db import Database, now_ms
from telemetry._system import pid_alive


def acquire_lease(db: Database, owner: str, ttl_ms: int, *, now: int | None = None) -> bool:
    """Take or renew the upload lease for ``owner``; False when another live uploader
    (in this or another process) holds it."""
    at = now_ms() if now is None else now
    pid = os.getpid()

    def work(conn: sqlite3.Connection) -> bool:
        row = conn.execute("SELECT owner, pid, expires_at FROM upload_lease").fetchone()
        if row is not None and row[0] != owner and row[2] > at and _pid_alive(row[1]):
            return False
        conn.execute(
            "INSERT INTO upload_lease(id, owner, pid, expires_at) VALUES (1, ?, ?, ?)"
            " ON CONFLICT(id) DO UPDATE SET owner = excluded.owner, pid = excluded.pid,"
            " expires_at = excluded.expires_at",
            (owner, pid, at + ttl_ms),
        )
        return True

    return bool(db.write(work, False))


def release_lease(db: Database, owner: str) -> None:
    """Give the upload lease up if ``owner`` holds it."""
    db.write(lambda c: c.execute("DELETE FROM upload_lease WHERE owner = ?", (owner,)), None)


def _pid_alive(pid: int) -> bool:
    return pid_alive(pid)
