"""An explicit ``flush(timeout)`` drains the queue as fast as the collector accepts: the
per-minute cap governs background sending only, while 429/``Retry-After`` and the backoff after
a failure still apply during the drain.

A real Uploader over a real EventStore file, sending to a RecordingDestination on a FakeClock
(time moves only when a test advances it), and end to end through a real collector on
127.0.0.1 with the production policy.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from telemetry._delivery import Uploader, UploadPolicy
from telemetry._store import EventStore
from telemetry.events import new_insert_id, serialize_event
from telemetry.testing import FakeClock, RecordingDestination
from tests._fixtures import RunningCollector
from tests.delivery._support import (
    PROJECT,
    assert_exactly_once,
    make_client,
    prefill,
    run_clock,
    wait_until,
)

URL = "https://collector.example.com/amplitude/2/httpapi"
#: The production policy, with small batches so that a few hundred events make many requests.
POLICY = UploadPolicy(max_batch_events=10)


@dataclass
class Rig:
    store: EventStore
    clock: FakeClock
    destination: RecordingDestination
    uploader: Uploader

    def track(self, count: int) -> None:
        """Append ``count`` events as the client does (durable, then the uploader is told)."""
        for i in range(count):
            time_ms = self.clock.time_ms()
            event = {"event_type": f"E{i}", "insert_id": new_insert_id(), "time": time_ms}
            self.store.append(
                event["insert_id"], event["event_type"], time_ms, serialize_event(event)
            )
        self.store.sync_journal()
        for _ in range(count):
            self.uploader.notify_appended()

    def asleep_for_at_least(self, seconds: float) -> float:
        """Wait (real time, bounded) until the uploader sleeps on the clock with at least
        ``seconds`` of fake time left; return them."""
        return self.clock.wait_for_sleeper(10.0, at_least=seconds)


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    store = EventStore(tmp_path / "data")
    clock = FakeClock()
    destination = RecordingDestination()
    uploader = Uploader(
        store,
        url=URL,
        api_key=PROJECT,
        policy=POLICY,
        destination=destination,
        clock=clock,
        rand=lambda low, high: high,  # the backoff's ceiling: a known delay
    )
    uploader.start()
    try:
        yield Rig(store, clock, destination, uploader)
    finally:
        uploader.stop(2.0)
        store.close()


def test_a_flush_sends_past_the_per_minute_cap_until_the_queue_is_empty(rig: Rig):
    rig.asleep_for_at_least(60.0)  # nothing queued yet: idle
    rig.track(400)  # 40 full batches of 10; the background sends 15 of them a minute
    # Fake time does not move: the old flush sent 15 batches, then slept a minute of fake
    # time that never passes, and returned False at the timeout.
    assert rig.uploader.flush(timeout=30.0) is True
    batches = rig.destination.batches
    assert len(batches) == 40 > POLICY.max_requests_per_minute
    assert len(rig.destination.events) == 400
    assert rig.store.stats().events == 0


def test_after_a_drain_background_sending_is_capped_again(rig: Rig):
    rig.asleep_for_at_least(60.0)
    rig.track(200)
    assert rig.uploader.flush(timeout=30.0) is True
    assert len(rig.destination.batches) == 20
    rig.asleep_for_at_least(59.0)  # idle: the queue was found empty and the drain is over
    # More full batches, not flushed: the 20 requests of the drain fill this minute's window,
    # so the uploader sleeps until the window frees instead of sending.
    rig.track(300)
    assert rig.asleep_for_at_least(59.0) == pytest.approx(60.0)
    assert len(rig.destination.batches) == 20
    rig.clock.advance(60.0)
    # Then 15 a minute, as before any flush: time moves through the short pauses between
    # batches and stops at the next long sleep.
    assert run_clock(rig.clock, lambda: len(rig.destination.batches) >= 35, 20, max_step=1.0)
    assert rig.asleep_for_at_least(50.0) > 50.0
    assert len(rig.destination.batches) == 35
    assert rig.store.stats().events == 150


def test_a_drain_honours_retry_after_and_the_backoff_after_a_failure(rig: Rig):
    rig.asleep_for_at_least(60.0)
    rig.track(50)  # 5 batches
    rig.destination.respond(200)
    rig.destination.respond(429, headers={"Retry-After": "7"})
    rig.destination.respond(503)
    result: list[bool] = []
    flusher = threading.Thread(target=lambda: result.append(rig.uploader.flush(timeout=60.0)))
    flusher.start()
    try:
        # The 429 pauses the drain for Retry-After (fake seconds: nothing passes by itself).
        assert rig.clock.wait_for_sleeper(10.0, at_least=7.0 - 1e-6, at_most=7.0 + 1e-6)
        assert [r.status for r in rig.destination.requests] == [200, 429]
        rig.clock.advance(7.0)
        # The 503 backs off (backoff_initial: 5 s, the jitter's ceiling), flush or not.
        assert rig.clock.wait_for_sleeper(10.0, at_least=5.0 - 1e-6, at_most=5.0 + 1e-6)
        assert [r.status for r in rig.destination.requests] == [200, 429, 503]
        rig.clock.advance(5.0)
    finally:
        flusher.join(30.0)
    assert result == [True]
    assert [r.status for r in rig.destination.requests] == [200, 429, 503, 200, 200, 200, 200]
    assert len(rig.destination.events) == 50


def test_flush_delivers_20000_queued_events_to_a_loopback_collector(
    collector: RunningCollector, data_dir: Path
):
    ids = prefill(data_dir, 19_999)  # with the client's own $identify: 20,000, the queue's cap
    assert len(ids) == 20_000
    # The production policy: 500-event batches, 15 requests a minute in the background.
    with make_client(data_dir, collector.url, UploadPolicy()) as client:
        started = time.monotonic()
        drained = client.flush(timeout=30.0)
        took = time.monotonic() - started
        print(f"\nflush(timeout=30) of {len(ids)} queued events: {took:.2f} s, drained={drained}")
        assert drained is True
        assert wait_until(lambda: client.queue_stats().events == 0, 10)
    assert_exactly_once(collector.database, ids)
