"""The store under faults: caps, corrupt files, read-only and full disks, kills, two writers."""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import telemetry
from telemetry._store import EventStore, _schema
from tests.core.conftest import user_events

CHILD = Path(__file__).with_name("track_child.py")
OPEN_CHILD = Path(__file__).with_name("open_child.py")
DAY_MS = 86_400_000


@contextmanager
def tmpfs(path: Path, size: str) -> Iterator[Path]:
    """A real tiny filesystem (needs root, as in CI) so disk-full and read-only are real."""
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], check=True)
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=True)


def test_count_cap_drops_oldest_and_counts(data_dir: Path) -> None:
    with telemetry.create_client(
        "proj1", "app", data_dir=data_dir, upload=False, max_events=100
    ) as client:
        for i in range(250):
            client.track("E", {"i": i})
        client._store.maintain()
        kept = [e["event_properties"]["i"] for e in user_events(client)]
        assert len(list(client._store.iter_events())) == 100
        assert kept == list(range(150, 250))
        dropped = client._store.counters()["dropped_cap_count"]
        assert dropped == 151  # 150 tracked events plus the start-up $identify
        assert client._store.dropped(1)[0]["reason"] == "dropped_cap_count"


def test_byte_cap_drops_oldest_and_counts(data_dir: Path) -> None:
    with telemetry.create_client(
        "proj1", "app", data_dir=data_dir, upload=False, max_bytes=20_000
    ) as client:
        for i in range(200):
            client.track("E", {"i": i, "pad": "x" * 300})
        client._store.maintain()
        stats = client._store.stats()
        assert stats.bytes <= 20_000
        assert stats.bytes > 20_000 - 1_000  # only what was needed went
        assert client._store.counters()["dropped_cap_bytes"] == 201 - stats.events
        assert user_events(client)[-1]["event_properties"]["i"] == 199


def test_events_older_than_30_days_expire(data_dir: Path) -> None:
    with EventStore(data_dir) as store:
        now = time.time_ns() // 1_000_000
        for i, age_days in enumerate([40, 31, 29, 1]):
            at = now - age_days * DAY_MS
            payload = json.dumps({"event_type": "E", "insert_id": f"id-{i}", "time": at, "i": i})
            store.append(f"id-{i}", "E", at, payload)
        drops = store.enforce_limits(now)
        assert drops["dropped_age"] == 2
        assert [json.loads(e.json)["i"] for e in store.iter_events()] == [2, 3]
        assert store.counters()["dropped_age"] == 2


def test_corrupt_file_is_moved_aside_and_app_keeps_running(data_dir: Path) -> None:
    data_dir.mkdir(parents=True)
    (data_dir / "telemetry.db").write_bytes(b"this is not a database" * 200)
    with telemetry.create_client("proj1", "app", data_dir=data_dir, upload=False) as client:
        assert client.track("After corruption") is not None
        assert "corrupt" in (client._store.degraded or "")
        assert client._store.counters()["store_recovered_corrupt"] == 1
        assert [e["event_type"] for e in user_events(client)] == ["After corruption"]
    aside = list(data_dir.glob("telemetry.db.corrupt-*"))
    assert len(aside) == 1 and aside[0].read_bytes().startswith(b"this is not")


def test_damaged_pages_are_detected(data_dir: Path) -> None:
    with telemetry.create_client("proj1", "app", data_dir=data_dir, upload=False) as client:
        for i in range(500):
            client.track("E", {"i": i, "pad": "y" * 200})
    db = data_dir / "telemetry.db"
    raw = bytearray(db.read_bytes())
    for offset in range(4096 * 3, min(len(raw), 4096 * 12), 7):
        raw[offset] = 0xFF
    db.write_bytes(bytes(raw))
    with telemetry.create_client("proj1", "app", data_dir=data_dir, upload=False) as client:
        assert client.track("Still works") is not None
        assert client._store.counters().get("store_recovered_corrupt") == 1


def test_read_only_data_dir_falls_back_to_memory(tmp_path: Path) -> None:
    with tmpfs(tmp_path / "ro", "1m") as mount:
        with telemetry.create_client("proj1", "app", data_dir=mount, upload=False) as client:
            client.track("Before")
        subprocess.run(["mount", "-o", "remount,ro", str(mount)], check=True)
        with telemetry.create_client("proj1", "app", data_dir=mount, upload=False) as client:
            assert client.track("While read-only") is not None  # no exception reaches the app
            assert "memory" in (client._store.degraded or "")
            assert [e["event_type"] for e in user_events(client)] == ["While read-only"]
        with telemetry.create_client("proj1", "app", data_dir=mount / "new", upload=False) as c:
            assert c.track("No dir possible") is not None


