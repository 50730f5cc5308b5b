"""The collector child's side of its tie to the demo: it stops when the demo is gone.

Two mechanisms, each enough on its own. On Linux the kernel sends the child SIGTERM when the
demo's thread that started it ends (``PR_SET_PDEATHSIG``). Everywhere, the child's stdin is a
pipe whose write end only the demo holds: the child reads EOF once the demo is gone, however it
ended (even SIGKILL or a crash), and then sends itself the same SIGTERM. SIGTERM stops the
collector gracefully: uvicorn finishes the requests in flight, then the database is closed.
"""

from __future__ import annotations

import _thread
import ctypes
import os
import signal
import sys
import threading
from collections.abc import Sequence
from types import FrameType
from typing import Final

__all__ = ["DEATH_SIGNAL_FLAG", "PARENT_FLAG", "run", "set_death_signal"]

#: ``--parent PID``: the demo's process id; the child stops when that process is gone.
PARENT_FLAG: Final = "--parent"
#: Also ask Linux for SIGTERM when the starting thread ends (the demo passes it from its main
#: thread only: the kernel ties the death signal to the thread that forked, not the process).
DEATH_SIGNAL_FLAG: Final = "--death-signal"
_PR_SET_PDEATHSIG: Final = 1


def run(argv: Sequence[str]) -> int:
    """Run the collector with ``argv`` (its command line), after the child's own leading flags
    (``--parent PID`` and ``--death-signal``); returns the exit code."""
    args = list(argv)
    parent: int | None = None
    death_signal = False
    while args[:1] in ([PARENT_FLAG], [DEATH_SIGNAL_FLAG]):
        if args[0] == PARENT_FLAG:
            parent = int(args[1])
            del args[:2]
        else:
            death_signal = True
            del args[:1]
    if parent is not None:
        # Until uvicorn installs its own handler, SIGTERM unwinds: the database is closed.
        signal.signal(signal.SIGTERM, _exit_on_signal)
        if death_signal:
            set_death_signal(signal.SIGTERM)
        # The demo may have died before the death signal was set: then no signal comes.
        if os.getppid() != parent:
            print("collector child: the demo is already gone", file=sys.stderr, flush=True)
            return 0
        _stop_on_stdin_eof()
    from telemetry.collector import main

    return main(args)


def set_death_signal(signum: int) -> bool:
    """Ask Linux to send ``signum`` to this process when its parent thread ends; False where
    ``prctl`` is unavailable (other systems rely on the stdin pipe alone)."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        args = (ctypes.c_ulong(signum), ctypes.c_ulong(0), ctypes.c_ulong(0), ctypes.c_ulong(0))
        return int(libc.prctl(ctypes.c_int(_PR_SET_PDEATHSIG), *args)) == 0
    except (OSError, AttributeError):
        return False


def _exit_on_signal(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


def _stop_on_stdin_eof() -> None:
    """Deliver SIGTERM to the main thread once stdin reads EOF (the demo is gone)."""

    def watch() -> None:
        try:
            while os.read(0, 512):
                pass
        except OSError:
            pass
        print("collector child: the demo is gone; stopping", file=sys.stderr, flush=True)
        _thread.interrupt_main(signal.SIGTERM)

    threading.Thread(target=watch, name="demo-watch", daemon=True).start()
