"""Nothing lost without a count: a damaged database, a vanished data dir, a full disk."""

from __future__ import annotations

import logging
import random
import shutil
import sqlite3
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

import telemetry
from telemetry._delivery._status import status_dict
from telemetry._store import EventStore
from telemetry.testing import RecordingDestination

PAD = "x" * 200


@contextmanager
def tmpfs(path: Path, size: str) -> Iterator[Path]:
    """A real tiny filesystem (needs root, as in CI), so the disk is really full."""
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], check=True)
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=True)


def wait_until(condition: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def damage(db: Path, seed: int = 1) -> None:
    """8 KiB of random bytes written in the middle of the file."""
    with open(db, "r+b") as f:
        f.seek(db.stat().st_size // 2)
        f.write(random.Random(seed).randbytes(8192))


def readable_insert_ids(db: Path, highest: int) -> set[str]:
    """What an independent read-only scan reads: a lookup of each queue id on its own."""
    conn = sqlite3.connect(f"file:{db}?mode=ro&immutable=1", uri=True)
    found: set[str] = set()
    try:
        for row_id in range(1, highest + 1):
            try:
                row = conn.execute("SELECT insert_id FROM events WHERE id = ?", (row_id,))
                found.update(r[0] for r in row.fetchall())
            except sqlite3.DatabaseError:
                pass
    finally:
        conn.close()
    return found


def fill(client: telemetry.Client, count: int, name: str = "E") -> None:
    for i in range(count):
        client.track(name, {"i": i, "pad": PAD})


def test_a_damaged_database_is_salvaged_row_by_row_and_delivered(data_dir: Path) -> None:
    with telemetry.create_client("proj1", "app", data_dir=data_dir, upload=False) as client:
        fill(client, 10_000)
        queued = client.status()["queued"]
        device_id = client.device_id
    db = data_dir / "telemetry.db"
    damage(db)
    readable = readable_insert_ids(db, queued + 100)
    assert len(readable) < queued  # the damage hit the queue

    destination = RecordingDestination()
    fast = telemetry.UploadPolicy(max_requests_per_minute=600)
    with telemetry.create_client(
        "proj1", "app", data_dir=data_dir, destination=destination, upload_policy=fast
    ) as client:
        counters = client.status()["counters"]
        assert client.device_id == device_id  # the state was salvaged too
        client.mark_notice_answered()
        assert client.flush(60.0)
    delivered = {e["insert_id"] for e in destination.events}
    kept = delivered & readable
    assert len(kept) >= 0.99 * len(readable)
    assert counters["store_salvaged_events"] == len(kept)
    assert counters["store_salvage_lost"] == queued - len(kept)  # the rest is counted
    assert len(list(data_dir.glob("telemetry.db.corrupt-*"))) == 1


def test_corruption_found_while_running_is_shown_then_salvaged(data_dir: Path) -> None:
    store = EventStore(data_dir, max_bytes=100 * 2**20)
    pad = "y" * 2_000  # a 20 MB queue: far more than SQLite keeps in memory (2 MB)
    try:
        now = int(time.time() * 1000)
        for i in range(10_000):
            store.append(
                f"id-{i}", "E", now, f'{{"event_type":"E","insert_id":"id-{i}","p":"{pad}"}}'
            )
        store.set_state("device_id", "dev-1")
        store.maintain()
        store.checkpoint("TRUNCATE")
        assert store.path is not None
        damage(store.path)
        store.stats()
        list(store.iter_events())  # reads every page of the queue
        assert "corrupt" in (status_dict(store)["degraded"] or "")
        store.maintain()  # the housekeeping pass recovers
        counters = store.counters()
        salvaged = counters["store_salvaged_events"]
        assert salvaged >= 9_900
        assert salvaged + counters["store_salvage_lost"] == 10_000
        assert store.stats().events == salvaged
        assert store.get_state("device_id") == "dev-1"
        assert "corrupt database moved to" in (store.degraded or "")
    finally:
        store.close()


def test_a_removed_data_dir_is_recreated_with_everything_still_readable(
    data_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="telemetry.store")
    with telemetry.create_client("proj1", "app", data_dir=data_dir, upload=False) as client:
        fill(client, 10_000, "Before")
        client._store.maintain()
        while data_dir.exists():  # rm -rf, also of what housekeeping recreates meanwhile
            shutil.rmtree(data_dir, ignore_errors=True)
        fill(client, 5_000, "After")
    with telemetry.create_client("proj1", "app", data_dir=data_dir, upload=False) as client:
        kinds = [e.event_type for e in client._store.iter_events()]
        assert kinds.count("Before") == 10_000
        assert kinds.count("After") == 5_000
        assert client.status()["counters"]["store_file_vanished"] == 1
    assert any("vanished" in r.getMessage() for r in caplog.records)


def test_a_full_disk_counts_each_lost_event_and_writing_resumes(tmp_path: Path) -> None:
    with tmpfs(tmp_path / "full", "512k") as mount:
        client = telemetry.create_client("proj1", "app", data_dir=mount / "t", upload=False)
        try:
            fill(client, 10_000)  # far more than 512 KiB: the disk fills up
            assert "disk full" in (client.status()["degraded"] or "")
            subprocess.run(["mount", "-o", "remount,size=16m", str(mount)], check=True)
            wait_until(lambda: client.status()["degraded"] is None)  # no restart needed
            fill(client, 100, "Later")
        finally:
            client.close()
        with telemetry.create_client("proj1", "app", data_dir=mount / "t", upload=False) as c:
            kinds = [e.event_type for e in c._store.iter_events()]
            lost = c.status()["counters"].get("dropped_disk_full", 0)
    assert kinds.count("Later") == 100
    assert lost > 0
    assert kinds.count("E") + lost == 10_000  # every event is stored or counted