def fill_the_disk(mount: Path) -> Path:
    """Write zeros to a file on ``mount`` until the filesystem is full; returns the file."""
    filler = mount / "filler"
    with open(filler, "wb", buffering=0) as f:
        try:
            while True:
                f.write(b"\0" * 4096)
        except OSError:
            pass  # the disk is now full
    return filler


def test_full_disk_keeps_events_in_memory_then_writes_them(tmp_path: Path) -> None:
    with tmpfs(tmp_path / "full", "4m") as mount:
        client = telemetry.create_client("proj1", "app", data_dir=mount / "t", upload=False)
        try:
            filler = fill_the_disk(mount)
            ids = [client.track("While full", {"i": i, "pad": "z" * 2000}) for i in range(40)]
            assert all(ids)  # track() never raised
            assert client._store.overflow_size > 0
            assert client._store.counters()["store_write_errors"] > 0
            filler.unlink()
            client._store.maintain()
            assert client._store.overflow_size == 0
            stored = [e["insert_id"] for e in user_events(client)]
            assert sorted(stored) == sorted(ids)  # each exactly once
        finally:
            client.close()


def test_a_thousand_events_in_memory_fit_in_the_room_freed(tmp_path: Path) -> None:
    """Found by an outside audit: the events waiting in memory were written back one commit
    each, every commit adding WAL pages, so 1,000 small events did not fit in the megabyte freed
    and were lost at exit. They are written in transactions of 500 now (2 MiB is room for
    that with a margin; a commit per event needs about 12 MiB)."""
    with tmpfs(tmp_path / "full", "3m") as mount:
        client = telemetry.create_client("proj1", "app", data_dir=mount / "t", upload=False)
        try:
            client._store.maintain()
            filler = fill_the_disk(mount)
            ids = [client.track("While full", {"i": i, "pad": "z" * 150}) for i in range(1_000)]
            assert all(ids)
            assert client._store.overflow_size > 0  # what did not fit waits in memory
            os.truncate(filler, max(0, filler.stat().st_size - 2 * 1024 * 1024))  # 2 MiB back
            client._store.maintain()
            assert client._store.overflow_size == 0
            stored = [e["insert_id"] for e in user_events(client)]
            assert sorted(stored) == sorted(ids)
        finally:
            client.close()
        assert "dropped_disk_full" not in client.status()["counters"]


def test_schema_migrates_from_version_1(data_dir: Path) -> None:
    data_dir.mkdir(parents=True)
    conn = sqlite3.connect(data_dir / "telemetry.db")
    conn.executescript(_schema.MIGRATIONS[0])
    conn.execute("PRAGMA user_version = 1")
    conn.execute(
        "INSERT INTO events(insert_id, event_type, time, size, payload) VALUES (?, ?, ?, ?, ?)",
        ("old-1", "Old", 1, 2, "{}"),
    )
    conn.commit()
    conn.close()
    with EventStore(data_dir) as store:
        check = sqlite3.connect(data_dir / "telemetry.db")
        try:
            assert check.execute("PRAGMA user_version").fetchone()[0] == _schema.SCHEMA_VERSION
            tables = {r[0] for r in check.execute("SELECT name FROM sqlite_master")}
            assert "upload_lease" in tables
        finally:
            check.close()
        assert [e.insert_id for e in store.iter_events()] == ["old-1"]


def test_newer_schema_is_not_destroyed(data_dir: Path) -> None:
    data_dir.mkdir(parents=True)
    conn = sqlite3.connect(data_dir / "telemetry.db")
    conn.execute("PRAGMA user_version = 99")
    conn.close()
    with EventStore(data_dir) as store:
        assert "memory" in (store.degraded or "")
    assert not list(data_dir.glob("*.corrupt-*"))


