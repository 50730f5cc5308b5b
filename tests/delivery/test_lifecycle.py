"""End to end over loopback with the collector as a real child process: volume, offline then
online, SIGKILL then restart, quitting offline, flushing on close, idling.

A counting fault server (forwarding only) stands between client and collector, so "exactly
once" is checked twice: the collector holds one row per event, and the client never had an
event accepted (2xx) twice. "Collector down" means nothing listens on the client's port:
both the collector process and the forwarding server are stopped (connection refused).
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest

from telemetry._delivery import UploadPolicy
from telemetry._delivery import _uploader as uploader_module
from telemetry.testing import FakeClock
from tests.collector_process import CollectorProcess
from tests.delivery import fault_server as fs
from tests.delivery._support import (
    assert_exactly_once,
    fast_policy,
    make_client,
    prefill,
    queued_ids,
    read_line,
    run_child,
    run_clock,
    settled,
    sleeping_for,
    stored_ids,
    track_many,
    uploader_of,
    wait_until,
)
from tests.delivery.fault_server import FaultServer


@dataclass
class Backend:
    """The collector process with the counting server in front (the client's endpoint)."""

    collector: CollectorProcess
    server: FaultServer

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def database(self) -> Path:
        return self.collector.database

    def down(self) -> None:
        self.server.stop_listening()
        self.collector.stop()

    def up(self) -> None:
        self.collector.start()
        self.server.start()


@pytest.fixture
def backend(tmp_path: Path) -> Iterator[Backend]:
    collector = CollectorProcess(tmp_path / "collector.db").start()
    server = FaultServer(collector.url).start()
    try:
        yield Backend(collector, server)
    finally:
        server.stop()
        collector.stop()


def assert_accepted_once(server: FaultServer, expected: list[str]) -> None:
    accepted = server.accepted_counts()
    assert set(accepted) == set(expected)
    assert max(accepted.values()) == 1, "an event was accepted twice"


def test_10000_events_end_to_end_exactly_once(backend: Backend, data_dir: Path):
    # The real policy, except the per-minute cap: 21 requests at 15 a minute would make this
    # test wait a minute for nothing (the cap has its own test).
    policy = UploadPolicy(max_requests_per_minute=600)
    with make_client(data_dir, backend.url, policy) as client:
        tracked = track_many(client, 10_000)
        assert client.flush(60)
        # The last batch's sent_events is counted after flush() saw the queue empty.
        assert wait_until(lambda: settled(client), 10)
        device_id = client.device_id
        counters = client._store.counters()
    rows = backend.collector.rows()
    assert len(rows) == 10_001  # and the client's own $identify
    assert len({r["insert_id"] for r in rows}) == 10_001
    assert set(tracked) <= {r["insert_id"] for r in rows}
    assert {r["device_id"] for r in rows} == {device_id}
    assert all(json.loads(r["event"])["device_id"] == device_id for r in rows)
    assert_accepted_once(backend.server, [r["insert_id"] for r in rows])
    requests = backend.server.requests
    assert all(len(r.events) <= 500 for r in requests)
    assert all(r.decoded_size <= 512 * 1024 for r in requests)
    assert len(requests) == counters["upload_requests"] == counters["upload_2xx"]
    assert counters["sent_events"] == 10_001


def test_offline_then_online_in_one_process(backend: Backend, data_dir: Path):
    backend.down()
    with make_client(data_dir, backend.url, UploadPolicy()) as client:
        tracked = track_many(client, 1_000)
        expected = queued_ids(client)
        assert len(expected) == 1_001
        # The full batch (500) made the uploader try at once: refused, now backing off.
        assert wait_until(lambda: client._store.counters().get("upload_connect_error", 0) >= 1, 15)
        # The counter is bumped before the status row is saved: wait for the status too.
        uploader = uploader_of(client)
        assert wait_until(lambda: uploader.status().get("connectivity") == "unreachable", 10)
        assert uploader.status()["failures"] >= 1
        backend.up()
        started = time.monotonic()
        assert wait_until(lambda: len(stored_ids(backend.database)) == 1_001, 30, 0.1)
        elapsed = time.monotonic() - started
        # The collector stores before it answers: wait for the client to have its answers
        # too (the counting server records each answer before passing it on).
        assert wait_until(lambda: client._store.stats().events == 0, 10)
    assert elapsed <= 30
    assert set(tracked) <= set(expected)
    assert_exactly_once(backend.database, expected)
    assert_accepted_once(backend.server, expected)


def test_crash_then_restart(backend: Backend, tmp_path: Path, data_dir: Path):
    backend.down()
    ids_file = tmp_path / "ids.txt"
    child = run_child("track", str(data_dir), backend.url, "1000", str(ids_file))
    try:
        assert read_line(child, 60) == "tracked"
        os.kill(child.pid, signal.SIGKILL)
        assert child.wait(10) == -signal.SIGKILL
    finally:
        if child.poll() is None:
            child.kill()
        child.communicate(timeout=10)
    tracked = ids_file.read_text().split()
    assert len(tracked) == 1_000
    # The killed uploader still holds the lease (it was backing off): a dead pid frees it.
    assert _lease_pid(data_dir) == child.pid
    backend.up()
    deliverer = run_child("deliver", str(data_dir), backend.url, "30")
    summary = json.loads(read_line(deliverer, 60))
    assert deliverer.wait(15) == 0
    assert summary["drained"] is True
    assert summary["queued"] == 0
    stored = stored_ids(backend.database)
    assert set(tracked) <= set(stored)
    assert len(stored) == 1_001  # with the $identify of the first launch
    assert max(stored.values()) == 1
    assert_accepted_once(backend.server, list(stored))
    rows = backend.collector.rows()
    assert {r["device_id"] for r in rows} == {summary["device_id"]}


def test_quit_while_offline_then_next_launch_delivers(backend: Backend, data_dir: Path):
    backend.down()
    with make_client(data_dir, backend.url, UploadPolicy()) as client:
        track_many(client, 600)  # a full batch: one refused attempt
        expected = queued_ids(client)
        assert wait_until(lambda: client._store.counters().get("upload_connect_error", 0) >= 1, 15)
        started = time.monotonic()
        client.close()
        assert time.monotonic() - started < 2.0
    backend.up()
    with make_client(data_dir, backend.url, UploadPolicy()) as again:
        # Replayed at start-up, without waiting for the backoff or the flush interval.
        assert wait_until(lambda: again._store.stats().events == 0, 10)
    assert_exactly_once(backend.database, expected)
    assert_accepted_once(backend.server, expected)


def test_quit_while_a_request_hangs(tmp_path: Path, data_dir: Path):
    collector = CollectorProcess(tmp_path / "collector.db").start()
    try:
        with FaultServer(collector.url, default=fs.hang()) as server:
            with make_client(data_dir, server.url, UploadPolicy()) as client:
                track_many(client, 500)
                expected = queued_ids(client)
                assert server.wait_for(lambda rs: len(rs) >= 1, 10)
                started = time.monotonic()
                client.close()  # the request hangs: abandoned at the deadline
                assert time.monotonic() - started < 2.0
            server.default = fs.forward()
            with make_client(data_dir, server.url, UploadPolicy()) as again:
                assert wait_until(lambda: again._store.stats().events == 0, 10)
        assert_exactly_once(collector.database, expected)
    finally:
        collector.stop()


def test_quit_offline_by_the_hook_is_immediate(backend: Backend, data_dir: Path):
    with make_client(data_dir, backend.url, UploadPolicy()) as client:
        assert client.flush(10)  # the $identify
        uploader_of(client).set_online(False)
        track_many(client, 50)
        started = time.monotonic()
        client.close(timeout=20)  # offline: nothing to try, so none of the 20 s is used
        took = time.monotonic() - started
        print(f"close() while offline took {took:.3f} s")
        assert took < 10
    assert len(backend.server.requests) == 1


def test_close_sends_what_is_queued(backend: Backend, data_dir: Path):
    ids = prefill(data_dir, 0)
    # Nothing would go out by the timer for a minute: close() does it.
    policy = UploadPolicy(flush_interval=60.0)
    clock = FakeClock()
    with make_client(data_dir, backend.url, policy, clock=clock) as client:
        # Once the $identify went out, the uploader is idle: the next event waits a minute.
        assert run_clock(clock, lambda: settled(client), 10, max_step=1.0)
        tracked = track_many(client, 20)
        assert sleeping_for(clock, 60.0)  # asleep until the minute is over
        assert len(stored_ids(backend.database)) == 1
        started = time.monotonic()
        client.close()
        took = time.monotonic() - started
        print(f"close() sending 20 events took {took:.3f} s")
        assert took < 2.0  # within close()'s documented bound
    assert_exactly_once(backend.database, ids + tracked)


def test_a_partial_batch_waits_the_flush_interval(backend: Backend, data_dir: Path):
    prefill(data_dir, 0)
    policy = fast_policy(flush_interval=10.0)  # the real interval, on a fake clock
    clock = FakeClock()
    backend.server.clock = clock.monotonic
    with make_client(data_dir, backend.url, policy, clock=clock) as client:
        # The $identify went out; idle since.
        assert run_clock(clock, lambda: settled(client), 10, max_step=1.0)
        before = len(backend.server.requests)
        started = clock.monotonic()
        track_many(client, 3)
        assert sleeping_for(clock, 10.0)  # the flush interval, from the first event
        clock.advance(4.0)
        track_many(client, 3)  # 4 s later: joins the batch
        assert sleeping_for(clock, 6.0)
        assert len(backend.server.requests) == before
        clock.advance(6.0)
        # The events carry the real wall time they were tracked at, a little later than the
        # fake clock's: the uploader may wait that little longer for the oldest to be 10 s old.
        sent = lambda: len(backend.server.requests) > before  # noqa: E731
        assert run_clock(clock, sent, 10, max_step=5.0)
        assert backend.server.wait_for(lambda rs: rs[before].ended is not None, 10)
        waited = backend.server.requests[before].started - started
        assert 10.0 <= waited <= 15.0
        assert len(backend.server.requests[before].events) == 6


def test_idle_uploader_sends_nothing_and_sleeps(backend: Backend, data_dir: Path):
    with make_client(data_dir, backend.url, UploadPolicy()) as client:
        uploader = uploader_of(client)
        assert client.flush(10)
        thread = next(t for t in threading.enumerate() if t.name == "telemetry-uploader")
        # Idle and asleep on its timer (not still finishing the cycle that went idle).
        assert wait_until(lambda: settled(client) and _asleep(thread), 10)
        requests, cycles = len(backend.server.requests), uploader._cycles
        cpu_before = _thread_cpu(thread.native_id)
        time.sleep(3.0)
        cpu = _thread_cpu(thread.native_id) - cpu_before
        assert len(backend.server.requests) == requests == 1
        assert uploader._cycles == cycles  # not one wake-up in 3 s
        assert cpu < 0.01


def _lease_pid(data_dir: Path) -> int | None:
    conn = sqlite3.connect(data_dir / "telemetry.db", timeout=10)
    try:
        row = conn.execute("SELECT pid FROM upload_lease").fetchone()
    finally:
        conn.close()
    return None if row is None else int(row[0])


def _asleep(thread: threading.Thread) -> bool:
    """Whether ``thread`` is blocked in the uploader loop's wait (its timer or a wake-up)."""
    frame = sys._current_frames().get(thread.ident or -1)
    if frame is None or frame.f_code.co_name != "wait":
        return False
    while frame is not None:
        if frame.f_code.co_name == "_run" and frame.f_code.co_filename == uploader_module.__file__:
            return True
        frame = frame.f_back
    return False


def _thread_cpu(native_id: int | None) -> float:
    for thread in psutil.Process().threads():
        if thread.id == native_id:
            return float(thread.user_time + thread.system_time)
    raise AssertionError("uploader thread not found")
