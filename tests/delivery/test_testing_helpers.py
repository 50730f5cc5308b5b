"""``telemetry.testing``: the FakeClock and the RecordingDestination, alone and driving a real
Uploader over a real EventStore file (no network, no timer waited for in real time)."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from telemetry._delivery import Uploader, UploadPolicy
from telemetry._store import EventStore
from telemetry.consent import DELETION_KEY
from telemetry.errors import TelemetryError, TransportError
from telemetry.events import new_insert_id, serialize_event
from telemetry.testing import FakeClock, RecordingDestination
from tests.delivery._support import PROJECT, wait_until

URL = "https://collector.example.com/amplitude/2/httpapi"
DELETION_URL = "https://collector.example.com/v1/deletion"

# ---------------------------------------------------------------------- FakeClock alone


def test_fake_clock_moves_only_when_advanced():
    clock = FakeClock(start=50.0, wall_start=1_700_000_000.0)
    assert clock.monotonic() == 50.0
    assert clock.time_ms() == 1_700_000_000_000
    clock.advance(2.5)
    assert clock.monotonic() == 52.5
    assert clock.time() == 1_700_000_002.5
    with pytest.raises(ValueError, match="back"):
        clock.advance(-1)


def test_fake_clock_wait_ends_when_time_passes_its_deadline():
    clock = FakeClock()
    event = threading.Event()
    result: list[bool] = []
    waiter = threading.Thread(target=lambda: result.append(clock.wait(event, 30.0)))
    waiter.start()
    assert clock.wait_for_sleeper() == 30.0
    clock.advance(29.0)
    assert clock.wait_for_sleeper() == 1.0  # still waiting: 1 s of fake time left
    assert waiter.is_alive()
    clock.advance(1.0)
    waiter.join(10)
    assert result == [False]
    assert clock.sleepers() == []


def test_fake_clock_wait_ends_when_its_event_is_set():
    clock = FakeClock()
    event = threading.Event()
    result: list[bool] = []
    waiter = threading.Thread(target=lambda: result.append(clock.wait(event, None)))
    waiter.start()
    assert clock.sleepers() == [] or clock.wait_for_sleeper() == float("inf")
    event.set()
    waiter.join(10)
    assert result == [True]
    assert clock.monotonic() == 1_000.0  # no time passed


def test_fake_clock_sleep_and_advance_to_next():
    clock = FakeClock()
    sleeper = threading.Thread(target=clock.sleep, args=(7.0,))
    sleeper.start()
    assert clock.advance_to_next() == 7.0
    sleeper.join(10)
    assert not sleeper.is_alive()
    assert clock.monotonic() == 1_007.0
    with pytest.raises(TimeoutError):
        clock.wait_for_sleeper(0.05)


# ---------------------------------------------------------------------- RecordingDestination


def test_recording_destination_records_and_answers_as_told():
    destination = RecordingDestination()
    batch = {"api_key": PROJECT, "events": [{"event_type": "A"}, {"event_type": "B"}]}
    body = gzip.compress(json.dumps(batch).encode())
    destination.respond(429, headers={"Retry-After": "5"})
    throttled = destination.post(URL, body)
    assert (throttled.status, throttled.header("retry-after")) == (429, "5")
    assert destination.post(URL, body).status == 200  # the default again
    destination.fail("timeout")
    with pytest.raises(TransportError) as failed:
        destination.post(URL, body)
    assert failed.value.kind == "timeout"
    assert isinstance(failed.value, TelemetryError)
    deletion = json.dumps({"project": PROJECT, "device_id": "d-1", "reason": "opt-out"})
    assert destination.post(DELETION_URL, deletion.encode(), gzipped=False).status == 200
    assert [r.status for r in destination.requests] == [429, 200, 0, 200]
    assert len(destination.batches) == 3
    assert destination.event_types() == ["A", "B"]  # only the batch answered 2xx counts
    assert destination.deletions == [json.loads(deletion)]


# ---------------------------------------------------------------------- with a real uploader


@dataclass
class Rig:
    store: EventStore
    clock: FakeClock
    destination: RecordingDestination
    uploader: Uploader

    def track(self, *names: str) -> None:
        """Append events as the client does (durable, then the uploader is told)."""
        for name in names:
            time_ms = self.clock.time_ms()
            event = {"event_type": name, "insert_id": new_insert_id(), "time": time_ms}
            self.store.append(event["insert_id"], name, time_ms, serialize_event(event))
        self.store.sync_journal()
        for _ in names:
            self.uploader.notify_appended()

    def sleeping_for(self, seconds: float) -> float:
        """Wait (in real time, bounded) until the uploader sleeps on the clock, ``seconds``
        of fake time from its next attempt (give or take float rounding); return them."""
        left = self.clock.wait_for_sleeper(at_least=seconds - 1e-6, at_most=seconds + 1e-6)
        assert left == pytest.approx(seconds)
        return left


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    store = EventStore(tmp_path / "data")
    clock = FakeClock()
    destination = RecordingDestination()
    uploader = Uploader(
        store,
        url=URL,
        api_key=PROJECT,
        policy=UploadPolicy(max_requests_per_minute=600),
        destination=destination,
        clock=clock,
        rand=lambda low, high: high,  # the backoff's ceiling: a known delay
        deletion_url=DELETION_URL,
    )
    uploader.start()
    try:
        yield Rig(store, clock, destination, uploader)
    finally:
        uploader.stop(2.0)
        store.close()


def test_a_partial_batch_goes_when_the_flush_interval_passed(rig: Rig):
    rig.sleeping_for(60.0)  # nothing queued: asleep until the idle check
    rig.track("Application start", "Flash")
    rig.sleeping_for(10.0)  # the flush interval, from the first append
    assert rig.destination.requests == []
    rig.clock.advance(9.0)
    rig.sleeping_for(1.0)
    assert rig.destination.requests == []
    rig.clock.advance(1.0)
    sent_at = rig.clock.time_ms()
    assert rig.destination.wait_for_events(2)
    assert rig.destination.event_types() == ["Application start", "Flash"]
    assert [r.url for r in rig.destination.requests] == [URL]
    # After a success the next look comes after_success_delay later.
    rig.clock.advance(rig.sleeping_for(0.1))
    assert wait_until(lambda: rig.uploader.idle, 10)  # the queue is empty: idle
    rig.sleeping_for(60.0)
    assert rig.store.stats().events == 0
    status = rig.uploader.status()
    assert status["last_result"] == "200: 2 events delivered"
    assert status["last_success_at"] == sent_at


def test_a_server_error_backs_off_in_fake_time(rig: Rig):
    rig.destination.respond(503)
    rig.destination.fail("connect_error")
    rig.track(*(f"E{i}" for i in range(500)))  # a full batch: sent at once
    assert rig.destination.wait_for(lambda rs: len(rs) == 1)
    rig.sleeping_for(5.0)  # the first backoff
    assert rig.uploader.status()["last_result"] == "503: server error; retry in 5.0 s"
    rig.clock.advance(5.0)
    assert rig.destination.wait_for(lambda rs: len(rs) == 2)  # no answer this time
    # The second backoff is 10 s (the ceiling doubled); with the network failing, the
    # uploader looks at the interfaces every offline_check_interval (5 s) meanwhile.
    rig.sleeping_for(5.0)
    assert rig.uploader.status()["failures"] == 2
    assert "retry in 10.0 s" in rig.uploader.status()["last_result"]
    rig.clock.advance(5.0)
    rig.sleeping_for(5.0)
    assert len(rig.destination.requests) == 2
    rig.clock.advance(5.0)
    assert rig.destination.wait_for_events(500)
    assert [r.status for r in rig.destination.requests] == [503, 0, 200]
    assert wait_until(lambda: rig.store.stats().events == 0, 10)  # acked after the answer
    counters = rig.store.counters()
    assert counters["upload_5xx"] == counters["upload_connect_error"] == 1
    assert counters["sent_events"] == 500


def test_a_429_pauses_for_retry_after_and_flush_does_not_skip_it(rig: Rig):
    rig.destination.respond(429, headers={"Retry-After": "120"})
    rig.sleeping_for(60.0)  # idle: the event below waits the flush interval
    rig.track("Throttled")
    rig.sleeping_for(10.0)
    rig.clock.advance(10.0)
    assert rig.destination.wait_for(lambda rs: len(rs) == 1)
    rig.sleeping_for(120.0)
    assert rig.uploader.flush(0.2) is False  # the pause holds
    rig.sleeping_for(120.0)
    rig.clock.advance(120.0)
    assert rig.destination.wait_for_events(1)
    assert wait_until(lambda: rig.uploader.status().get("last_status") == 200, 10)
    assert rig.store.counters()["upload_429"] == 1


def test_deletion_requests_go_to_the_destination_too(rig: Rig):
    rig.sleeping_for(60.0)
    request = {"project": PROJECT, "device_id": "device-1", "reason": "opt-out", "proof": "ab" * 32}
    rig.store.set_state(DELETION_KEY, [request])
    rig.uploader.send_deletions_now()
    assert rig.destination.wait_for(lambda rs: len(rs) == 1)
    assert rig.destination.deletions == [request]
    assert rig.destination.requests[0].url == DELETION_URL
    # Delivered: the request leaves the queue, then it is counted (two steps: wait for both).
    assert wait_until(
        lambda: (
            rig.store.get_state(DELETION_KEY) is None
            and rig.store.counters().get("deletion_requests_sent") == 1
        ),
        10,
    )


def test_import_telemetry_does_not_import_httpx():
    code = (
        "import sys, telemetry, telemetry._delivery;"
        "print(sorted(m for m in sys.modules if m == 'httpx' or m == 'telemetry.transport'))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == "[]"
