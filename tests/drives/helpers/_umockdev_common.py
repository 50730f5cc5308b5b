"""What the umockdev hot-plug drivers share: fixture text handling and the worker child.

Imported by path (``sys.path`` relative to the script's own file) from
``tests/drives/helpers/hotplug_driver.py`` and ``tests/qt/helpers/sd_card_driver.py``, which run
as scripts under Debian's system Python inside ``umockdev-run``: standard library only, no
import of the project or of pytest. The worker each driver starts (with the project's
interpreter, in the same test bed) prints one JSON object per line: ``{"ready": ...}`` first,
then what it observes, then ``{"stopped": ...}`` after SIGINT.
"""

from __future__ import annotations

import json
import queue
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

Message = dict[str, Any]


def strip_comments(text: str) -> str:
    """A fixture without its ``#`` provenance lines (umockdev does not accept them)."""
    return "\n".join(ln for ln in text.splitlines() if not ln.startswith("#")).strip() + "\n"


def blocks(text: str) -> list[tuple[str, str]]:
    """``(/sys/devices/... path, block)`` per device description."""
    out = []
    for block in text.strip().split("\n\n"):
        block = block.strip("\n")
        if block:
            out.append(("/sys" + block.splitlines()[0][3:].strip(), block))
    return out


def parents_first(text: str, keep: Callable[[str], bool]) -> str:
    """The devices whose sysfs path ``keep`` accepts, parents first (as the kernel announces
    them; recordings list children first)."""
    kept = [block for path, block in reversed(blocks(text)) if keep(path)]
    return "\n\n".join(kept) + "\n"


class Worker:
    """A worker script started with ``python`` and ``env``; its stdout lines are decoded as
    JSON (``{"raw": line}`` otherwise) and queued, its stderr lines collected in ``stderr``."""

    def __init__(self, python: str, script: Path, env: dict[str, str], *, wait: float) -> None:
        self.wait = wait
        self.proc = subprocess.Popen(
            [python, str(script)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        self.lines: queue.Queue[Message] = queue.Queue()
        self.stderr: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()
        threading.Thread(target=self._read_err, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            try:
                self.lines.put(json.loads(line))
            except ValueError:
                self.lines.put({"raw": line})

    def _read_err(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.stderr.append(line)

    def wait_for(
        self, pred: Callable[[Message], bool], timeout: float | None = None
    ) -> tuple[Message | None, float]:
        """First message matching ``pred`` (``None`` after ``timeout`` s, default ``wait``) and
        the time it arrived (monotonic)."""
        end = time.monotonic() + (self.wait if timeout is None else timeout)
        while True:
            left = end - time.monotonic()
            if left <= 0:
                return None, time.monotonic()
            try:
                msg = self.lines.get(timeout=left)
            except queue.Empty:
                return None, time.monotonic()
            if pred(msg):
                return msg, time.monotonic()

    def stop(self, timeout: float) -> Message | None:
        """SIGINT, then the worker's ``stopped`` report (each wait bounded by ``timeout``)."""
        self.proc.send_signal(signal.SIGINT)
        msg, _ = self.wait_for(lambda m: "stopped" in m, timeout=timeout)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=5)
        return msg
