"""Error and crash reports waiting to be sent: one row per fingerprint with its count.

Owns the ``reports`` table (a report is written in its own transaction before the call that
captured it returns, so it survives the process being killed right after) and the
``sent_reports`` ring buffer (the last :data:`SENT_REPORTS_LOG_SIZE` reports, as sent). The
same error repeated becomes one row whose ``count`` grows: a loop that raises 10,000 times
costs one row. At most ``max_reports`` fingerprints wait; a new one beyond that is dropped and
counted (``reports_dropped_cap``), while repeats of a waiting one are always counted in.
"""

from __future__ import annotations

import json
import sqlite3
import uuid
from dataclasses import dataclass
from typing import Any, Final

from telemetry._store._db import Database, bump, now_ms

#: Fingerprints that may wait at once (each row holds one report of at most 64 KiB).
DEFAULT_MAX_REPORTS: Final = 100
SENT_REPORTS_LOG_SIZE: Final = 50

# Counter names (also shown by `telemetry status`).
REPORTS_CAPTURED: Final = "reports_captured"
REPORTS_DROPPED_CAP: Final = "reports_dropped_cap"
REPORTS_SENT: Final = "reports_sent"


@dataclass(frozen=True, slots=True)
class StoredReport:
    """A report waiting to be sent: its row, the occurrences it stands for, and its JSON."""

    id: int
    fingerprint: str
    event_id: str
    count: int
    first_seen: int
    last_seen: int
    payload: str

    def as_dict(self) -> dict[str, Any]:
        """The Sentry event object of the last occurrence."""
        result: dict[str, Any] = json.loads(self.payload)
        return result


class Reports:
    """The ``reports`` and ``sent_reports`` tables of one store."""

    def __init__(self, db: Database, max_reports: int = DEFAULT_MAX_REPORTS) -> None:
        self._db = db
        self.max_reports = max_reports

    def add(self, fingerprint: str, payload: str, at_ms: int | None = None) -> bool:
        """Count one occurrence of ``fingerprint`` (its report is ``payload``, the Sentry event
        JSON); True when it is kept (a repeat, or a new fingerprint under the cap)."""
        at = now_ms() if at_ms is None else at_ms

        def work(conn: sqlite3.Connection) -> bool:
            updated = conn.execute(
                "UPDATE reports SET count = count + 1, last_seen = max(last_seen, ?),"
                " payload = ? WHERE fingerprint = ?",
                (at, payload, fingerprint),
            ).rowcount
            if not updated:
                waiting = conn.execute("SELECT count(*) FROM reports").fetchone()[0]
                if waiting >= self.max_reports:
                    bump(conn, REPORTS_DROPPED_CAP, 1)
                    return False
                conn.execute(
                    "INSERT INTO reports(fingerprint, event_id, count, first_seen, last_seen,"
                    " payload) VALUES (?, ?, 1, ?, ?, ?)",
                    (fingerprint, uuid.uuid4().hex, at, at, payload),
                )
            bump(conn, REPORTS_CAPTURED, 1)
            return True

        return bool(self._db.write(work, False))

    def pending(self, limit: int = 100) -> list[StoredReport]:
        """Reports waiting, oldest first."""
        rows = self._db.query(
            "SELECT id, fingerprint, event_id, count, first_seen, last_seen, payload"
            " FROM reports ORDER BY first_seen, id LIMIT ?",
            (limit,),
        )
        return [StoredReport(*row) for row in rows]

    def count(self) -> int:
        """How many fingerprints wait."""
        rows = self._db.query("SELECT count(*) FROM reports")
        return int(rows[0][0]) if rows else 0

    def delivered(self, report: StoredReport, status: int, body: str) -> None:
        """``report`` (``report.count`` occurrences) was delivered as ``body``: those
        occurrences leave the queue; repeats that came while it was in flight stay, under a
        new event id (they are another report)."""

        def work(conn: sqlite3.Connection) -> None:
            conn.execute(
                "UPDATE reports SET count = count - ?, event_id = ?, first_seen = last_seen"
                " WHERE id = ? AND event_id = ?",
                (report.count, uuid.uuid4().hex, report.id, report.event_id),
            )
            conn.execute("DELETE FROM reports WHERE id = ? AND count <= 0", (report.id,))
            bump(conn, REPORTS_SENT, report.count)
            conn.execute(
                "INSERT INTO sent_reports(sent_at, status, body) VALUES (?, ?, ?)",
                (now_ms(), status, body),
            )
            conn.execute(
                "DELETE FROM sent_reports WHERE id <= (SELECT max(id) FROM sent_reports) - ?",
                (SENT_REPORTS_LOG_SIZE,),
            )

        self._db.write(work, None)

    def drop(self, report: StoredReport, reason: str) -> None:
        """``report`` was refused for good: remove it, counting its occurrences as ``reason``."""

        def work(conn: sqlite3.Connection) -> None:
            removed = conn.execute(
                "DELETE FROM reports WHERE id = ? AND event_id = ?", (report.id, report.event_id)
            ).rowcount
            if removed:
                bump(conn, reason, report.count)

        self._db.write(work, None)

    def sent(self, limit: int = SENT_REPORTS_LOG_SIZE) -> list[dict[str, Any]]:
        """The last reports sent, newest first: ``sent_at``, ``status``, ``report``."""
        rows = self._db.query(
            "SELECT sent_at, status, body FROM sent_reports ORDER BY id DESC LIMIT ?", (limit,)
        )
        return [
            {"sent_at": sent_at, "status": status, "report": json.loads(body)}
            for sent_at, status, body in rows
        ]
