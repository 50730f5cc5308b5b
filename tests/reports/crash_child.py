"""A child app for the crash tests: ``python -m tests.reports.crash_child DATA_DIR MODE``.

It opens a client (no uploads: the notice is answered, so reports are kept to be sent by the
next start), captures errors, then dies as MODE says:

* ``uncaught``: an uncaught exception in the main thread, then SIGKILL right after the hooks
  ran (no atexit, no close);
* ``segfault``: a segmentation fault in native code (``ctypes.string_at(0)``);
* ``segfault-off``: the same, after the user turned telemetry off.
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import telemetry


def crash_in_native_code() -> None:
    import ctypes

    ctypes.string_at(0)


def fail_in_app_code() -> None:
    raise RuntimeError("the image could not be verified")


def main() -> None:
    data_dir, mode = Path(sys.argv[1]), sys.argv[2]
    client = telemetry.create_client(
        "crash-test", "crash-app", "9.9.9", "http://127.0.0.1:9", data_dir=data_dir, upload=False
    )
    client.mark_notice_answered()
    if mode == "segfault-off":
        client.set_consent(False)
    client.capture_errors(app_root=Path(__file__).resolve().parents[2])
    client.track("Before the crash")
    print("ready", flush=True)
    if mode == "uncaught":
        reporting_hook = sys.excepthook

        def then_killed(*args: object) -> None:
            reporting_hook(*args)  # type: ignore[arg-type]
            os.kill(os.getpid(), signal.SIGKILL)

        sys.excepthook = then_killed
        fail_in_app_code()
    elif mode in ("segfault", "segfault-off"):
        crash_in_native_code()


if __name__ == "__main__":
    main()
