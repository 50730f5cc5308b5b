"""The per-process append-only event journal: how ``track()`` is durable in microseconds.

``track()`` appends one line to this process's journal file with a single ``write(2)`` on an
``O_APPEND`` descriptor. Once ``write`` returns, the bytes are in the kernel's page cache and
survive the process being killed (``SIGKILL``, a crash), exactly the guarantee SQLite gives
in WAL mode with ``synchronous=NORMAL``, whose commits are not fsynced either. The store's
housekeeping thread then copies the lines into SQLite (``INSERT OR IGNORE`` on the unique
``insert_id``, and the file offset reached, committed in the same transaction), so the
caller never pays for SQLite's locks and page writes.

Each line is ``<crc32 hex> <insert_id> <time ms> <event type JSON>\\t<payload JSON>\\n``. The
CRC catches a line torn by a power cut or a full disk; JSON never contains a raw newline.

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
import zlib
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


def encode_line(insert_id: str, time_ms: int, event_type_json: str, payload: str) -> bytes:
    """One journal line for an event."""
    body = f"{insert_id} {time_ms} {event_type_json}\t{payload}".encode()
    return b"%08x " % zlib.crc32(body) + body + b"\n"


def decode_lines(data: bytes) -> Iterator[tuple[str, str, int, str] | None]:
    """The events in complete lines of ``data``: ``(insert_id, event_type_json, time,
    payload)``, or ``None`` for a torn or damaged line."""
    for line in data.split(b"\n"):
        if not line:
            continue
        try:
            crc, body = line[:8], line[9:]
            if int(crc, 16) != zlib.crc32(body):
                yield None
                continue
            head, payload = body.split(b"\t", 1)
            insert_id, time_ms, event_type_json = head.split(b" ", 2)
            yield insert_id.decode(), event_type_json.decode(), int(time_ms), payload.decode()
        except ValueError:
            yield None


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

    def append(self, line: bytes) -> None:
        """Write one line with one ``write(2)``; on failure nothing of it stays in the file.

        Raises:
            OSError: the write failed (disk full, I/O error); the caller keeps the event.
        """
        with self.lock:
            try:
                written = os.write(self._fd, line)
            except OSError:
                self._cut_back()
                raise
            if written != len(line):
                self._cut_back()
                raise OSError(errno.ENOSPC, "short write to the telemetry journal")
            self.size += written

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


def read_from(path: Path | int, offset: int) -> bytes:
    """The bytes of a journal from ``offset`` up to its last complete line."""
    if isinstance(path, int):
        data = os.pread(path, max(0, os.fstat(path).st_size - offset), offset)
    else:
        with open(path, "rb") as handle:
            handle.seek(offset)
            data = handle.read()
    end = data.rfind(b"\n")
    return data[: end + 1] if end >= 0 else b""
