"""The GUI's side of the write helper: start it (through pkexec when the drive needs root),
speak its protocol, and look like a :class:`~demo_app.flasher.writer.Flasher` to the caller.

The GUI never runs as root: when the target cannot be opened for writing by the user and the
GUI is not root, the helper is started as ``pkexec <helper command>``, and polkit asks for the
administrator's password through the desktop's own prompt (the action is described by
``packaging/linux/io.github.desktop_telemetry.DemoFlasher.policy``). Otherwise the helper is
started directly, with the GUI's rights.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import IO, Any, Final

from demo_app.flasher._protocol import (
    HELPER_FLAG,
    HELPER_MODULE,
    decode,
    encode,
    error_from_message,
    progress_from_message,
    request_message,
    result_from_message,
)
from demo_app.flasher.errors import FlashError, privilege_hint
from demo_app.flasher.source import ImageSource
from demo_app.flasher.writer import FlashProgress, FlashResult, Target

__all__ = ["HelperFlasher", "helper_command", "needs_elevation"]

#: pkexec's exit statuses: the user dismissed the prompt, or is not authorised.
_PKEXEC_DISMISSED: Final = 126
_PKEXEC_NOT_AUTHORISED: Final = 127
_STDERR_KEPT: Final = 4000


def helper_command() -> list[str]:
    """The command line that runs the helper with this installation."""
    if getattr(sys, "frozen", False):
        return [sys.executable, HELPER_FLAG]
    return [sys.executable, "-m", HELPER_MODULE]


def needs_elevation(target: Target) -> bool:
    """Whether writing ``target`` needs root that this process does not have (Linux)."""
    if not sys.platform.startswith("linux") or os.geteuid() == 0:
        return False
    return not os.access(target.path, os.W_OK)


class HelperFlasher:
    """One flash run by the write helper; the same surface as ``Flasher``: :meth:`run`
    (blocks; returns a :class:`FlashResult` or raises :class:`FlashError`), :meth:`cancel`
    from any thread, ``bytes_written``.

    ``elevate`` (default: :func:`needs_elevation`) starts the helper through ``pkexec``;
    ``command`` replaces :func:`helper_command`, ``pkexec`` the elevation program, ``env``
    the environment it is started with (pkexec gives the helper a clean one anyway).
    """

    def __init__(
        self,
        source: ImageSource,
        target: Target,
        *,
        validate: bool = True,
        on_progress: Callable[[FlashProgress], None] | None = None,
        elevate: bool | None = None,
        command: Sequence[str] | None = None,
        pkexec: str = "pkexec",
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.source = source
        self.target = target
        self.validate = validate
        self.elevate = needs_elevation(target) if elevate is None else elevate
        self._on_progress = on_progress
        self._command = list(command) if command is not None else helper_command()
        self._pkexec = pkexec
        self._env = dict(env) if env is not None else None
        self._cancel = threading.Event()
        self._lock = threading.Lock()
        self._proc: subprocess.Popen[bytes] | None = None
        self._accepted = False
        self._stderr: list[bytes] = []
        #: Bytes the helper reported written so far.
        self.bytes_written = 0

    @property
    def cancelled(self) -> bool:
        """Whether :meth:`cancel` was called."""
        return self._cancel.is_set()

    @property
    def command(self) -> list[str]:
        """The full command line (with ``pkexec`` in front when elevating). pkexec's own
        text prompt is turned off: the password is asked by the desktop's polkit agent, never
        on whatever terminal the GUI was started from."""
        if not self.elevate:
            return list(self._command)
        return [self._pkexec, "--disable-internal-agent", *self._command]

    def cancel(self) -> None:
        """Ask the helper to stop: a cancel line, then stdin closed. Before the helper
        accepted the request (pkexec's prompt may be up), the launcher is terminated."""
        self._cancel.set()
        with self._lock:
            if self._proc is not None:
                self._stop(self._proc)

    def run(self) -> FlashResult:
        """Start the helper, send the request, follow it to the end."""
        request = request_message(
            os.fspath(self.source.path),
            os.fspath(self.target.path),
            self.source.size,
            validate=self.validate,
        )
        try:
            proc = subprocess.Popen(
                self.command,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                close_fds=True,
                env=self._env,
            )
        except OSError as exc:
            raise self._launch_error(exc) from exc
        assert proc.stdin is not None
        assert proc.stdout is not None
        assert proc.stderr is not None
        stderr_thread = threading.Thread(
            target=self._drain, args=(proc.stderr,), name="helper-stderr", daemon=True
        )
        stderr_thread.start()
        with self._lock:
            self._proc = proc
            try:
                proc.stdin.write(encode(request))
                proc.stdin.flush()
            except OSError:
                pass  # the helper is gone already: its exit status says why
            if self._cancel.is_set():
                self._stop(proc)  # cancelled while it was being started
        try:
            final = self._follow(proc.stdout)
        finally:
            with self._lock:
                self._close_stdin(proc, say_cancel=False)
            returncode = proc.wait()
            stderr_thread.join(5)
            with self._lock:
                self._proc = None
        if final is None:
            if self._cancel.is_set():
                # Cancelled before the helper began (pkexec's prompt, or the checks).
                return FlashResult("cancelled", self.bytes_written, 0.0, 0.0, 0.0, "",
                                   "cancelled", "flashing")  # fmt: skip
            raise self._exit_error(returncode)
        if final.get("type") == "result":
            result = result_from_message(final)
            self.bytes_written = result.bytes_written
            return result
        error = error_from_message(final)
        self.bytes_written = int(final.get("bytes_written") or self.bytes_written)
        raise error

    # ------------------------------------------------------------------ internals

    def _follow(self, stdout: IO[bytes]) -> dict[str, Any] | None:
        for line in stdout:
            try:
                message = decode(line)
            except ValueError:
                continue  # not the protocol (a stray line): ignored
            kind = message.get("type")
            if kind == "accepted":
                with self._lock:
                    self._accepted = True
            elif kind == "progress":
                try:
                    progress = progress_from_message(message)
                except (KeyError, TypeError, ValueError):
                    continue
                if progress.phase == "flashing":
                    self.bytes_written = progress.bytes_done
                if self._on_progress is not None:
                    self._on_progress(progress)
            elif kind in ("result", "error"):
                return message
        return None

    def _stop(self, proc: subprocess.Popen[bytes]) -> None:
        """Cancel (the lock held): tell the helper and close its stdin; a launcher that has
        not started the helper yet (pkexec waiting for the password) is terminated."""
        self._close_stdin(proc, say_cancel=True)
        if not self._accepted:
            with contextlib.suppress(OSError):
                proc.send_signal(signal.SIGTERM)

    def _close_stdin(self, proc: subprocess.Popen[bytes], *, say_cancel: bool) -> None:
        stdin = proc.stdin
        if stdin is None or stdin.closed:
            return
        with contextlib.suppress(OSError, ValueError):
            if say_cancel:
                stdin.write(encode({"op": "cancel"}))
                stdin.flush()
        with contextlib.suppress(OSError, ValueError):
            stdin.close()

    def _drain(self, stream: IO[bytes]) -> None:
        for chunk in iter(lambda: stream.read(4096), b""):
            self._stderr.append(chunk)
            while sum(len(c) for c in self._stderr) > _STDERR_KEPT and len(self._stderr) > 1:
                self._stderr.pop(0)

    def _stderr_tail(self) -> str:
        return b"".join(self._stderr).decode(errors="replace").strip()[-_STDERR_KEPT:]

    def _launch_error(self, exc: OSError) -> FlashError:
        if self.elevate:
            return FlashError(
                "EACCES",
                "Permission denied: the drive needs administrator rights, and pkexec "
                "(polkit) could not be started to ask for them.",
                privilege_hint(),
                os_errno=exc.errno,
                detail=str(exc),
            )
        return FlashError(
            "EUNKNOWN",
            f"The write helper could not be started ({exc.strerror or exc}).",
            os_errno=exc.errno,
            detail=str(exc),
        )

    def _exit_error(self, returncode: int) -> FlashError:
        detail = self._stderr_tail() or None
        if self.elevate and returncode == _PKEXEC_DISMISSED:
            return FlashError(
                "EACCES",
                "Authentication was dismissed: the drive was not written.",
                "Flash again and enter the administrator password when asked.",
                detail=detail,
            )
        if self.elevate and returncode == _PKEXEC_NOT_AUTHORISED:
            return FlashError(
                "EACCES",
                "Not authorised to write the drive: polkit refused, or no polkit "
                "authentication agent is running in this session.",
                privilege_hint(),
                detail=detail,
            )
        return FlashError(
            "EUNKNOWN",
            f"The write helper stopped without an answer (exit status {returncode}).",
            detail=detail,
        )
