"""Reading back what a collector stored: :func:`stored_events`, for tools and demos that show
or check the collector's SQLite database without knowing its schema."""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path
from typing import Any

__all__ = ["stored_events"]


def stored_events(database: str | Path) -> list[dict[str, Any]]:
    """Every stored event of a collector's SQLite database, oldest first, as dicts of the
    ``events`` table's columns (``event`` is the event's JSON text as stored).

    The file is opened read-only, so a collector may be writing to it meanwhile. ``[]`` when
    the file or its table does not exist yet (the collector has not started or stored nothing).
    """
    path = Path(database)
    if not path.exists():
        return []
    uri = f"{path.resolve().as_uri()}?mode=ro"
    with contextlib.closing(sqlite3.connect(uri, uri=True, timeout=10)) as db:
        db.row_factory = sqlite3.Row
        exists = db.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'events'"
        ).fetchone()
        if exists is None:
            return []
        return [dict(row) for row in db.execute("SELECT * FROM events ORDER BY id")]
