"""Memory shared by the collector's worker processes, and the locks guarding it.

With ``--workers`` > 1 the parent makes one :class:`SharedMemory` before it forks the workers:
an anonymous ``MAP_SHARED`` mapping (every worker, and every replacement of a worker that died,
inherits the same pages) carved into named regions. The directory of regions lives in the
mapping itself, so every process asking for a name gets the same region whichever asked first.
Fresh pages read as zeros, and are only backed by memory once written.

Each region has a lock that a killed holder cannot leave held: a ``threading.Lock`` for the
threads of one process, then a POSIX record lock (``fcntl.lockf``) on one byte of an unlinked
temporary file. Record locks belong to a process, are not inherited by ``fork``, and the kernel
releases them when their holder dies, even by SIGKILL (a ``multiprocessing.Lock`` held by a
killed worker would stay held). A worker killed in the middle of an update may leave that update
half written; the users of a region (``_ratelimit``, ``_metrics``) order their writes so that
this errs on the harmless side.

One process (no workers) uses :func:`local_region` instead: the same interface over memory of
its own, guarded by the thread lock alone.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import mmap
import os
import sys
import tempfile
import threading
from types import TracebackType
from typing import Final, Protocol

if sys.platform != "win32":
    import fcntl

__all__ = ["Region", "SharedMemory", "WorkerShare", "local_region"]

#: Bytes reserved for all regions (address space: pages are only used once written). The
#: largest users: a rate limiter's table of 100,000 devices (2.4 MB each, three of them) and
#: the metrics (about 32 KiB per worker).
DEFAULT_SHARED_BYTES: Final = 32 * 1024 * 1024
#: Most named regions.
_MAX_REGIONS: Final = 32
#: Header: the next free offset (8 bytes), then the directory: (name key, offset, size) per region.
_DIRECTORY_SLOTS: Final = 3
_HEADER_BYTES: Final = 8 + _MAX_REGIONS * _DIRECTORY_SLOTS * 8
_ALIGN: Final = 64
#: Byte of the lock file that guards the directory (a region's lock is the byte 1 + its index).
_DIRECTORY_LOCK_BYTE: Final = 0


class Lock(Protocol):
    """What guards a region: a context manager, not reentrant."""

    def __enter__(self) -> object: ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...


class _ProcessLock:
    """A region's lock across processes: this process's thread lock, then the record lock on
    byte ``byte`` of the file ``fd`` (released by the kernel if this process dies)."""

    def __init__(self, fd: int, byte: int) -> None:
        self._thread = threading.Lock()
        self._fd = fd
        self._byte = byte

    def __enter__(self) -> None:
        self._thread.acquire()
        try:
            fcntl.lockf(self._fd, fcntl.LOCK_EX, 1, self._byte)
        except BaseException:
            self._thread.release()
            raise

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            fcntl.lockf(self._fd, fcntl.LOCK_UN, 1, self._byte)
        finally:
            self._thread.release()


class Region:
    """``memory`` (bytes, 64-byte aligned, zeros until written) and the ``lock`` guarding what
    is written in it (see the module docstring)."""

    def __init__(self, memory: memoryview, lock: Lock) -> None:
        self.memory = memory
        self.lock = lock


def local_region(size: int) -> Region:
    """A region of ``size`` bytes private to this process (no workers), with a thread lock."""
    return Region(memoryview(mmap.mmap(-1, max(size, 1)))[:size], threading.Lock())


def _name_key(name: str) -> int:
    """A region name's key in the directory (never 0, which marks a free directory entry)."""
    return int.from_bytes(hashlib.blake2b(name.encode(), digest_size=8).digest(), "little") or 1


class SharedMemory:
    """Named regions of one anonymous shared mapping, made before the workers are forked
    (POSIX only). See the module docstring."""

    def __init__(self, size: int = DEFAULT_SHARED_BYTES) -> None:
        self._map = mmap.mmap(-1, _HEADER_BYTES + size)
        self._words = memoryview(self._map)[:_HEADER_BYTES].cast("Q")
        self._words[0] = _HEADER_BYTES
        self._lock_fd, path = tempfile.mkstemp(prefix="collector-locks-")
        os.unlink(path)  # the workers inherit the descriptor; nothing is left behind
        self._attach()

    def _attach(self) -> None:
        """This process's own locks and regions (after a fork: none of the parent's)."""
        self._pid = os.getpid()
        self._directory_lock = _ProcessLock(self._lock_fd, _DIRECTORY_LOCK_BYTE)
        self._regions: dict[str, Region] = {}

    def region(self, name: str, size: int) -> Region:
        """The region called ``name`` (``size`` bytes): the same memory, guarded by the same
        lock, in every process and thread that asks. Raises ``ValueError`` if it exists with
        another size, ``MemoryError`` if it does not fit."""
        if self._pid != os.getpid():
            self._attach()
        with self._directory_lock:
            found = self._regions.get(name)
            if found is None:
                index, offset = self._find_or_add(_name_key(name), name, size)
                memory = memoryview(self._map)[offset : offset + size]
                lock = _ProcessLock(self._lock_fd, 1 + index)
                found = self._regions[name] = Region(memory, lock)
        if len(found.memory) != size:
            raise ValueError(f"shared region {name!r} exists with another size")
        return found

    def _find_or_add(self, key: int, name: str, size: int) -> tuple[int, int]:
        """(directory index, offset) of the region ``key``, added if new."""
        words = self._words
        for index in range(_MAX_REGIONS):
            base = 1 + index * _DIRECTORY_SLOTS
            if words[base] == key:
                if words[base + 2] != size:
                    raise ValueError(f"shared region {name!r} exists with another size")
                return index, words[base + 1]
            if words[base] == 0:
                offset = -(-words[0] // _ALIGN) * _ALIGN
                if offset + size > len(self._map):
                    raise MemoryError(f"no room for shared region {name!r} ({size} bytes)")
                words[0] = offset + size
                words[base + 1] = offset
                words[base + 2] = size
                words[base] = key  # last: the entry is complete once it has its key
                return index, offset
        raise MemoryError(f"too many shared regions (at most {_MAX_REGIONS})")

    def close(self) -> None:
        """Release this process's mapping and lock file (the workers keep theirs)."""
        self._regions = {}
        self._words.release()
        os.close(self._lock_fd)
        with contextlib.suppress(BufferError):  # a region's view is still referenced
            self._map.close()


@dataclasses.dataclass(frozen=True)
class WorkerShare:
    """What one worker process shares with its siblings: ``memory``, made by their parent, and
    its place among them (``worker`` of ``workers``; a replaced worker keeps its number)."""

    memory: SharedMemory
    worker: int
    workers: int
