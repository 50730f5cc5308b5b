"""Whose turn it is to write one SQLite file, between the collector's processes
(:class:`WriterTurn`).

SQLite serialises writers itself, but a writer that finds the file locked sleeps in steps
(1, 2, 5, 10, 15, 20, 25 ... ms) before trying again, so with several worker processes the
lock sits idle for most of those sleeps: with two workers that wait cost more than the
transactions. Taking an advisory ``flock`` on a file next to the database before ``BEGIN
IMMEDIATE`` makes the next writer start within about half a millisecond of the last one's
``COMMIT``. The kernel releases the lock of a process that dies, so a killed worker cannot keep
it. The database stays correct without it: where the lock file cannot be made (a read-only
folder, no ``fcntl``), or after waiting ``timeout`` seconds, SQLite's own locking decides.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Final

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: SQLite's own locking alone
    fcntl = None  # type: ignore[assignment]

__all__ = ["WriterTurn", "writer_turn_path"]

logger = logging.getLogger("telemetry.collector")

#: Seconds between two tries for a taken turn.
_POLL_SECONDS: Final = 0.0005


def writer_turn_path(database: Path) -> Path:
    """The lock file of ``database`` (next to it, like its ``-wal`` and ``-shm`` files)."""
    return database.with_name(database.name + "-writer")


class WriterTurn:
    """One process's handle on the write turn of one database file (not thread-safe: the store
    calls it under its own lock)."""

    def __init__(self, database: Path, timeout: float, *, enabled: bool = True) -> None:
        """``enabled=False``: a turn that is never taken (no file is made)."""
        self._timeout = timeout
        self._fd: int | None = None
        #: Whether this process holds the turn now (inside :meth:`taken`, unless it timed out).
        self.holding = False
        if fcntl is None or not enabled:
            return
        try:
            self._fd = os.open(writer_turn_path(database), os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            logger.info("writing without a turn lock (%s): SQLite's locking alone", exc.strerror)

    @contextlib.contextmanager
    def taken(self) -> Iterator[None]:
        """Wait for the turn (at most ``timeout`` s), hold it for the block, hand it on."""
        self.holding = self._take()
        try:
            yield
        finally:
            if self.holding and self._fd is not None and fcntl is not None:
                fcntl.flock(self._fd, fcntl.LOCK_UN)
            self.holding = False

    def _take(self) -> bool:
        if self._fd is None or fcntl is None:
            return False
        deadline = time.monotonic() + self._timeout
        while True:
            try:
                fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return True
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    return False  # SQLite's busy timeout decides from here
                time.sleep(_POLL_SECONDS)
            except OSError:
                return False

    def close(self) -> None:
        """Release the file (idempotent)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
