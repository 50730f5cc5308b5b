"""Child process for crash tests: tracks events in a loop, printing each insert_id once
``track()`` has returned. Usage: python track_child.py DATA_DIR [COUNT] [TAG]."""

from __future__ import annotations

import sys

import telemetry


def main() -> None:
    data_dir = sys.argv[1]
    count = int(sys.argv[2]) if len(sys.argv) > 2 else 10**9
    tag = sys.argv[3] if len(sys.argv) > 3 else "child"
    # A cap above anything a test writes, so only a crash could lose an event.
    client = telemetry.create_client(
        "crash-test",
        "crash-app",
        data_dir=data_dir,
        upload=False,
        max_events=10**7,
        max_bytes=2**40,
    )
    print("ready", flush=True)
    for i in range(count):
        insert_id = client.track("Tick", {"i": i, "tag": tag})
        sys.stdout.write(f"{insert_id}\n")
        sys.stdout.flush()
    client.close()
    print("done", flush=True)


if __name__ == "__main__":
    main()
