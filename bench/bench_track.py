"""Benchmark (not a test): track() caller latency of our durable client next to in-memory SDKs.

Prints, from one run on one machine: median and p99 of 20,000 calls for our client (on disk
before returning: one write to its journal, copied into SQLite in the background),
segment-analytics-python and posthog (both only queue in memory), and the RSS growth of our
client over 100,000 tracked events. Every SDK points at a closed port
on 127.0.0.1, so no traffic leaves the machine.

    uv run python bench/bench_track.py [--calls 20000] [--rounds 10] [--rss-events 100000]
"""

from __future__ import annotations

import argparse
import gc
import logging
import statistics
import tempfile
import time
from collections.abc import Callable
from typing import Any

import psutil

import telemetry

DEAD_URL = "http://127.0.0.1:9"  # discard port: connection refused, loopback only
PROPS = {"driveCount": 1, "status": "started", "image": {"extension": "img", "size": 1048576}}


def measure(call: Callable[[int], object], calls: int, warmup: int = 300) -> list[float]:
    """Caller latency of ``call`` in µs, ``calls`` times after a warm-up."""
    for i in range(warmup):
        call(i)
    samples: list[float] = []
    clock = time.perf_counter_ns
    for i in range(calls):
        start = clock()
        call(i)
        samples.append((clock() - start) / 1000.0)
    return samples


def _discard(queue: Any) -> None:
    """Drop what an in-memory SDK still queues, so its shutdown does not wait on a dead host."""
    with queue.all_tasks_done:
        dropped = len(queue.queue)
        queue.queue.clear()
        queue.unfinished_tasks -= dropped  # the consumer still finishes the batch it holds
        queue.all_tasks_done.notify_all()


def ours(calls: int) -> list[float]:
    with tempfile.TemporaryDirectory() as tmp:
        client = telemetry.create_client("bench", "bench-app", "1.0", DEAD_URL, data_dir=tmp)
        try:
            return measure(lambda i: client.track("Flash", PROPS), calls)
        finally:
            client.close()


def segment(calls: int) -> list[float]:
    import segment.analytics as analytics_module

    client = analytics_module.Client(
        "bench-write-key", host=DEAD_URL, max_retries=0, max_queue_size=calls * 2
    )
    try:
        return measure(
            lambda i: client.track(user_id="bench-user", event="Flash", properties=PROPS), calls
        )
    finally:
        _discard(client.queue)
        client.join()


def posthog(calls: int) -> list[float]:
    from posthog import Posthog

    client = Posthog("bench-key", host=DEAD_URL, max_retries=0, max_queue_size=calls * 2)
    try:
        return measure(
            lambda i: client.capture("Flash", distinct_id="bench-user", properties=PROPS), calls
        )
    finally:
        _discard(client.queue)
        client.shutdown()


def raw_sqlite(calls: int) -> list[float]:
    """The floor: uuid4 + json.dumps + one INSERT committed in WAL, synchronous=NORMAL."""
    import json
    import sqlite3
    import uuid

    with tempfile.TemporaryDirectory() as tmp:
        conn = sqlite3.connect(f"{tmp}/raw.db", isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("CREATE TABLE events (id INTEGER PRIMARY KEY, insert_id TEXT, payload TEXT)")
        try:
            return measure(
                lambda i: conn.execute(
                    "INSERT INTO events(insert_id, payload) VALUES (?, ?)",
                    (str(uuid.uuid4()), json.dumps({"event_type": "Flash", **PROPS})),
                ),
                calls,
            )
        finally:
            conn.close()


def rss_growth(events: int) -> tuple[float, float]:
    """RSS (MiB) after 1,000 warm-up events and after ``events`` more, for our client."""
    process = psutil.Process()
    with tempfile.TemporaryDirectory() as tmp:
        client = telemetry.create_client("bench", "bench-app", "1.0", DEAD_URL, data_dir=tmp)
        try:
            for _ in range(1_000):
                client.track("Flash", PROPS)
            gc.collect()
            before = process.memory_info().rss / 2**20
            for _ in range(events):
                client.track("Flash", PROPS)
            gc.collect()
            after = process.memory_info().rss / 2**20
        finally:
            client.close()
    return before, after


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--rss-events", type=int, default=100_000)
    args = parser.parse_args()
    logging.disable(logging.CRITICAL)  # the SDKs log every refused connection
    clients = (("desktop-telemetry (durable journal)", ours),
               ("segment-analytics-python (memory)", segment),
               ("posthog (memory)", posthog),
               ("plain sqlite3 insert+commit (floor)", raw_sqlite))  # fmt: skip
    # Rounds in turn (a fresh client each round), so a slow spell of this shared machine
    # falls on every client alike instead of on whichever ran then.
    per_round = max(1, args.calls // args.rounds)
    samples: dict[str, list[float]] = {name: [] for name, _ in clients}
    for _ in range(args.rounds):
        for name, run in clients:
            gc.collect()
            samples[name] += run(per_round)
    rows = []
    for name, _ in clients:
        ordered = sorted(samples[name])
        rows.append((name, statistics.median(ordered), ordered[int(len(ordered) * 0.99) - 1]))
    fastest = min(median for name, median, _ in rows[1:3])
    print(
        f"track() caller latency, {per_round * args.rounds:,} calls each"
        f" in {args.rounds} rounds (µs)"
    )
    print(f"{'client':<38} {'median':>8} {'p99':>8}")
    for name, median, p99 in rows:
        print(f"{name:<38} {median:>8.1f} {p99:>8.1f}")
    print(f"ours / fastest other median: {rows[0][1] / fastest:.2f}x (target <= 0.80x)")
    before, after = rss_growth(args.rss_events)
    print(
        f"RSS over {args.rss_events:,} tracked events: {before:.1f} MiB -> {after:.1f} MiB "
        f"(+{after - before:.1f} MiB)"
    )


if __name__ == "__main__":
    main()
