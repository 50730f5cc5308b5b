"""One uploader per data dir at a time, across processes: two app instances never send one
event twice."""

from __future__ import annotations

import json
from pathlib import Path

from telemetry.store import EventStore
from telemetry.uploader import Uploader
from tests._fixtures import RunningCollector
from tests.delivery._support import (
    FAST,
    PROJECT,
    assert_exactly_once,
    prefill,
    read_line,
    run_child,
)
from tests.delivery.fault_server import FaultServer


def test_two_processes_on_one_data_dir_never_send_an_event_twice(
    server: FaultServer, collector: RunningCollector, tmp_path: Path, data_dir: Path
):
    prefill(data_dir, 0)  # one device id and $identify for both instances
    # Small batches, no pacing: many chances for the two uploaders to collide.
    policy = {
        "max_batch_events": 20,
        "flush_interval": 0.05,
        "after_success_delay": 0.0,
        "max_requests_per_minute": 100_000,
        "backoff_initial": 0.2,
    }
    children = [
        run_child(
            "track-flush",
            str(data_dir),
            server.url,
            "1500",
            tag,
            "60",
            str(tmp_path / f"{tag}.txt"),
            policy=policy,
        )
        for tag in ("first", "second")
    ]
    summaries = [json.loads(read_line(child, 90)) for child in children]
    for child in children:
        assert child.wait(15) == 0
    assert all(s["drained"] for s in summaries)
    tracked = [
        i for tag in ("first", "second") for i in (tmp_path / f"{tag}.txt").read_text().split()
    ]
    assert len(tracked) == 3_000
    sent = server.sent_counts()
    assert set(tracked) <= set(sent)
    assert max(sent.values()) == 1, "an event was sent twice"
    assert len(server.requests) >= 3_000 // 20
    assert_exactly_once(collector.database, list(sent))


def test_a_held_lease_keeps_another_uploader_from_sending(server: FaultServer, data_dir: Path):
    ids = prefill(data_dir, 5)
    url = f"{server.url}/amplitude/2/httpapi"
    with EventStore(data_dir) as mine, EventStore(data_dir) as theirs:
        assert theirs.acquire_lease("another-instance", 60_000)
        uploader = Uploader(mine, url=url, api_key=PROJECT, policy=FAST)
        assert uploader.run_once() == "lease-held-elsewhere"
        assert uploader.status()["last_result"] == "another process is uploading"
        assert server.requests == []
        theirs.release_lease("another-instance")
        assert uploader.run_once() == "sent"
        assert server.requests[0].insert_ids == ids
        assert uploader.run_once() == "idle"  # and the lease is given up when idle
        assert theirs.acquire_lease("another-instance", 60_000)
        uploader.stop(1.0)
