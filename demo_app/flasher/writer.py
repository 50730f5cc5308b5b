"""Writing an image to a drive or a file, then validating it by reading it back.

:class:`Flasher` streams an :class:`~demo_app.flasher.source.ImageSource` to a
:class:`Target` with two threads: a reader that fills a small pool of page-aligned 4 MiB
buffers (decompressing as needed) and hashes them (SHA-256, so the checksum costs no extra
pass), and the calling thread, which writes them. Memory stays flat whatever the image size
(``buffers * chunk_size``). At the end the target is fsync'ed, its cached pages dropped, and
read back to compare checksums. ``cancel()`` stops it between chunks, from any thread.

Errors surface as :class:`~demo_app.flasher.errors.FlashError` with Etcher's codes; a target
that disappears (a drive pulled out, a target file deleted or replaced) is ``EUNPLUGGED``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import mmap
import os
import queue
import stat
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Final, Literal, Protocol

from demo_app.flasher.errors import FlashError
from demo_app.flasher.source import ImageSource

if TYPE_CHECKING:
    from telemetry.drives import Drive

__all__ = ["FlashProgress", "FlashResult", "FlashRunner", "Flasher", "Target", "unmount_drive"]

DEFAULT_CHUNK: Final = 4 << 20
DEFAULT_BUFFERS: Final = 4
_PRESENCE_CHECK_SECONDS: Final = 0.25
_SPEED_WINDOW_SECONDS: Final = 3.0

Phase = Literal["flashing", "validating"]


@dataclass(frozen=True, slots=True)
class Target:
    """Where an image is written: a block device (``drive`` set) or a disk-image file."""

    path: Path
    is_block_device: bool
    capacity: int | None = None
    drive: Drive | None = None

    @classmethod
    def file(cls, path: str | os.PathLike[str]) -> Target:
        """A disk-image file target (created or overwritten)."""
        return cls(Path(path), False)

    @classmethod
    def for_drive(cls, drive: Drive) -> Target:
        """A whole drive, by its device node."""
        return cls(Path(drive.raw or drive.device), True, drive.size or None, drive)

    @property
    def kind(self) -> str:
        """``"file"`` or ``"drive"``."""
        return "drive" if self.is_block_device else "file"


@dataclass(frozen=True, slots=True)
class FlashProgress:
    """A progress report: ``fraction`` 0..1 of the current phase, speed in bytes/s."""

    phase: Phase
    bytes_done: int
    total: int | None
    fraction: float
    speed: float
    eta: float | None

    @property
    def percent(self) -> float:
        """``fraction`` in percent."""
        return self.fraction * 100.0

    @property
    def mb_per_s(self) -> float:
        """Speed in MB/s (10**6 bytes, as drive makers count)."""
        return self.speed / 1e6


@dataclass(frozen=True, slots=True)
class FlashResult:
    """How a flash ended (failures raise :class:`FlashError` instead)."""

    status: Literal["finished", "cancelled"]
    bytes_written: int
    duration: float
    write_seconds: float
    validate_seconds: float
    checksum: str
    validation: Literal["passed", "skipped", "cancelled"]
    cancelled_in: Phase | None = None
    #: The flash had created the target file and removed it (cancelled).
    target_removed: bool = False

    @property
    def mb_per_s(self) -> float:
        """Write throughput (including the final fsync) in MB/s."""
        return self.bytes_written / self.write_seconds / 1e6 if self.write_seconds > 0 else 0.0


@dataclass
class _Identity:
    """What the target was when it was opened, to notice it vanishing or being replaced."""

    dev: int
    ino: int
    rdev: int


@dataclass
class _Speed:
    samples: deque[tuple[float, int]] = field(default_factory=deque)

    def add(self, now: float, done: int) -> float:
        self.samples.append((now, done))
        while len(self.samples) > 2 and now - self.samples[0][0] > _SPEED_WINDOW_SECONDS:
            self.samples.popleft()
        t0, d0 = self.samples[0]
        return (done - d0) / (now - t0) if now > t0 else 0.0


class FlashRunner(Protocol):
    """What runs a flash: :class:`Flasher` in this process, or
    :class:`~demo_app.flasher.HelperFlasher` through the write helper."""

    bytes_written: int

    def run(self) -> FlashResult: ...

    def cancel(self) -> None: ...

    @property
    def cancelled(self) -> bool: ...


class _Cancelled(Exception):
    pass


class Flasher:
    """One flash of ``source`` to ``target``; call :meth:`run` once (it blocks).

    ``on_progress`` is called from the thread running :meth:`run`, at most every
    ``progress_interval`` seconds and once at the end of each phase.
    """

    def __init__(
        self,
        source: ImageSource,
        target: Target,
        *,
        validate: bool = True,
        chunk_size: int = DEFAULT_CHUNK,
        buffers: int = DEFAULT_BUFFERS,
        on_progress: Callable[[FlashProgress], None] | None = None,
        progress_interval: float = 0.1,
        unmount: Callable[[Drive], None] | None = None,
    ) -> None:
        if chunk_size < mmap.PAGESIZE or chunk_size % mmap.PAGESIZE or buffers < 2:
            raise ValueError("chunk_size must be a multiple of the page size; buffers >= 2")
        self.source = source
        self.target = target
        self.validate = validate
        self._chunk = chunk_size
        self._nbuf = buffers
        self._on_progress = on_progress
        self._interval = progress_interval
        self._unmount = unmount if unmount is not None else unmount_drive
        self._cancel = threading.Event()
        self._created_file = False
        self._identity: _Identity | None = None
        #: Bytes written so far (readable from any thread, e.g. after a failure).
        self.bytes_written = 0

    # ------------------------------------------------------------------ public

    def cancel(self) -> None:
        """Stop as soon as possible (thread-safe); :meth:`run` returns a cancelled result."""
        self._cancel.set()

    @property
    def cancelled(self) -> bool:
        """Whether :meth:`cancel` was called."""
        return self._cancel.is_set()

    def run(self) -> FlashResult:
        """Write, sync and (optionally) validate; raises :class:`FlashError` on failure.

        A target file this flash created is removed when the flash is cancelled or fails
        (``FlashResult.target_removed`` / ``FlashError.target_removed``); a target that
        existed before (a drive, a file) is left as the writes left it, as Etcher does.
        """
        try:
            result = self._run()
        except FlashError as exc:
            exc.target_removed = self._remove_created()
            raise
        except BaseException:
            self._remove_created()
            raise
        if result.status == "cancelled" and self._remove_created():
            result = dataclasses.replace(result, target_removed=True)
        return result

    def _run(self) -> FlashResult:
        started = time.monotonic()
        if self.target.drive is not None and self.target.drive.mountpoints:
            self._unmount(self.target.drive)
        self._check_capacity()
        fd = self._open_target()
        written = 0
        checksum = ""
        try:
            try:
                written, checksum = self._write_all(fd)
                self._sync(fd)
            except _Cancelled:
                # The loop left before returning its count: what reached the target is here.
                return self._cancelled(started, self.bytes_written, "flashing")
        finally:
            os.close(fd)
        write_seconds = time.monotonic() - started
        if not self.validate:
            return FlashResult(
                "finished", written, write_seconds, write_seconds, 0.0, checksum, "skipped"
            )
        validate_started = time.monotonic()
        try:
            self._validate(written, checksum)
        except _Cancelled:
            result = self._cancelled(started, written, "validating")
            return FlashResult(
                "cancelled", written, result.duration, write_seconds, 0.0, checksum,
                "cancelled", "validating",
            )  # fmt: skip
        done = time.monotonic()
        return FlashResult(
            "finished", written, done - started, write_seconds, done - validate_started,
            checksum, "passed",
        )  # fmt: skip

    # ------------------------------------------------------------------ steps

    def _check_capacity(self) -> None:
        size = self.source.size
        if self.target.capacity and size and size > self.target.capacity:
            raise FlashError(
                "ENOSPC",
                f"The image ({size:,} bytes) is larger than the drive "
                f"({self.target.capacity:,} bytes).",
                "Pick a larger drive.",
            )

    def _open_target(self) -> int:
        path = self.target.path
        cloexec = getattr(os, "O_CLOEXEC", 0)
        if not self.target.is_block_device and _same_file(path, self.source.path):
            raise FlashError(
                "ESOURCE", "The target is the image file itself.", "Pick another target file."
            )
        try:
            if self.target.is_block_device:
                # O_EXCL on a block device: the kernel refuses while it is mounted or claimed.
                fd = os.open(path, os.O_WRONLY | os.O_EXCL | cloexec)
            else:
                existed = path.exists()
                flags = os.O_WRONLY | os.O_CREAT | cloexec
                fd = os.open(path, flags, 0o644)
                self._created_file = not existed
                st = os.fstat(fd)
                if stat.S_ISREG(st.st_mode):
                    os.ftruncate(fd, 0)
        except OSError as exc:
            raise FlashError.from_target(
                exc, target_present=self._exists(), block_device=self.target.is_block_device,
                action="open",
            ) from exc  # fmt: skip
        st = os.fstat(fd)
        rdev = st.st_rdev
        if self.target.is_block_device:
            # The device number the node names now (what target_present() compares with);
            # the same as the descriptor's for a real node, and what a test bed fakes.
            with contextlib.suppress(OSError):
                rdev = os.stat(path).st_rdev
        self._identity = _Identity(st.st_dev, st.st_ino, rdev)
        return fd

    def _remove_created(self) -> bool:
        """Remove the target file if this flash created it and it is still the one opened."""
        ident = self._identity
        if not self._created_file or ident is None:
            return False
        try:
            st = os.stat(self.target.path)
            if not stat.S_ISREG(st.st_mode) or (st.st_dev, st.st_ino) != (ident.dev, ident.ino):
                return False
            os.unlink(self.target.path)
        except OSError:
            return False
        return True

    def _exists(self) -> bool:
        try:
            os.stat(self.target.path)
        except OSError:
            return False
        return True

    def target_present(self) -> bool:
        """Whether the target is still the one that was opened (not removed or replaced)."""
        ident = self._identity
        try:
            st = os.stat(self.target.path)
        except OSError:
            return False
        if ident is None:
            return True
        if stat.S_ISBLK(st.st_mode):
            return st.st_rdev == ident.rdev and _sysfs_present(st.st_rdev)
        if stat.S_ISCHR(st.st_mode):
            return st.st_rdev == ident.rdev
        return (st.st_dev, st.st_ino) == (ident.dev, ident.ino)

    def _target_error(self, exc: OSError, action: str) -> FlashError:
        return FlashError.from_target(
            exc,
            target_present=self.target_present(),
            block_device=self.target.is_block_device,
            action=action,
        )

    def _unplugged(self) -> FlashError:
        what = "drive" if self.target.is_block_device else "target file"
        return FlashError(
            "EUNPLUGGED",
            f"The {what} was removed while it was being written.",
            "Plug it back in (or pick the target again) and flash again.",
        )

    def _write_all(self, fd: int) -> tuple[int, str]:
        pool = [mmap.mmap(-1, self._chunk) for _ in range(self._nbuf)]
        views = [memoryview(b) for b in pool]
        free: queue.Queue[int] = queue.Queue()
        full: queue.Queue[tuple[int, int, int] | BaseException | None] = queue.Queue()
        for i in range(self._nbuf):
            free.put(i)
        digest = hashlib.sha256()
        stop = threading.Event()
        try:
            reader = self.source.open(self._chunk)
        except FlashError:
            _release(views, pool)
            raise

        def read_loop() -> None:
            try:
                while not stop.is_set():
                    try:
                        index = free.get(timeout=0.1)
                    except queue.Empty:
                        continue
                    n = reader.readinto(views[index])
                    if n == 0:
                        full.put(None)
                        return
                    digest.update(views[index][:n])
                    full.put((index, n, reader.position))
            except BaseException as exc:  # noqa: BLE001 - handed to the writer, which raises it
                full.put(exc)

        thread = threading.Thread(target=read_loop, name="demo-flash-reader", daemon=True)
        thread.start()
        written = 0
        total = self.source.size
        file_size = self.source.file_size
        speed = _Speed()
        started = last_report = last_check = time.monotonic()
        speed.add(started, 0)
        try:
            while True:
                if self._cancel.is_set():
                    raise _Cancelled
                try:
                    item = full.get(timeout=0.1)
                except queue.Empty:
                    continue
                if item is None:
                    break
                if isinstance(item, BaseException):
                    raise item
                index, n, position = item
                self._write_chunk(fd, views[index][:n], written)
                written += n
                self.bytes_written = written
                free.put(index)
                now = time.monotonic()
                if now - last_check >= _PRESENCE_CHECK_SECONDS:
                    last_check = now
                    if not self.target_present():
                        raise self._unplugged()
                if now - last_report >= self._interval:
                    last_report = now
                    fraction = _fraction(written, total, position, file_size, self.source)
                    self._report("flashing", written, total, fraction, speed.add(now, written))
        finally:
            stop.set()
            thread.join(10)
            reader.close()
            _release(views, pool)
        now = time.monotonic()
        self._report("flashing", written, written, 1.0, speed.add(now, written))
        return written, digest.hexdigest()

    def _write_chunk(self, fd: int, data: memoryview, offset: int) -> None:
        done = 0
        while done < len(data):
            try:
                n = os.write(fd, data[done:])
            except InterruptedError:
                continue
            except OSError as exc:
                raise self._target_error(exc, "writ") from exc
            if n == 0:
                raise FlashError(
                    "ENOSPC", "The target accepted no more data.", "Pick a larger target."
                )
            done += n

    def _sync(self, fd: int) -> None:
        try:
            os.fsync(fd)
        except OSError as exc:
            # fsync on a pipe or character device is EINVAL: nothing to sync there.
            if exc.errno != 22:
                raise self._target_error(exc, "sync") from exc
        if not self.target_present():
            raise self._unplugged()
        if hasattr(os, "posix_fadvise"):
            with contextlib.suppress(OSError):
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)

    def _validate(self, length: int, expected: str) -> None:
        try:
            fd = os.open(self.target.path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        except OSError as exc:
            raise self._target_error(exc, "read") from exc
        buffer = mmap.mmap(-1, self._chunk)
        view = memoryview(buffer)
        digest = hashlib.sha256()
        done = 0
        speed = _Speed()
        started = last = time.monotonic()
        speed.add(started, 0)
        try:
            if hasattr(os, "posix_fadvise"):
                with contextlib.suppress(OSError):
                    os.posix_fadvise(fd, 0, length, os.POSIX_FADV_SEQUENTIAL)
            while done < length:
                if self._cancel.is_set():
                    raise _Cancelled
                want = min(self._chunk, length - done)
                try:
                    n = os.readv(fd, [view[:want]])
                except OSError as exc:
                    raise self._target_error(exc, "read") from exc
                if n == 0:
                    break
                digest.update(view[:n])
                done += n
                now = time.monotonic()
                if now - last >= self._interval:
                    last = now
                    if not self.target_present():
                        raise self._unplugged()
                    self._report("validating", done, length, done / length, speed.add(now, done))
        finally:
            _release([view], [buffer])
            os.close(fd)
        if done != length or digest.hexdigest() != expected:
            raise FlashError(
                "EVALIDATION",
                "Validation failed: what was read back from the target differs from the image.",
                "The media may be failing or counterfeit; try another one.",
            )
        self._report("validating", done, length, 1.0, speed.add(time.monotonic(), done))

    def _report(
        self, phase: Phase, done: int, total: int | None, fraction: float, speed: float
    ) -> None:
        if self._on_progress is None:
            return
        fraction = min(max(fraction, 0.0), 1.0)
        eta: float | None = None
        if speed > 0 and fraction > 0:
            eta = max(total - done, 0) / speed if total else (done / fraction - done) / speed
        self._on_progress(FlashProgress(phase, done, total, fraction, speed, eta))

    def _cancelled(self, started: float, written: int, phase: Phase) -> FlashResult:
        duration = time.monotonic() - started
        return FlashResult("cancelled", written, duration, duration, 0.0, "", "cancelled", phase)


def _release(views: list[memoryview], maps: list[mmap.mmap]) -> None:
    """Free the buffers; one still referenced (by a traceback's frame) is left to the GC."""
    for v in views:
        with contextlib.suppress(BufferError):
            v.release()
    for m in maps:
        with contextlib.suppress(BufferError):
            m.close()


def _fraction(
    written: int, total: int | None, position: int, file_size: int, source: ImageSource
) -> float:
    if total and not source.size_is_estimate:
        return written / total
    return position / file_size if file_size else 0.0


def _same_file(a: Path, b: Path) -> bool:
    """Whether both paths name the same existing file."""
    try:
        sa, sb = os.stat(a), os.stat(b)
    except OSError:
        return False
    return (sa.st_dev, sa.st_ino) == (sb.st_dev, sb.st_ino)


def _sysfs_present(rdev: int) -> bool:
    """For a block device on Linux: whether the kernel still has it (sysfs entry)."""
    if not sys.platform.startswith("linux"):
        return True
    sysfs = Path(f"/sys/dev/block/{os.major(rdev)}:{os.minor(rdev)}")
    if not Path("/sys/dev/block").exists():
        return True
    return sysfs.exists()


def unmount_drive(drive: Drive) -> None:
    """Unmount every filesystem of ``drive`` (deepest mount point first) before writing it.

    Raises:
        FlashError: ``EBUSY`` when one cannot be unmounted (files open on it), ``EACCES``
            without the rights to unmount.
    """
    points = sorted(
        (mp.path for mp in drive.mountpoints if mp.path.startswith("/")),
        key=len,
        reverse=True,
    )
    for point in points:
        if sys.platform == "darwin":
            cmd = ["diskutil", "unmountDisk", drive.device]
        else:
            cmd = ["umount", point]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=30, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise FlashError("EBUSY", f"Could not unmount the drive ({exc}).") from exc
        if proc.returncode != 0:
            err = proc.stderr.strip()
            if "permission" in err.lower() or "must be superuser" in err.lower():
                from demo_app.flasher.errors import privilege_hint

                raise FlashError(
                    "EACCES", "Permission denied: the drive cannot be unmounted.", privilege_hint()
                )
            raise FlashError(
                "EBUSY",
                "The drive could not be unmounted: it is in use.",
                "Close the programs or windows using it, then try again.",
            )
        if sys.platform == "darwin":
            return
