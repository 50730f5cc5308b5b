"""An event is counted once: a cap pass that runs while its batch is in flight does not drop it
(and count it as dropped) when the collector then says it was delivered.

A real Uploader over a real EventStore file; the destination holds its answer until the test
has run the caps.
"""

from __future__ import annotations

import threading
from pathlib import Path

from telemetry._delivery import Uploader, UploadPolicy
from telemetry._store import EventStore
from telemetry.events import new_insert_id, serialize_event
from telemetry.testing import FakeClock, RecordingDestination
from telemetry.transport import Response
from tests.delivery._support import PROJECT, wait_until

URL = "https://collector.example.com/amplitude/2/httpapi"


class HeldDestination(RecordingDestination):
    """Records a request, then holds its answer until :attr:`release` is set."""

    def __init__(self) -> None:
        super().__init__()
        self.arrived = threading.Event()
        self.release = threading.Event()

    def post(
        self, url: str, body: bytes, *, gzipped: bool = True, give_up_after: float | None = None
    ) -> Response:
        response = super().post(url, body, gzipped=gzipped, give_up_after=give_up_after)
        self.arrived.set()
        assert self.release.wait(30.0), "the test never released the answer"
        return response


def test_a_batch_delivered_while_the_caps_run_is_counted_as_sent_not_dropped(tmp_path: Path):
    store = EventStore(tmp_path / "data", max_events=10)
    clock = FakeClock()
    destination = HeldDestination()
    for i in range(10):  # the first is the app's $identify, as in a client
        name = "$identify" if i == 0 else f"E{i}"
        event = {"event_type": name, "insert_id": new_insert_id(), "time": clock.time_ms()}
        store.append(event["insert_id"], name, event["time"], serialize_event(event))
    store.sync_journal()
    uploader = Uploader(
        store,
        url=URL,
        api_key=PROJECT,
        policy=UploadPolicy(max_batch_events=10),
        destination=destination,
        clock=clock,
    )
    uploader.start()
    try:
        assert destination.arrived.wait(10.0)  # the 10 events are in flight
        # Five more arrive and the cap of 10 runs before the answer does.
        for i in range(5):
            event = {"event_type": f"Late{i}", "insert_id": new_insert_id(), "time": 0}
            store.append(event["insert_id"], event["event_type"], 0, serialize_event(event))
        store.sync_journal()
        drops = store.enforce_limits()
        destination.release.set()
        assert wait_until(lambda: store.counters().get("sent_events") == 10, 10)
        counters = store.counters()
        # Nothing in flight was dropped: the 10 delivered are counted as sent, once.
        assert drops["dropped_cap_count"] == 0
        assert counters.get("dropped_cap_count", 0) == 0
        assert store.dropped() == []
        # Once the batch is acknowledged, the cap applies to what is left (5 ≤ 10).
        assert store.stats().events == 5
        assert store.enforce_limits()["dropped_cap_count"] == 0
    finally:
        destination.release.set()
        uploader.stop(2.0)
        store.close()


def test_a_batch_that_failed_is_capped_like_any_other_event(tmp_path: Path):
    store = EventStore(tmp_path / "data", max_events=10)
    clock = FakeClock()
    destination = HeldDestination()
    destination.respond(503)
    for i in range(10):
        event = {"event_type": f"E{i}", "insert_id": new_insert_id(), "time": clock.time_ms()}
        store.append(event["insert_id"], event["event_type"], event["time"], serialize_event(event))
    store.sync_journal()
    uploader = Uploader(
        store,
        url=URL,
        api_key=PROJECT,
        policy=UploadPolicy(max_batch_events=10),
        destination=destination,
        clock=clock,
    )
    uploader.start()
    try:
        assert destination.arrived.wait(10.0)
        for i in range(5):
            event = {"event_type": f"Late{i}", "insert_id": new_insert_id(), "time": 0}
            store.append(event["insert_id"], event["event_type"], 0, serialize_event(event))
        store.sync_journal()
        assert store.enforce_limits()["dropped_cap_count"] == 0  # in flight: kept for now
        destination.release.set()
        assert wait_until(lambda: store.counters().get("upload_5xx") == 1, 10)
        # Not delivered: the oldest five go to the cap now, counted once.
        assert wait_until(lambda: store.enforce_limits()["dropped_cap_count"] == 5, 10)
        assert store.counters()["dropped_cap_count"] == 5
        assert store.stats().events == 10
    finally:
        destination.release.set()
        uploader.stop(2.0)
        store.close()
