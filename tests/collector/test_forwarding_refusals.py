"""Forward 400s that name no event: the bad events are isolated by halving and dropped, on both
backends; a 400 about the request itself (the API key) is retried instead."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from telemetry.collector import Storage
from telemetry.collector._validation import Batch, ValidEvent, parse_batch

from ._amplitude_fake import Decision, Received, refuse_unnamed
from ._support import DEVICE_ID, PROJECT, batch, event, post
from .test_forwarding import forwarding_collector, metric, wait_until


def legacy_row(i: int) -> ValidEvent:
    """An event as an older collector stored it: ``1e999`` kept as ``Infinity`` (not JSON)."""
    stored = event(i)
    return ValidEvent(
        insert_id=stored["insert_id"],
        insert_id_generated=False,
        event_type=stored["event_type"],
        device_id=DEVICE_ID,
        user_id=None,
        time=stored["time"],
        event_json=json.dumps(stored).replace(f'"index": {i}', '"index": Infinity'),
    )


def test_an_unforwardable_stored_event_is_isolated_and_dropped(
    tmp_path: Path, storage: Storage
) -> None:
    good = parse_batch(json.dumps(batch([event(i) for i in range(7)])).encode())
    poisoned = (*good.events[:3], legacy_row(100), *good.events[3:])
    storage.insert_batch(Batch(PROJECT, poisoned, 0), forward=True)
    with forwarding_collector(tmp_path, database=storage) as (url, fake):
        wait_until(lambda: len(fake.delivered()) == 7)
        wait_until(lambda: storage.outbox_count() == 0)
        assert sorted(fake.delivered()) == sorted(e.insert_id for e in good.events)
        assert metric(url, "collector_forward_dropped_events_total") == 1
        # The fake answers a body holding Infinity with a 400 naming no event; halving 8 events
        # down to the bad one takes one such 400 per level (8, 4, 2, 1).
        assert metric(url, 'collector_forward_requests_total{status="400"}') == 4


def test_several_refused_events_are_isolated_by_halving(tmp_path: Path, storage: Storage) -> None:
    def bad(received_event: dict[str, Any]) -> bool:
        return received_event["event_properties"]["index"] in (2, 9, 10)

    events = [event(i) for i in range(16)]
    with forwarding_collector(tmp_path, refuse_unnamed(bad), database=storage) as (url, fake):
        assert post(url, batch(events)).status_code == 200
        wait_until(lambda: storage.outbox_count() == 0)
        expected = [e["insert_id"] for e in events if not bad(e)]
        assert sorted(fake.delivered()) == sorted(expected)
        assert metric(url, "collector_forward_dropped_events_total") == 3


def test_a_400_about_the_api_key_is_retried_not_dropped(tmp_path: Path) -> None:
    answers: list[int] = []

    def bad_key_then_accept(received: Received) -> Decision:
        answers.append(1)
        if len(answers) <= 2:
            return 400, {}, {"code": 400, "error": "Invalid API key: stg-..."}
        return 200, {}, {"code": 200, "events_ingested": len(received.events)}

    events = [event(i) for i in range(4)]
    with forwarding_collector(tmp_path, bad_key_then_accept) as (url, fake):
        assert post(url, batch(events)).status_code == 200
        wait_until(lambda: len(fake.delivered()) == 4)
        time.sleep(0.2)
        assert [len(r.events) for r in fake.snapshot()] == [4, 4, 4]
        assert metric(url, "collector_forward_dropped_events_total") == 0
