"""The rate limiters' bucket table and the metrics rows, in one process and shared by forked
processes (``_ratelimit``, ``_metrics``, ``_shared_memory``): eviction when full, devices of
one set kept apart, the answers of the old one-process limiter, and several processes drawing
from one bucket (never more than the burst plus the refill), even after a lock holder is killed.
Also the limits divided between workers instead: connections and the log flood limit.
"""

from __future__ import annotations

import io
import logging
import os
import random
import resource
import signal
import sys
import threading
import time
from collections.abc import Callable, Mapping

import pytest

from telemetry.collector._connections import MAX_CONNECTIONS, connection_limit
from telemetry.collector._logging import RateLimitedStreamHandler, share_flood_limit
from telemetry.collector._metrics import Metrics
from telemetry.collector._ratelimit import DeviceRateLimiter
from telemetry.collector._shared_memory import SharedMemory

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="fork and POSIX record locks")


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class _Reference:
    """The one-process limiter as it was (a dict of buckets, never full): the answers to match."""

    def __init__(self, rate: float, burst: int, clock: Callable[[], float]) -> None:
        self.rate, self.burst, self.clock = rate, burst, clock
        self.buckets: dict[str, tuple[float, float]] = {}

    def take(self, project: str, counts: Mapping[str, int]) -> float:
        now = self.clock()
        levels = {}
        wait = 0.0
        for device, n in counts.items():
            tokens, at = self.buckets.get(device, (float(self.burst), now))
            level = levels[device] = min(float(self.burst), tokens + (now - at) * self.rate)
            need = min(float(n), float(self.burst))
            if level < need:
                wait = max(wait, (need - level) / self.rate)
        if wait > 0:
            return wait
        for device, n in counts.items():
            self.buckets[device] = (levels[device] - n, now)
        return 0.0


def _fork(child: Callable[[], int]) -> int:
    """Run ``child`` in a forked process that exits with its result; return the pid."""
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            code = child()
        finally:
            os._exit(code)
    return pid


def _exit_code(pid: int) -> int:
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


@pytest.mark.parametrize("shared", [False, True], ids=["one-process", "shared"])
def test_answers_are_those_of_the_one_process_limiter(shared: bool) -> None:
    """Random takes by 8 devices (no set of 64 slots can overflow): every answer is the old one."""
    clock = _Clock()
    memory = SharedMemory() if shared else None
    limiter = DeviceRateLimiter(2.0, 10, clock=clock, max_devices=64, shared=memory, name="events")
    reference = _Reference(2.0, 10, clock)
    chance = random.Random(7)
    devices = [f"device-{i}" for i in range(8)]
    for _ in range(3000):
        clock.now += chance.choice([0.0, 0.0, 0.1, 0.7, 3.0])
        counts = {d: chance.randint(1, 12) for d in chance.sample(devices, chance.randint(1, 3))}
        assert limiter.take("p", counts) == pytest.approx(reference.take("p", counts))


def test_a_full_table_forgets_a_full_bucket_first_then_the_fullest() -> None:
    clock = _Clock()
    limiter = DeviceRateLimiter(1.0, 10, clock=clock, max_devices=8)  # one set of 8 slots
    for i in range(8):  # device i keeps 9 - i tokens
        assert limiter.take("p", {f"d{i}": i + 1}) == 0
    clock.now += 2  # d0 and d1 are full again; d7 has 4
    assert limiter.take("p", {"new": 10}) == 0  # takes the slot of d0 or d1 (full)
    assert limiter.take("p", {"d7": 5}) == pytest.approx(1.0)  # d7 kept its bucket
    assert limiter.take("p", {"d2": 10}) == pytest.approx(1.0)  # d2 has 9: kept
    assert limiter.take("p", {"new": 1}) == pytest.approx(1.0)  # the new device was stored
    assert limiter.take("p", {"newer": 10}) == 0  # the other full one's slot
    clock.now += 0.5
    # None is full now: d2 has 9.5, d3 8.5, ..., d7 4.5, new 0.5, newer 0.5. The next new
    # device takes the slot of the fullest, d2; every other keeps its bucket.
    assert limiter.take("p", {"newest": 1}) == 0
    assert limiter.take("p", {"d3": 9}) == pytest.approx(0.5)
    assert limiter.take("p", {"d7": 5}) == pytest.approx(0.5)
    assert limiter.take("p", {"newer": 1}) == pytest.approx(0.5)
    assert limiter.take("p", {"newest": 10}) == pytest.approx(1.0)
    assert limiter.take("p", {"d2": 10}) == 0  # forgotten: a full bucket again


