"""Copying journals into SQLite, exactly once: this process's journal and dead processes'.

:class:`Ingest` owns this process's :class:`~telemetry._store._journal.JournalFile` (where
``append`` writes), how far it has been copied, and the ``journal_progress`` table. Each copy
inserts a chunk of lines and records the offset reached in the same transaction, and
``insert_id`` is unique, so a line copied twice (after a crash between the two) is stored
once. A journal no live process holds is an orphan: it is copied and removed by whichever
process of the app sees it first.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Final

from telemetry._store import _journal
from telemetry._store._db import Database, bump, log

JOURNAL_DIR: Final = "journal"

# Counter names (also shown by `telemetry status`).
JOURNAL_TORN_LINES: Final = "journal_torn_lines"
JOURNAL_ORPHANS: Final = "journal_orphans_ingested"

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


class Ingest:
    """This process's journal and the copying of every journal of the data dir into SQLite.

    Args:
        db: the store's database.
        directory: where the journals live; ``None`` when the store keeps no journal.
    """

    def __init__(self, db: Database, directory: Path | None) -> None:
        self._db = db
        self.directory = directory
        #: Where ``append`` writes; ``None``: straight to SQLite.
        self.journal: _journal.JournalFile | None = None
        self._lock = threading.Lock()
        self._ingested = 0  # bytes of our journal copied into SQLite

    def start(self) -> None:
        """Open this process's journal and copy what dead processes left."""
        self.journal = self._new_journal()
        self.ingest_orphans()

    def _new_journal(self) -> _journal.JournalFile | None:
        directory = self.directory
        if directory is None or not _journal.AVAILABLE:
            return None
        try:
            return _journal.JournalFile(directory)
        except OSError as exc:
            log.warning("telemetry journal unavailable (%s); writing to SQLite directly", exc)
            return None

    # ------------------------------------------------------------------ our own journal

    def sync_journal(self) -> int:
        """Copy what this process appended to its journal into SQLite; returns how many
        events were copied. Swaps in a fresh journal file once the current one is large."""
        journal = self.journal
        if journal is None or journal.size <= self._ingested:
            return 0
        with self._lock:
            journal = self.journal
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
            self.journal = new
            old.retired = True  # one that comes later is sent to ``new``

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

    def replace_moved_journal(self) -> None:
        """Start a fresh journal when ours was removed or replaced (its open descriptor still
        reads what was appended: that is copied first)."""
        journal = self.journal
        if journal is None or not journal.moved():
            return
        log.error("telemetry journal %s vanished or was replaced; starting a new one", journal.path)
        with self._lock:
            if self.journal is journal:
                self._rotate(journal)

    def close(self) -> None:
        """Copy the rest of our journal and release it (removed when fully copied)."""
        journal = self.journal
        if journal is None:
            return
        with self._lock:
            self._ingest_own(journal)
            done = self._ingested >= journal.size
            journal.close(remove=done)
            self.journal = None
        if done:
            self._forget_progress(journal.path.name)

    # ------------------------------------------------------------------ copying lines

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
                bump(conn, JOURNAL_TORN_LINES, torn)
            return copied

        result = self._db.write(work, None)
        return None if result is None else int(result)

    def _progress(self, name: str) -> int:
        rows = self._db.query("SELECT offset FROM journal_progress WHERE file = ?", (name,))
        return int(rows[0][0]) if rows else 0

    def _forget_progress(self, name: str) -> None:
        self._db.write(
            lambda c: c.execute("DELETE FROM journal_progress WHERE file = ?", (name,)), None
        )

    # ------------------------------------------------------------------ other processes' journals

    def _claimed_orphans(self) -> Iterator[tuple[Path, int]]:
        """Journals no live process holds, each locked by us while the caller handles it."""
        directory = self.directory
        if directory is None or not _journal.AVAILABLE or not directory.exists():
            return
        own = self.journal.path if self.journal is not None else None
        for path in _journal.orphans(directory, own):
            with _journal.claim(path) as fd:
                if fd is not None:
                    yield path, fd

    def ingest_orphans(self) -> int:
        """Copy the journals of processes that died into SQLite and remove them."""
        copied = 0
        with self._lock:
            for path, fd in self._claimed_orphans():
                done, complete = self._ingest_orphan(path, fd)
                copied += done
                if not complete:  # the database refused it: try again at the next pass
                    continue
                with contextlib.suppress(OSError):
                    path.unlink()
                self._forget_progress(path.name)
                self._db.increment(JOURNAL_ORPHANS)
        return copied

    def _ingest_orphan(self, path: Path, fd: int) -> tuple[int, bool]:
        """Copy one claimed orphan from its recorded offset; returns how many events were
        copied and whether all of it was (False: the database refused a chunk)."""
        copied = 0
        offset = self._progress(path.name)
        while data := _journal.read_from(fd, offset):
            done = self._copy_lines(path.name, data, offset + len(data))
            if done is None:
                return copied, False
            offset += len(data)
            copied += done
        return copied, True

    def discard_journals(self) -> list[str]:
        """Delete every journal we can claim without copying it (opt-out); returns their
        names."""
        removed: list[str] = []
        with self._lock:
            old = self.journal
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
