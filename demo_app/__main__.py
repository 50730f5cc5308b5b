"""``python -m demo_app``: the quick-start example until the Qt flasher lands.

Starts the embedded collector on 127.0.0.1 in a child process, tracks a few Etcher-style
events through the public API, delivers them, and prints ``telemetry status``.
"""

from __future__ import annotations

import argparse
import contextlib
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import telemetry
from telemetry.cli import main as telemetry_cli


def start_collector(database: Path) -> tuple[subprocess.Popen[str], str]:
    """The collector as a child process on a free loopback port; returns it and its URL."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "telemetry.collector", "--host", "127.0.0.1", "--port", "0",
         "--database", str(database)],
        stdout=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()
    if not line.startswith("listening on "):
        proc.kill()
        raise SystemExit(f"demo: the collector did not start ({line!r})")
    return proc, line.removeprefix("listening on ")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="demo_app", description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", help="telemetry data dir (default: a temporary one)")
    args = parser.parse_args(argv)
    with contextlib.ExitStack() as stack:
        data_dir = Path(args.data_dir or stack.enter_context(tempfile.TemporaryDirectory()))
        collector, url = start_collector(data_dir / "collector.db")
        stack.callback(collector.wait, 10)
        stack.callback(collector.terminate)
        print(f"collector listening on {url}")
        client = telemetry.create_client(
            "etcher-demo", "demo-app", "0.1.0", endpoint=url, data_dir=data_dir / "client"
        )
        with client:
            tracker = telemetry.Tracker(client, prefix="Etcher")
            session = {"applicationSessionUuid": str(uuid.uuid4())}
            workflow = {**session, "flashingWorkflowUuid": str(uuid.uuid4())}
            tracker.track("Application start", {**session, "packageType": "python"})
            tracker.track_screen_view("Main", workflow, opened_at=time.monotonic())
            tracker.track("Select image", {**workflow, "image": {"extension": "img.xz"}})
            tracker.track("Flash", {**workflow, "driveCount": 1, "status": "started"})
            tracker.track("Done", {**workflow, "status": "finished", "bytesWritten": 1 << 20})
            delivered = client.flush(timeout=15)
            print(f"events delivered: {delivered}\n")
            telemetry_cli(["--data-dir", str(data_dir / "client"), "status"])
        with sqlite3.connect(data_dir / "collector.db") as db:
            rows = db.execute("SELECT event_type, device_id FROM events ORDER BY id").fetchall()
        print(f"\nthe collector stored {len(rows)} events:")
        for event_type, device_id in rows:
            print(f"  {event_type:<28} device {device_id}")
    return 0 if delivered else 1


if __name__ == "__main__":
    raise SystemExit(main())