def test_a_forgotten_device_starts_again_with_a_full_bucket() -> None:
    clock = _Clock()
    limiter = DeviceRateLimiter(0.001, 5, clock=clock, max_devices=8)
    for i in range(8):  # d0 keeps 4 tokens, the others 3
        assert limiter.take("p", {f"d{i}": 1 if i == 0 else 2}) == 0
    assert limiter.take("p", {"drained": 5}) == 0  # forgets d0, the fullest
    assert limiter.take("p", {"d1": 4}) > 0  # kept: 3 tokens
    assert limiter.take("p", {"drained": 1}) > 0
    assert limiter.take("p", {"d0": 5}) == 0  # a full bucket (it had 4)


def test_devices_of_one_set_never_share_a_bucket() -> None:
    clock = _Clock()
    limiter = DeviceRateLimiter(0.001, 3, clock=clock, max_devices=8)  # every device: one set
    for i in range(8):
        assert limiter.take("p", {f"d{i}": 3}) == 0
        assert limiter.take("p", {f"d{i}": 1}) > 0
    assert limiter.take("other project", {"d0": 3}) == 0  # the project is part of the key
    # One request with more new devices than the set has slots: accepted (the extra devices
    # are not tracked, which errs on the side of accepting), and devices tracked keep theirs.
    many = {f"batch-{i}": 1 for i in range(12)}
    assert limiter.take("p", many) == 0
    assert all(limiter.take("p", {device: 2}) == 0 for device in many)


def test_processes_drawing_from_one_bucket_never_get_more_than_burst_plus_refill() -> None:
    memory = SharedMemory()
    rate, burst, processes = 20.0, 2000, 4
    go_read, go_write = os.pipe()
    done_read, done_write = os.pipe()

    def hammer() -> int:
        # Like a worker: the limiter is made after the fork, found by its name.
        limiter = DeviceRateLimiter(rate, burst, shared=memory, name="events")
        os.close(go_write)
        os.read(go_read, 1)  # all start together
        taken = sum(1 for _ in range(10_000) if limiter.take("p", {"one device": 1}) == 0)
        os.write(done_write, taken.to_bytes(4, "little"))
        return 0

    pids = [_fork(hammer) for _ in range(processes)]
    os.close(go_read)
    os.close(done_write)
    started = time.monotonic()
    os.write(go_write, b"g" * processes)
    results = [os.read(done_read, 4) for _ in range(processes)]
    elapsed = time.monotonic() - started
    assert [_exit_code(pid) for pid in pids] == [0] * processes
    os.close(go_write)
    os.close(done_read)
    taken = [int.from_bytes(r, "little") for r in results]
    print(f"{processes} processes took {taken} in {elapsed:.2f} s")
    assert burst <= sum(taken) <= burst + rate * elapsed + 1
    memory.close()


