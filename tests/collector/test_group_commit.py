"""Group commit at the ingest endpoint: batches that arrive while a write runs are stored
together in the next transaction, each request still answered with its own counts once its
batch is committed; one batch that makes the group fail cannot take the others down."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

from telemetry.collector import EventStore
from telemetry.collector._storage import BatchToStore, InsertResult
from tests.collector_process import start_in_thread

from ._support import PROJECT, batch, event, post

WAIT = 30.0


class GatedStore(EventStore):
    """A real SQLite store that records each transaction's batches; while ``gate`` is closed the
    first write waits (so the requests arriving meanwhile queue up), and a batch holding a
    ``Poison`` event makes any write it is part of fail with a programming error."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.gate = threading.Event()
        self.first_write = threading.Event()
        self.groups: list[list[str]] = []

    def insert_batches(self, batches: Sequence[BatchToStore]) -> list[InsertResult]:
        self.groups.append([b.batch.events[0].event_type for b in batches])
        if not self.first_write.is_set():
            self.first_write.set()
            assert self.gate.wait(WAIT)
        if any(e.event_type == "Poison" for b in batches for e in b.batch.events):
            raise RuntimeError("a bug one batch triggers")
        return super().insert_batches(batches)


def _send_while_gated(
    store: GatedStore, url: str, bodies: list[dict[str, Any]], waiting: int
) -> list[httpx.Response]:
    """Send ``bodies[0]``, and once its write holds the gate, the others concurrently; open the
    gate once ``waiting`` batches are queued behind it."""
    ingest = _ingest_route_of(store)
    with ThreadPoolExecutor(len(bodies)) as pool:
        first = pool.submit(post, url, bodies[0])
        assert store.first_write.wait(WAIT)
        rest = [pool.submit(post, url, body) for body in bodies[1:]]
        _wait_for(lambda: ingest.group_commit.waiting == waiting)
        store.gate.set()
        return [first.result(WAIT)] + [f.result(WAIT) for f in rest]


_ROUTES: dict[int, Any] = {}


def _ingest_route_of(store: GatedStore) -> Any:
    return _ROUTES[id(store)]


def _serve(store: GatedStore) -> tuple[str, Any]:
    apps: list[Any] = []
    url, stop = start_in_thread(store, apps=apps)
    _ROUTES[id(store)] = apps[0].state.ingest
    return url, stop


def _wait_for(condition: Any) -> None:
    done = threading.Event()
    for _ in range(int(WAIT / 0.01)):
        if condition():
            return
        done.wait(0.01)
    raise AssertionError("condition not reached")


def test_concurrent_batches_are_committed_together_each_answered_with_its_own_counts(
    tmp_path: Path,
) -> None:
    store = GatedStore(tmp_path / "c.db")
    url, stop = _serve(store)
    try:
        shared = event(100, event_type="Shared", device_id="device-shared-0")
        bodies = [batch([event(0, event_type="First", device_id="device-first-0")])]
        for k in range(1, 7):
            events = [event(k * 10 + i, device_id=f"device-{k:08d}") for i in range(3)]
            bodies.append(batch([*events, shared] if k in (2, 5) else events))
        answers = _send_while_gated(store, url, bodies, waiting=6)
    finally:
        stop()
        store.close()
    assert [a.status_code for a in answers] == [200] * 7
    assert len(store.groups) == 2  # the first batch alone, then the six that waited, together
    assert len(store.groups[1]) == 6
    counts = [(a.json()["events_ingested"], a.json()["duplicates"]) for a in answers]
    assert counts[0] == (1, 0)
    # The event in batches 2 and 5 is stored by the first of them to arrive, a duplicate in the
    # other; every other event is new.
    assert sorted(counts[1:]) == [(3, 0), (3, 0), (3, 0), (3, 0), (4, 0), (4, 1)]
    reopened = EventStore(tmp_path / "c.db")
    try:
        assert reopened.count() == 1 + 6 * 3 + 1
    finally:
        reopened.close()


def test_a_batch_that_makes_its_group_fail_fails_alone(tmp_path: Path) -> None:
    store = GatedStore(tmp_path / "c.db")
    url, stop = _serve(store)
    try:
        bodies = [batch([event(0, event_type="First", device_id="device-first-0")])]
        for k in range(1, 5):
            kind = "Poison" if k == 3 else f"Good {k}"
            bodies.append(batch([event(k, event_type=kind, device_id=f"device-{k:08d}")]))
        answers = _send_while_gated(store, url, bodies, waiting=4)
    finally:
        stop()
        store.close()
    statuses = [a.status_code for a in answers]
    assert statuses == [200, 200, 200, 503, 200]
    # The group of four failed, then each was stored on its own: three stored, Poison refused.
    assert sorted(store.groups[1]) == ["Good 1", "Good 2", "Good 4", "Poison"]
    assert sorted(g[0] for g in store.groups[2:]) == ["Good 1", "Good 2", "Good 4", "Poison"]
    with sqlite3.connect(tmp_path / "c.db") as conn:
        stored = conn.execute("SELECT event_type FROM events WHERE project = ?", (PROJECT,))
        assert sorted(row[0] for row in stored) == ["First", "Good 1", "Good 2", "Good 4"]
