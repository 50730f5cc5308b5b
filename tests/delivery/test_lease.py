"""One uploader per data dir at a time, across processes: two app instances never send one
event twice."""

from __future__ import annotations

import json
import sqlite3
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from telemetry._delivery import Uploader
from telemetry._store import EventStore, StoredEvent
from telemetry.consent import DELETION_KEY
from tests._fixtures import RunningCollector
from tests.delivery._support import (
    FAST,
    PROJECT,
    assert_exactly_once,
    fast_policy,
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


def test_a_deletion_request_waits_for_the_lease_and_is_sent_once(
    server: FaultServer, collector: RunningCollector, data_dir: Path
):
    """Two windows of one app both see the queued deletion request after an opt-out: only the
    one holding the lease sends it, and the other finds it delivered when its turn comes."""
    request = {"device_id": "d" * 36, "project": PROJECT, "reason": "opt_out", "created_at": 1}
    url, deletion = f"{server.url}/amplitude/2/httpapi", f"{server.url}/deletion"
    with EventStore(data_dir) as mine, EventStore(data_dir) as theirs:
        mine.set_state(DELETION_KEY, [request])
        first = Uploader(mine, url=url, api_key=PROJECT, policy=FAST, deletion_url=deletion)
        second = Uploader(theirs, url=url, api_key=PROJECT, policy=FAST, deletion_url=deletion)
        assert theirs.acquire_lease(second._owner, 60_000)  # the other window is uploading
        assert first.run_once() == "lease-held-elsewhere"
        assert server.requests == []
        assert second.run_once() == "deleted"
        assert second.run_once() == "idle"  # and the lease is given up
        assert first.run_once() == "idle"  # nothing left to send
    assert [r.target for r in server.requests] == ["/deletion"]
    with sqlite3.connect(data_dir / "telemetry.db") as conn:
        assert conn.execute("SELECT count(*) FROM upload_lease").fetchone()[0] == 0


def test_an_event_landing_as_the_uploader_goes_idle_is_not_lost(
    server: FaultServer, data_dir: Path, monkeypatch: pytest.MonkeyPatch
):
    """An event tracked between the cycle finding the queue empty and the uploader going idle
    (forced here) makes it look again at once, not after the 60 s idle check; the event then
    waits the flush interval like any other (it is not sent alone at once)."""
    url = f"{server.url}/amplitude/2/httpapi"
    with EventStore(data_dir) as store:
        uploader = Uploader(
            store, url=url, api_key=PROJECT, policy=fast_policy(flush_interval=60.0)
        )
        real_pending = store.pending

        def pending_then_a_track(*args: Any, **kwargs: Any) -> list[StoredEvent]:
            found = real_pending(*args, **kwargs)
            monkeypatch.setattr(store, "pending", real_pending)  # once
            insert_id = str(uuid.uuid4())
            now = int(time.time() * 1000)
            event = {
                "event_type": "Late",
                "insert_id": insert_id,
                "time": now,
                "device_id": "late-device-0001",
            }
            assert store.append(insert_id, "Late", now, json.dumps(event))
            uploader.notify_appended()  # as Client.track() does after its append
            return found

        monkeypatch.setattr(store, "pending", pending_then_a_track)
        assert uploader.run_once() == "asked-again"
        assert uploader._schedule.wait_time()[0] == 0.0
        assert uploader.run_once() == "waiting"  # a partial batch: the flush interval applies
        assert 30.0 < uploader._schedule.wait_time()[0] <= 60.0
        assert uploader.run_once(closing=True) == "sent"  # as at close or flush: delivered
    assert [len(r.events) for r in server.requests] == [1]