def test_a_process_killed_holding_the_lock_does_not_wedge_the_others() -> None:
    memory = SharedMemory()
    limiter = DeviceRateLimiter(1.0, 5, shared=memory, name="events")
    holding_read, holding_write = os.pipe()

    def hold_forever() -> int:
        region = memory.region("ratelimit:events", len(limiter._memory))
        with region.lock:
            os.write(holding_write, b"h")
            while True:
                time.sleep(60)

    pid = _fork(hold_forever)
    assert os.read(holding_read, 1) == b"h"
    trying = threading.Event()
    answers: list[tuple[float, float]] = []

    def take() -> None:
        trying.set()
        answer = limiter.take("p", {"d": 1})
        answers.append((time.monotonic(), answer))

    taker = threading.Thread(target=take)
    taker.start()
    trying.wait(10)
    killed_at = time.monotonic()
    os.kill(pid, signal.SIGKILL)
    taker.join(10)
    assert _exit_code(pid) == -signal.SIGKILL
    assert answers, "the lock stayed held after its holder was killed"
    assert answers[0][0] >= killed_at  # not before: the lock was held
    assert answers[0][1] == 0
    assert limiter.take("p", {"d": 4}) == 0  # and still works
    os.close(holding_read)
    os.close(holding_write)


def test_metrics_rows_sum_over_processes_and_a_replacement_continues_its_row() -> None:
    memory = SharedMemory()
    workers = 3

    def count(worker: int, times: int) -> Callable[[], int]:
        def child() -> int:
            metrics = Metrics(memory, worker=worker, workers=workers)
            for _ in range(times):
                metrics.inc("requests", status=200)
                metrics.inc("events_accepted", 10)
                metrics.observe_latency(0.003)
            metrics.inc("forward_requests", status=0)
            return 0

        return child

    pids = [_fork(count(worker, worker + 1)) for worker in range(workers)]
    assert [_exit_code(pid) for pid in pids] == [0] * workers
    reader = Metrics(memory, worker=0, workers=workers)
    assert reader.value("requests", status=200) == 6
    assert reader.value("events_accepted") == 60
    text = reader.render()
    assert 'collector_requests_total{status="200"} 6\n' in text
    assert 'collector_forward_requests_total{status="0"} 3\n' in text
    assert 'collector_ingest_latency_seconds_bucket{le="0.005"} 6\n' in text
    assert "collector_ingest_latency_seconds_count 6\n" in text
    # Worker 1 replaced: the new process counts on from where the old one stopped.
    assert _exit_code(_fork(count(1, 4))) == 0
    assert reader.value("requests", status=200) == 10
    assert "collector_events_accepted_total 100\n" in reader.render()
    memory.close()


def test_metrics_keep_unknown_names_out_and_count_any_status() -> None:
    metrics = Metrics()
    with pytest.raises(KeyError):
        metrics.inc("no_such_counter")
    with pytest.raises(KeyError):
        metrics.inc("events_accepted", status=200)  # not a labelled counter
    metrics.inc("forward_requests", status=599)
    metrics.inc("forward_requests", status=1234)  # not HTTP: counted, not lost
    metrics.inc("events_accepted", 1_234_567)
    text = metrics.render()
    assert 'collector_forward_requests_total{status="599"} 1\n' in text
    assert 'collector_forward_requests_total{status="other"} 1\n' in text
    assert "collector_events_accepted_total 1234567\n" in text


def test_each_worker_admits_its_share_of_the_connections() -> None:
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    assert connection_limit(1) == connection_limit() <= MAX_CONNECTIONS
    assert connection_limit(3) == max(16, min(-(-MAX_CONNECTIONS // 3), soft - 128))
    assert connection_limit(3) * 3 <= MAX_CONNECTIONS + 2
    assert connection_limit(10_000) == 16


def test_each_worker_writes_its_share_of_the_records_alike() -> None:
    handler = RateLimitedStreamHandler(io.StringIO())
    log = logging.getLogger("telemetry.collector")
    log.addHandler(handler)
    try:
        assert handler.repeats == 5
        share_flood_limit(2)
        assert handler.repeats == 3
        share_flood_limit(16)
        assert handler.repeats == 1
    finally:
        log.removeHandler(handler)
