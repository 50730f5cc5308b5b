"""Carrying rows from a damaged or vanished database into a fresh one, row by row.

:func:`copy_rows` reads each table of a source connection in rowid order and inserts every
row it can read into the destination. A read that fails ("malformed": a damaged page) does
not end the copy: the rowids after the failure are probed until reading works again, so only
the rows on damaged pages are lost. How many events were lost is estimated from the rowids the
``insert_id`` index still knows (it lives on other pages) and from the rowid gaps the damage
left. The source is only read; the caller opens it (read-only for a damaged file).
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Final

#: What is copied of each table: the columns, and how a row is inserted into the fresh file.
_TABLES: Final[dict[str, tuple[str, str]]] = {
    "events": (
        "id, insert_id, event_type, time, size, payload",
        "INSERT OR IGNORE INTO events(id, insert_id, event_type, time, size, payload)"
        " SELECT ?1, ?2, ?3, ?4, ?5, ?6 WHERE typeof(?2) = 'text' AND typeof(?3) = 'text'"
        " AND typeof(?4) = 'integer' AND json_valid(?6)",
    ),
    "state": (
        "key, value",
        "INSERT OR IGNORE INTO state(key, value) SELECT ?1, ?2 WHERE json_valid(?2)",
    ),
    "counters": (
        "name, value",
        "INSERT INTO counters(name, value) SELECT ?1, ?2 WHERE typeof(?2) = 'integer'"
        " ON CONFLICT(name) DO UPDATE SET value = value + excluded.value",
    ),
    "journal_progress": (
        "file, offset",
        "INSERT OR IGNORE INTO journal_progress(file, offset) VALUES (?, ?)",
    ),
    "linked_devices": (
        "device_id, seen_at",
        "INSERT OR IGNORE INTO linked_devices(device_id, seen_at) VALUES (?, ?)",
    ),
    "experiments": (
        "name, device_id, variation, assigned_at",
        "INSERT OR IGNORE INTO experiments(name, device_id, variation, assigned_at)"
        " VALUES (?, ?, ?, ?)",
    ),
    "reports": (
        "fingerprint, event_id, count, first_seen, last_seen, payload",
        "INSERT OR IGNORE INTO reports(fingerprint, event_id, count, first_seen, last_seen,"
        " payload) SELECT ?1, ?2, ?3, ?4, ?5, ?6 WHERE typeof(?3) = 'integer' AND json_valid(?6)",
    ),
}

#: The counter row that proves a file writable (not copied: the fresh file has its own).
_SKIP_COUNTERS: Final = ("opened",)

#: Rowids probed one by one after a damaged stretch before probing in growing steps.
_NEAR_PROBES: Final = 64
#: The widest damaged stretch whose rowids are each looked up when no index knows them.
_MAX_GAP: Final = 100_000


@dataclass
class Salvage:
    """What a copy carried over and what it could not."""

    events: int = 0
    events_lost: int = 0
    #: Rows of other tables that could not be read or were unusable.
    other_lost: int = 0
    #: Tables that could not be read at all.
    unreadable: list[str] = field(default_factory=list)


def copy_rows(source: sqlite3.Connection, dest: sqlite3.Connection) -> Salvage:
    """Copy every readable row of the store's tables from ``source`` into ``dest`` (one
    transaction on ``dest``); returns what was copied and lost."""
    result = Salvage()
    dest.execute("BEGIN IMMEDIATE")
    try:
        for table, (columns, insert) in _TABLES.items():
            _copy_table(source, dest, table, columns, insert, result)
        dest.execute("COMMIT")
    except BaseException:
        with contextlib.suppress(sqlite3.Error):
            dest.execute("ROLLBACK")
        raise
    return result


def _copy_table(
    source: sqlite3.Connection,
    dest: sqlite3.Connection,
    table: str,
    columns: str,
    insert: str,
    result: Salvage,
) -> None:
    gaps: list[tuple[int, int | None]] = []
    rows: list[tuple[object, ...]] = []
    try:
        rows.extend(row for _, row in _readable_rows(source, table, columns, gaps))
    except sqlite3.Error:
        result.unreadable.append(table)
    missing = _rowids_in_gaps(source, table, gaps)
    rescued = _point_reads(source, table, columns, missing)
    rows.extend(rescued)
    if table == "counters":
        rows = [row for row in rows if row[0] not in _SKIP_COUNTERS]
    before = dest.total_changes
    dest.executemany(insert, rows)
    copied = dest.total_changes - before
    # Rows read but unusable (a damaged cell, a duplicate) and rows on damaged pages.
    lost = (len(rows) - copied if table != "counters" else 0) + len(missing) - len(rescued)
    if table == "events":
        result.events += copied
        result.events_lost += lost
    else:
        result.other_lost += lost


def _readable_rows(
    source: sqlite3.Connection, table: str, columns: str, gaps: list[tuple[int, int | None]]
) -> Iterator[tuple[int, tuple[object, ...]]]:
    """``(rowid, row)`` of every readable row, in rowid order; each damaged stretch skipped is
    appended to ``gaps`` as (last rowid read, first rowid read again or ``None``: the end)."""
    sql = f"SELECT rowid, {columns} FROM {table} WHERE rowid > ? ORDER BY rowid"
    last = -(2**63)
    while True:
        try:
            for row in source.execute(sql, (last,)):
                last = int(row[0])
                yield last, tuple(row[1:])
            return
        except sqlite3.DatabaseError:
            resume = _next_readable(source, f"{sql} LIMIT 1", last)
            gaps.append((last, resume))
            if resume is None or resume <= last:
                return
            last = resume - 1


def _next_readable(source: sqlite3.Connection, sql: str, after: int) -> int | None:
    """The first rowid above ``after`` from which a row can be read again (``None``: none).

    Probes the next rowids one by one, then in doubling steps; a far hit is narrowed down by
    bisection, so readable rows just after the damage are not skipped."""
    failed = after
    offset = 1
    while after + offset < 2**62:
        probe = after + offset
        found = _probe(source, sql, probe)
        if found is not False:
            while probe - failed > 1:
                middle = (failed + probe) // 2
                nearer = _probe(source, sql, middle)
                if nearer is False:
                    failed = middle
                else:
                    probe, found = middle, nearer
            return found
        failed = probe
        offset = offset + 1 if offset < _NEAR_PROBES else offset * 2
    return None


def _probe(source: sqlite3.Connection, sql: str, after: int) -> int | bool | None:
    """The rowid of the first row above ``after`` if it can be read, ``None`` when there is
    none, ``False`` when reading fails."""
    try:
        row = source.execute(sql, (after,)).fetchone()
    except sqlite3.DatabaseError:
        return False
    return None if row is None else int(row[0])


def _rowids_in_gaps(
    source: sqlite3.Connection, table: str, gaps: list[tuple[int, int | None]]
) -> list[int]:
    """The rowids that were in the damaged stretches: for events those the ``insert_id``
    index (on other pages) still knows, otherwise (or when the index is damaged too) every
    rowid of a stretch of at most :data:`_MAX_GAP` rowids."""
    if not gaps:
        return []
    known = _indexed_rowids(source) if table == "events" else None
    found: list[int] = []
    for start, end in gaps:
        if known is not None:
            found.extend(r for r in known if r > start and (end is None or r < end))
        elif end is not None and end - start <= _MAX_GAP:
            found.extend(range(start + 1, end))
    return found


def _point_reads(
    source: sqlite3.Connection, table: str, columns: str, rowids: list[int]
) -> list[tuple[object, ...]]:
    """The rows among ``rowids`` that a direct lookup can still read (a damaged page may
    hold readable cells that a scan cannot reach)."""
    sql = f"SELECT {columns} FROM {table} WHERE rowid = ?"
    rows: list[tuple[object, ...]] = []
    for rowid in rowids:
        with contextlib.suppress(sqlite3.DatabaseError):
            row = source.execute(sql, (rowid,)).fetchone()
            if row is not None:
                rows.append(tuple(row))
    return rows


def _indexed_rowids(source: sqlite3.Connection) -> list[int] | None:
    """The rowids in the ``insert_id`` index (read from the index pages only), or ``None``
    when the index is damaged too."""
    try:
        rows = source.execute(
            "SELECT id FROM events INDEXED BY events_insert_id WHERE insert_id IS NOT NULL"
        ).fetchall()
    except sqlite3.Error:
        return None
    return [int(r[0]) for r in rows]
