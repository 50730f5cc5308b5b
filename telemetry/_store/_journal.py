"""The per-process append-only event journal: how ``track()`` is durable in microseconds.

``track()`` appends one line to this process's journal file with a single ``write(2)`` on an
``O_APPEND`` descriptor. Once ``write`` returns, the bytes are in the kernel's page cache and
survive the process being killed (``SIGKILL``, a crash), exactly the guarantee SQLite gives
in WAL mode with ``synchronous=NORMAL``, whose commits are not fsynced either. The store's
housekeeping thread then copies the lines into SQLite (``INSERT OR IGNORE`` on the unique
``insert_id``, and the file offset reached, committed in the same transaction), so the
caller never pays for SQLite's locks and page writes.

Each line is ``<insert_id>\t<time ms>\t<event type as JSON>\t<event JSON>\n``: the event
JSON is exactly what will be sent, and JSON never contains a raw tab or newline. The copy
splits lines with ``str.split`` (C) and lets SQLite check the JSON (in C, GIL released), so it
holds the GIL only briefly and the caller's thread is not held up. A line torn by a power cut
or a full disk fails those checks: it is skipped and counted.

Each file is held with ``flock(LOCK_EX)`` by the process writing it. A file nobody holds is
an orphan left by a process that died: whichever process of the app sees it first ingests
and removes it. Where ``fcntl`` does not exist (Windows) the store writes to SQLite directly.
"""

from __future__ import annotations

import contextlib
import errno
import os
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Final

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

AVAILABLE: Final = fcntl is not None
SUFFIX: Final = ".journal"
#: A journal this large is swapped for a fresh file at the next ingest.
ROTATE_BYTES: Final = 4 * 1024 * 1024
#: At most this much is copied into SQLite per transaction (bounds the memory a backlog takes).
CHUNK_BYTES: Final = 256 * 1024


def encode_line(insert_id: str, time_ms: int, event_type_json: str, payload: str) -> bytes:
    """One journal line for an event."""
    return f"{insert_id}\t{time_ms}\t{event_type_json}\t{payload}\n".encode()


def split_lines(data: bytes) -> tuple[list[tuple[str, str, str, str]], int]:
    """The complete lines of ``data`` as ``(insert_id, time, event type JSON, event JSON)``,
    and how many lines were torn or damaged. SQLite validates the JSON again while copying."""
    good: list[tuple[str, str, str, str]] = []
    damaged = 0
    for line in data.decode("utf-8", "replace").split("\n"):
        if not line:
            continue
        parts = line.split("\t", 3)
        if (
            len(parts) == 4
            and parts[0]
            and parts[1].isdigit()
            and parts[2][:1] == '"'
            and parts[2][-1:] == '"'
            and parts[3][:1] == "{"
            and parts[3][-1:] == "}"
        ):
            good.append((parts[0], parts[1], parts[2], parts[3]))
        else:
            damaged += 1
    return good, damaged


class Retired(OSError):
    """This journal was swapped for a fresh one: append to the store's current journal."""


class JournalFile:
    """The journal file this process appends to (thread-safe)."""

    def __init__(self, directory: Path) -> None:
        assert fcntl is not None
        directory.mkdir(parents=True, exist_ok=True)
        name = uuid.uuid4().hex
        # Locked under a name no other process looks at, then renamed: a journal is never
        # visible unlocked (another process would take it for an orphan).
        draft = directory / f"{name}.new"
        self.path = directory / f"{name}{SUFFIX}"
        flags = os.O_RDWR | os.O_CREAT | os.O_APPEND | getattr(os, "O_CLOEXEC", 0)
        self._fd = os.open(draft, flags, 0o600)
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            os.replace(draft, self.path)
        except OSError:
            os.close(self._fd)
            with contextlib.suppress(OSError):
                draft.unlink()
            raise
        self.size = 0
        self.lock = threading.Lock()
        #: Set (under :attr:`lock`) when appends must go to a newer journal.
        self.retired = False

    def append(self, line: bytes) -> None:
        """Write one line with one ``write(2)``; on failure nothing of it stays in the file.

        Raises:
            OSError: the write failed (disk full, I/O error); the caller keeps the event.
            Retired: this journal was swapped for another one; nothing was written.
        """
        with self.lock:
            if self.retired:
                raise Retired(errno.ESTALE, "telemetry journal swapped")
            try:
                written = os.write(self._fd, line)
            except OSError:
                self._cut_back()
                raise
            if written != len(line):
                self._cut_back()
                raise OSError(errno.ENOSPC, "short write to the telemetry journal")
            self.size += written

    def moved(self) -> bool:
        """True when :attr:`path` no longer names the file we write (removed or replaced)."""
        try:
            info = os.stat(self.path)
            own = os.fstat(self._fd)
        except OSError:
            return True
        return (info.st_dev, info.st_ino) != (own.st_dev, own.st_ino)

    def read_from(self, offset: int) -> bytes:
        """This journal's bytes from ``offset`` up to its last complete line."""
        return read_from(self._fd, offset)

    def _cut_back(self) -> None:
        """Remove a partial line so the next one starts cleanly."""
        with contextlib.suppress(OSError):
            os.ftruncate(self._fd, self.size)

    def close(self, *, remove: bool) -> None:
        """Release the file (removing it when everything in it was ingested)."""
        with self.lock:
            if self._fd < 0:
                return
            if remove:
                with contextlib.suppress(OSError):
                    self.path.unlink()
            os.close(self._fd)
            self._fd = -1


def orphans(directory: Path, own: Path | None) -> list[Path]:
    """Journal files in ``directory`` other than ``own`` (some may still be held), and
    drafts a process left when it died between creating and naming its journal."""
    try:
        found = [*directory.glob(f"*{SUFFIX}"), *directory.glob("*.new")]
        return sorted(p for p in found if p != own)
    except OSError:
        return []


@contextlib.contextmanager
def claim(path: Path) -> Iterator[int | None]:
    """Lock an orphan for ingesting: yields a read descriptor, or ``None`` when a live process
    holds it or it was removed meanwhile."""
    assert fcntl is not None
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    except OSError:
        yield None
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            yield None
            return
        try:
            same = os.stat(path).st_ino == os.fstat(fd).st_ino
        except OSError:
            same = False
        yield fd if same else None
    finally:
        os.close(fd)


def read_from(fd: int, offset: int, limit: int = CHUNK_BYTES) -> bytes:
    """At most ``limit`` bytes of a journal from ``offset``, up to the last complete line.

    A full chunk without any newline cannot hold a valid event (they are at most 32 KiB):
    it is returned whole, to be skipped as damaged, so a bad stretch never blocks the rest.
    """
    data = os.pread(fd, limit, offset)
    end = data.rfind(b"\n")
    if end < 0:
        return data if len(data) >= limit else b""
    return data[: end + 1]
