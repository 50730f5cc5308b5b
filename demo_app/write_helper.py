"""The write helper: the only part of the demo that runs as root, started through pkexec.

``python -m demo_app.write_helper`` (frozen: ``demo-app --write-helper``) reads one JSON
request line on stdin (``demo_app.flasher._protocol``): the image, the target and the image
size the GUI expects. It checks the request itself, whatever the GUI checked:

* the image is opened with the rights of the user who asked (``PKEXEC_UID`` under pkexec),
  then read through that open file, so root rights never reach a file the user cannot read;
  its size must be the one the GUI expects;
* the target is a whole block device that the drive listing (``telemetry.drives``) knows,
  with media, neither a system drive nor a virtual one, and not the drive holding the image;
  or a regular file path, accepted only when the helper runs without pkexec (tests, a GUI
  that already has the rights).

It then flashes (``Flasher``: unmount, write, fsync, read back), streaming ``progress`` lines
and one final ``result`` or ``error`` line on stdout. ``{"op": "cancel"}`` on stdin, stdin
closing (the GUI quit or died), SIGTERM, SIGINT or SIGHUP cancel the flash. Nothing else is
written to stdout; diagnostics go to stderr.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import signal
import stat
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from types import FrameType
from typing import Any, BinaryIO

from demo_app.flasher import Flasher, FlashError, FlashProgress, ImageSource, Target, open_image
from demo_app.flasher._protocol import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_REFUSED,
    PROTOCOL_VERSION,
    decode,
    encode,
    error_message,
    progress_message,
    result_message,
)
from demo_app.targets import holds_image, image_location

__all__ = ["main"]

_SYSFS = Path("/sys")


class _Refused(FlashError):
    """A request the helper will not carry out."""

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__("EREFUSED", message, hint)


class _Lines:
    """Lines from a file descriptor, read with ``os.read``: no buffered reader whose lock a
    daemon thread could hold at interpreter shutdown (Python aborts then)."""

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._pending = b""

    def readline(self) -> bytes:
        """The next line (with its newline); ``b""`` at the end of input."""
        while b"\n" not in self._pending:
            try:
                chunk = os.read(self._fd, 65536)
            except InterruptedError:
                continue
            except OSError:
                chunk = b""
            if not chunk:
                line, self._pending = self._pending, b""
                return line
            self._pending += chunk
        line, _, self._pending = self._pending.partition(b"\n")
        return line + b"\n"


class _Output:
    """Protocol lines on stdout, one writer at a time; a closed pipe cancels the flash."""

    def __init__(self, stream: BinaryIO) -> None:
        self._stream = stream
        self._lock = threading.Lock()
        self.broken = threading.Event()

    def send(self, message: dict[str, Any]) -> None:
        if self.broken.is_set():
            return
        with self._lock:
            try:
                self._stream.write(encode(message))
                self._stream.flush()
            except (BrokenPipeError, OSError, ValueError):
                self.broken.set()


def main(argv: Sequence[str] | None = None) -> int:
    """Run one request from stdin; the exit status is the protocol's."""
    del argv  # no options: everything comes through the protocol
    out = _Output(sys.stdout.buffer)
    stdin = _Lines(sys.stdin.fileno())
    flasher: Flasher | None = None

    def on_signal(signum: int, frame: FrameType | None) -> None:
        del frame
        if flasher is None:
            raise SystemExit(128 + signum)
        flasher.cancel()

    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, on_signal)

    line = stdin.readline()
    try:
        source, target, validate = _check_request(line)
    except FlashError as exc:
        out.send(error_message(exc, refused=isinstance(exc, _Refused)))
        return EXIT_REFUSED

    def progress(report: FlashProgress) -> None:
        out.send(progress_message(report))
        if out.broken.is_set() and flasher is not None:
            flasher.cancel()  # nobody is listening any more

    flasher = Flasher(source, target, validate=validate, on_progress=progress)
    watcher = threading.Thread(
        target=_watch_stdin, args=(stdin, flasher), name="helper-stdin", daemon=True
    )
    watcher.start()
    out.send({"type": "accepted", "target": target.kind, "size": source.size})
    try:
        result = flasher.run()
    except FlashError as exc:
        out.send(error_message(exc, bytes_written=flasher.bytes_written))
        return EXIT_FAILED
    except Exception as exc:  # noqa: BLE001 - reported through the protocol, never a traceback
        error = FlashError("EUNKNOWN", f"Unexpected error in the write helper: {exc!r}")
        out.send(error_message(error, bytes_written=flasher.bytes_written))
        return EXIT_FAILED
    out.send(result_message(result))
    return EXIT_OK


def _watch_stdin(stdin: _Lines, flasher: Flasher) -> None:
    """Cancel on ``{"op": "cancel"}`` or when stdin closes."""
    while line := stdin.readline():
        with contextlib.suppress(ValueError):
            if decode(line).get("op") == "cancel":
                break
    flasher.cancel()


# ---------------------------------------------------------------------------------- checks


