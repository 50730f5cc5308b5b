"""Native crashes: a fault file per process, written by :mod:`faulthandler`, read back by the
next start.

Each process that captures errors opens ``<data dir>/crashes/<pid>-<random>.fault`` and holds
an advisory lock on it for its whole life; :func:`faulthandler.enable` writes the Python stack
of every thread there when the process dies of SIGSEGV, SIGFPE, SIGABRT, SIGBUS or SIGILL. A
clean exit removes the empty file. The next process that starts looks at every fault file
whose lock it can take (its owner is gone): a non-empty one becomes a crash report with the
faulting thread's stack, and the file is removed either way.
"""

from __future__ import annotations

import contextlib
import faulthandler
import logging
import os
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import IO, Final

log = logging.getLogger("telemetry")

CRASH_DIR: Final = "crashes"
_SUFFIX: Final = ".fault"
_ERROR_RE: Final = re.compile(r"^Fatal Python error: (?P<error>[^\n]+)$", re.M)
_THREAD_RE: Final = re.compile(r"^(?P<current>Current thread|Thread) 0x[0-9a-fA-F]+")
_FRAME_RE: Final = re.compile(r'^\s+File "(?P<file>[^"]*)", line (?P<line>\d+) in (?P<func>.+)$')

#: Called with (error, frames innermost first as (file, line, function), file time).
FaultSink = Callable[[str, list[tuple[str, int, str]], float], None]


def parse_fault(text: str) -> tuple[str, list[tuple[str, int, str]]] | None:
    """The error (``Segmentation fault``) and the faulting thread's frames, innermost first,
    of a faulthandler dump; None when ``text`` holds no fatal error."""
    found = _ERROR_RE.search(text)
    if found is None:
        return None
    frames: list[tuple[str, int, str]] = []
    current = False
    seen_current = False
    first_frames: list[tuple[str, int, str]] | None = None
    block: list[tuple[str, int, str]] = []
    for line in text[found.end() :].splitlines():
        thread = _THREAD_RE.match(line)
        if thread:
            if first_frames is None and block:
                first_frames = block
            if current:
                break
            current = thread.group("current") == "Current thread"
            seen_current = seen_current or current
            block = frames if current else []
            continue
        frame = _FRAME_RE.match(line)
        if frame:
            block.append((frame.group("file"), int(frame.group("line")), frame.group("func")))
        elif line.startswith("Stack (most recent call first)"):
            current = seen_current = True  # a dump of one thread only
            block = frames
    if not seen_current:
        frames = first_frames or block
    return found.group("error").strip(), frames


class FaultFiles:
    """This process's fault file, and the harvest of those left by crashed processes."""

    def __init__(self, data_dir: Path) -> None:
        self.folder = data_dir / CRASH_DIR
        self._file: IO[str] | None = None
        self._was_enabled = False  # faulthandler wrote somewhere before (e.g. to stderr)

    def enable(self) -> bool:
        """Open this process's fault file and point faulthandler at it; False when the folder
        cannot be written (logged: native crashes then go unreported)."""
        if self._file is not None:
            return True
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            path = self.folder / f"{os.getpid()}-{os.urandom(4).hex()}{_SUFFIX}"
            handle = open(path, "w", encoding="utf-8")  # noqa: SIM115 - held for the process
            _lock(handle.fileno(), blocking=True)
            self._was_enabled = faulthandler.is_enabled()
            faulthandler.enable(handle, all_threads=True)
        except (OSError, RuntimeError, ValueError) as exc:
            log.warning("telemetry cannot record native crashes: %s", exc)
            return False
        self._file = handle
        return True

    def disable(self) -> None:
        """Stop writing native crashes here and remove this process's (empty) fault file;
        a faulthandler that was on before :meth:`enable` writes to stderr again."""
        handle, self._file = self._file, None
        if handle is None:
            return
        with contextlib.suppress(RuntimeError, ValueError, OSError, AttributeError):
            faulthandler.disable()
            if self._was_enabled:  # it wrote to stderr before us (python -X faulthandler)
                faulthandler.enable(sys.__stderr__ or sys.stderr, all_threads=True)
        with contextlib.suppress(OSError):
            os.unlink(handle.name)
        with contextlib.suppress(OSError):
            handle.close()

    def harvest(self, sink: FaultSink) -> int:
        """Turn the fault files of processes that are gone into reports (``sink``) and remove
        them; returns how many crashes were found."""
        found = 0
        try:
            paths = sorted(self.folder.glob(f"*{_SUFFIX}"))
        except OSError:
            return 0
        own = self._file.name if self._file is not None else None
        for path in paths:
            if str(path) == own:
                continue
            try:
                with open(path, encoding="utf-8", errors="replace") as handle:
                    if not _lock(handle.fileno(), blocking=False):
                        continue  # its process is alive
                    text = handle.read(1 << 20)
                    at = os.fstat(handle.fileno()).st_mtime
                    parsed = parse_fault(text)
                    if parsed is not None:
                        found += 1
                        sink(parsed[0], parsed[1], at)
                    os.unlink(path)
            except OSError as exc:
                log.warning("telemetry could not read a crash file: %s", exc)
        return found


def _lock(fd: int, *, blocking: bool) -> bool:
    try:
        import fcntl
    except ImportError:  # Windows: no advisory locks; a file is taken when not ours
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
    except OSError:
        return False
    return True