def test_processes_starting_at_once_on_a_new_data_dir_share_the_file_and_device_id(
    tmp_path: Path,
) -> None:
    # Switching a new file to WAL needs an exclusive lock; SQLite refuses the loser of two
    # simultaneous openers at once ("database is locked"), bypassing the busy timeout. Before the
    # retry, about a quarter of such opens fell back to memory and lost their events. And each
    # process that found no device id made its own: the apps' events went out under several ids.
    for round_ in range(8):
        data_dir, go = tmp_path / f"data{round_}", tmp_path / f"go{round_}"
        procs = [
            subprocess.Popen(
                [sys.executable, str(OPEN_CHILD), str(data_dir), str(go)],
                stdout=subprocess.PIPE,
                text=True,
            )
            for _ in range(4)
        ]
        for proc in procs:
            assert proc.stdout is not None
            assert proc.stdout.readline().strip() == "ready"
        go.touch()
        outputs = [proc.communicate(timeout=60)[0].split() for proc in procs]
        assert all(proc.returncode == 0 for proc in procs)
        assert [out[:2] for out in outputs] == [["file", "None"]] * 4, f"round {round_}"
        with EventStore(data_dir) as store:
            stored_id = store.get_state("device_id")
        assert [out[2] for out in outputs] == [stored_id] * 4, f"round {round_}"


def test_update_state_loses_no_update_between_stores_on_one_file(data_dir: Path) -> None:
    # What the deletion-request list and the exposed-id list rely on: an opt-out appending
    # while the uploader removes a delivered request must keep both changes.
    with EventStore(data_dir) as one, EventStore(data_dir) as two:

        def bump(store: EventStore) -> None:
            for _ in range(150):
                store.update_state("n", lambda value: (value or 0) + 1)

        threads = [threading.Thread(target=bump, args=(s,)) for s in (one, two, one, two)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert one.get_state("n") == two.get_state("n") == 600
        assert one.update_state("n", lambda value: None) is None
        assert "n" not in two.state()
        assert two.setdefault_state("k", "first") == "first"
        assert one.setdefault_state("k", "second") == "first"


def test_two_processes_sharing_a_data_dir_lose_and_duplicate_nothing(data_dir: Path) -> None:
    n = 1500
    procs = [
        subprocess.Popen(
            [sys.executable, str(CHILD), str(data_dir), str(n), tag],
            stdout=subprocess.PIPE,
            text=True,
        )
        for tag in ("a", "b")
    ]
    outputs = [p.communicate(timeout=120)[0].split() for p in procs]
    assert all(p.returncode == 0 for p in procs)
    printed = [line for out in outputs for line in out if line not in ("ready", "done")]
    assert len(printed) == 2 * n
    with EventStore(data_dir) as store:
        stored = [e.as_dict() for e in store.iter_events() if e.event_type == "Tick"]
    assert len(stored) == 2 * n
    assert sorted(e["insert_id"] for e in stored) == sorted(printed)
    assert len({e["event_id"] for e in stored}) == 2 * n  # event ids unique across processes
    assert len({e["device_id"] for e in stored}) == 1  # and one device id for both
    for tag in ("a", "b"):
        assert sorted(
            e["event_properties"]["i"] for e in stored if e["event_properties"]["tag"] == tag
        ) == list(range(n))


def test_sigkill_at_random_moments_loses_and_duplicates_nothing(data_dir: Path) -> None:
    rng = random.Random(20261123)
    confirmed: list[str] = []
    kills = 0
    while kills < 50:
        proc = subprocess.Popen(
            [sys.executable, str(CHILD), str(data_dir)], stdout=subprocess.PIPE, text=True
        )
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready"
        deadline = time.monotonic() + rng.uniform(0.0, 0.15)
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if line.strip():
                confirmed.append(line.strip())
        os.kill(proc.pid, signal.SIGKILL)
        # Read the rest through the same buffered reader (communicate() with a timeout reads
        # the raw pipe and would skip what readline() already buffered).
        rest = proc.stdout.read()
        proc.stdout.close()
        proc.wait(timeout=30)
        confirmed.extend(line for line in rest.split() if line not in ("ready", "done"))
        assert proc.returncode == -signal.SIGKILL
        kills += 1
    with EventStore(data_dir) as store:
        stored = [e.insert_id for e in store.iter_events() if e.event_type == "Tick"]
        assert not {k: v for k, v in store.counters().items() if k.startswith("dropped")}
    assert len(stored) == len(set(stored)), "an event was stored twice"
    missing = set(confirmed) - set(stored)
    assert not missing, f"{len(missing)} events whose track() returned were lost"
    assert len(confirmed) > 1000