def _check_request(line: bytes) -> tuple[ImageSource, Target, bool]:
    if not line.strip():
        raise _Refused("No request: stdin closed before a request line.")
    try:
        request = decode(line)
    except ValueError as exc:
        raise _Refused(f"The request is not a JSON object ({exc}).") from exc
    if request.get("op") != "flash" or request.get("version") != PROTOCOL_VERSION:
        raise _Refused(
            f"Unknown request: op {request.get('op')!r}, version {request.get('version')!r} "
            f"(this helper speaks version {PROTOCOL_VERSION})."
        )
    source_path, target_path = request.get("source"), request.get("target")
    expected = request.get("expected_size")
    validate = request.get("validate", True)
    if not isinstance(source_path, str) or not isinstance(target_path, str):
        raise _Refused("The request needs 'source' and 'target' paths.")
    if not (expected is None or (isinstance(expected, int) and expected >= 0)):
        raise _Refused("'expected_size' must be a byte count or null.")
    if not isinstance(validate, bool):
        raise _Refused("'validate' must be true or false.")
    if not (os.path.isabs(source_path) and os.path.isabs(target_path)):
        raise _Refused("The source and target must be absolute paths.")
    source = _open_source(source_path)
    if expected is not None and source.size is not None and source.size != expected:
        raise _Refused(
            f"The image changed since it was selected ({source.size:,} bytes, "
            f"{expected:,} expected).",
            "Select the image again.",
        )
    return source, _check_target(target_path, source), validate


def _invoking_uid() -> int | None:
    """The user who asked for the helper through pkexec, ``None`` when run directly."""
    value = os.environ.get("PKEXEC_UID")
    if value is None:
        return None
    try:
        return int(value)
    except ValueError as exc:
        raise _Refused("PKEXEC_UID is not a user id.") from exc


def _open_source(path: str) -> ImageSource:
    """Open the image as the invoking user, then read it through that descriptor."""
    uid = _invoking_uid()
    with _as_user(uid):
        try:
            fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        except OSError as exc:
            raise FlashError.from_source(exc, None) from exc
        try:
            source = open_image(path)
            same = os.path.samestat(os.fstat(fd), os.stat(path))
        except BaseException:
            os.close(fd)
            raise
    if not same:
        os.close(fd)
        raise _Refused("The image file was replaced while it was being opened.")
    proc_fd = Path(f"/proc/self/fd/{fd}")
    if proc_fd.exists():
        # Read through the descriptor opened with the user's rights, whatever the path
        # names by now.
        return dataclasses.replace(source, path=proc_fd)
    return source


@contextlib.contextmanager
def _as_user(uid: int | None) -> Any:
    """Run the block with ``uid``'s file access rights (a root helper started by pkexec)."""
    if uid is None or os.geteuid() != 0 or uid == 0:
        yield
        return
    import pwd

    try:
        entry = pwd.getpwuid(uid)
    except KeyError as exc:
        raise _Refused(f"The invoking user {uid} does not exist.") from exc
    groups, egid = os.getgroups(), os.getegid()
    os.setgroups(os.getgrouplist(entry.pw_name, entry.pw_gid))
    os.setegid(entry.pw_gid)
    os.seteuid(uid)
    try:
        yield
    finally:
        os.seteuid(0)
        os.setegid(egid)
        os.setgroups(groups)


def _check_target(path: str, source: ImageSource) -> Target:
    elevated = _invoking_uid() is not None
    try:
        st = os.stat(path)
    except FileNotFoundError:
        st = None
    except OSError as exc:
        raise _Refused(f"The target cannot be examined: {exc.strerror}.") from exc
    if st is not None and stat.S_ISBLK(st.st_mode):
        return _check_drive(path, st, source)
    if st is None or stat.S_ISREG(st.st_mode):
        if elevated:
            raise _Refused(
                "With administrator rights the helper writes whole drives only, not files.",
                "Write files from the app itself.",
            )
        return Target.file(path)
    raise _Refused("The target is neither a drive nor a regular file.")


def _check_drive(path: str, st: os.stat_result, source: ImageSource) -> Target:
    from telemetry.drives import list_drives

    devnum = f"{os.major(st.st_rdev)}:{os.minor(st.st_rdev)}"
    if (_SYSFS / "dev" / "block" / devnum / "partition").exists():
        raise _Refused("The target is a partition.", "Pick the whole drive.")
    drive = None
    for candidate in list_drives(all=True):
        try:
            if os.stat(candidate.raw or candidate.device).st_rdev == st.st_rdev:
                drive = candidate
                break
        except OSError:
            continue
    if drive is None:
        raise _Refused("The target is not a drive the drive listing knows.")
    if drive.is_system:
        raise _Refused(
            "The target is a system drive: the helper does not write it.",
            "Pick a removable drive.",
        )
    if drive.is_virtual:
        raise _Refused("The target is a virtual device, not a flash target.")
    if not drive.has_media:
        raise _Refused("The target drive has no media.", "Insert a card.")
    if holds_image(drive, image_location(source.path)):
        raise _Refused("The target drive holds the image.", "Pick another drive.")
    return Target.for_drive(drive)


if __name__ == "__main__":
    raise SystemExit(main())
