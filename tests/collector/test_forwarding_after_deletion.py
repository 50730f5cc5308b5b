"""A verified deletion (``POST /deletion``) stops the forwarders from sending what they had
already claimed: rows the event forwarder holds in memory (the next chunk, the halves after a
413) and reports the report forwarder claimed in a batch. A real collector in this process and a
loopback fake destination holding one request while the device is deleted, on both backends."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import httpx
import pytest

from telemetry.collector import Storage
from telemetry.collector._reports import parse_report
from telemetry.collector._validation import parse_batch

from . import _reports_support as reports
from ._amplitude_fake import Decision, Received, accept
from ._sentry_fake import Decision as SentryDecision
from ._sentry_fake import Received as SentryReceived
from ._support import DEVICE_ID, PROJECT, batch, event, post
from .test_forwarding import forwarding_collector, wait_until
from .test_report_forwarding import forwarding_collector as report_forwarding_collector
from .test_report_forwarding import outbox_size

OTHER_DEVICE = "device-7d2a9e41"


def delete(url: str, project: str, device_id: str) -> float:
    """Delete ``device_id`` (its first proof: trusted); return when the answer came."""
    answer = httpx.post(
        url + "/deletion",
        json={"project": project, "device_id": device_id, "reason": "opt-out", "proof": "ab" * 32},
        timeout=30,
    )
    answered_at = time.monotonic()
    assert answer.json() == {"code": 200}
    return answered_at


@pytest.mark.parametrize(
    ("events", "blob", "held_status"),
    [(8, 0, 413), (120, 10_000, 200)],
    ids=["halves-after-413", "next-chunk"],  # 120 x 10 KB: two chunks of <= 800 KB
)
def test_events_claimed_before_a_deletion_are_not_sent_after_it(
    tmp_path: Path, storage: Storage, events: int, blob: int, held_status: int
) -> None:
    deleted = threading.Event()
    stored = [event(i, event_properties={"index": i, "blob": "x" * blob}) for i in range(events)]
    # All in the outbox before the forwarder starts: one pass claims them all.
    storage.insert_batch(parse_batch(json.dumps(batch(stored)).encode()), forward=True)

    def decide(received: Received) -> Decision:
        # The first request (the whole batch, or its first 800 KB chunk) is held until the
        # device is deleted, then answered: a 413 makes the forwarder send halves, a 200 the
        # next chunk, of rows it claimed before the deletion.
        with fake.lock:
            first = fake.requests[0] is received
        if first:
            deleted.wait(30)
            if held_status == 413:
                return 413, {}, {"code": 413, "error": "Payload too large"}
        return accept(received)

    with forwarding_collector(tmp_path, decide, database=storage) as (url, fake):
        wait_until(lambda: len(fake.snapshot()) >= 1)
        try:
            answered_at = delete(url, PROJECT, DEVICE_ID)
        finally:
            deleted.set()
        # Another device's event, claimed by a later pass: once it is delivered, whatever the
        # pass holding the deleted rows was going to send has been sent.
        later = event(10_000, device_id=OTHER_DEVICE)
        assert post(url, batch([later])).status_code == 200
        wait_until(lambda: later["insert_id"] in fake.delivered())
        wait_until(lambda: storage.outbox_count() == 0)
        requests = fake.snapshot()
    assert requests[0].at < answered_at
    assert (len(requests[0].events) == events) == (held_status == 413)
    sent_after = [
        e for r in requests if r.at >= answered_at for e in r.events if e["device_id"] == DEVICE_ID
    ]
    assert sent_after == []
    assert [r.insert_ids for r in requests if r.at >= answered_at] == [[later["insert_id"]]]


def test_reports_claimed_before_a_deletion_are_not_sent_after_it(storage: Storage) -> None:
    deleted, holding = threading.Event(), threading.Event()
    received_at = int(time.time() * 1000)
    for i in range(4):  # all in the outbox before the forwarder starts: one pass claims them
        payload = json.dumps(reports.sentry_event(f"held-{i}")).encode()
        report = parse_report(
            reports.PROJECT, payload, envelope_event_id=None, received_at=received_at
        )
        storage.insert_report(report, received_at_ms=received_at, forward=True)

    def decide(received: SentryReceived) -> SentryDecision:
        with fake.lock:
            first = not fake.requests  # appended after this answer
        if first:
            holding.set()
            deleted.wait(30)
        return 200, {}

    with report_forwarding_collector(storage, decide) as (url, fake):
        wait_until(holding.is_set)
        try:
            answered_at = delete(url, reports.PROJECT, reports.DEVICE)
        finally:
            deleted.set()
        later = reports.sentry_event("later", device=OTHER_DEVICE)
        assert reports.post_envelope(url, reports.event_envelope(later)).status_code == 200
        wait_until(lambda: later["event_id"] in fake.delivered())
        wait_until(lambda: outbox_size(storage) == 0)
        requests = fake.snapshot()
    assert requests[0].event_id == reports.event_id("held-0")
    assert [r.event_id for r in requests[1:]] == [later["event_id"]]
    assert all(r.at >= answered_at for r in requests[1:])
