"""Child process for the concurrent-start test: prints ``ready``, waits until the file GO exists
(spinning, so all children start within microseconds of each other), creates a client and
prints how its store opened and its device id. Usage: python open_child.py DATA_DIR GO."""

from __future__ import annotations

import os
import sys

import telemetry


def main() -> None:
    data_dir, go = sys.argv[1], sys.argv[2]
    print("ready", flush=True)
    while not os.path.exists(go):
        pass
    with telemetry.create_client("crash-test", "crash-app", data_dir=data_dir, upload=False) as c:
        opened = "memory" if c._store.in_memory else "file"
        print(opened, c._store.degraded, c.device_id, flush=True)


if __name__ == "__main__":
    main()
