"""Child process for the concurrent-open test: prints ``ready``, waits until the file GO exists
(spinning, so all children start within microseconds of each other), opens the store and
prints how it opened. Usage: python open_child.py DATA_DIR GO."""

from __future__ import annotations

import os
import sys

from telemetry.store import EventStore


def main() -> None:
    data_dir, go = sys.argv[1], sys.argv[2]
    print("ready", flush=True)
    while not os.path.exists(go):
        pass
    with EventStore(data_dir) as store:
        print("memory" if store.in_memory else "file", store.degraded, flush=True)


if __name__ == "__main__":
    main()
