"""Benchmark (not a test): collector ingest throughput on SQLite and PostgreSQL, next to a raw
batched insert of the same rows into the same database.

For each backend, the collector runs as a real child process on 127.0.0.1 and receives
``--batches`` gzip batches of 500 events from ``--senders`` concurrent HTTP clients. Then the
same rows (other ``insert_id``s) are inserted straight into the same database with one
``executemany`` per 500-row transaction and the same durability (SQLite WAL, synchronous=FULL;
PostgreSQL commit with fsync on). Prints one table: events/s, p50 and p99 latency of a 500-event
batch, and the ingest rate as a share of the raw rate (target: at least a third).

PostgreSQL: ``$TELEMETRY_TEST_POSTGRES_DSN``, else a throwaway cluster (initdb/pg_ctl, as in the
tests).

    uv run python bench/bench_collector.py [--batches 40] [--senders 4]
"""

from __future__ import annotations

import argparse
import gzip
import json
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from telemetry.collector import EventStore
from telemetry.collector._postgres_store import PostgresStore
from telemetry.collector._storage import event_rows
from telemetry.collector._validation import parse_batch
from tests.collector._postgres_server import fresh_database, postgres_server
from tests.collector_process import CollectorProcess

BATCH = 500


@dataclass
class Result:
    backend: str
    path: str
    events: int
    seconds: float
    latencies: list[float]

    @property
    def rate(self) -> float:
        return self.events / self.seconds


def make_batches(count: int, project: str) -> list[dict[str, Any]]:
    devices = [f"device-{i:08x}" for i in range(50)]
    batches = []
    for b in range(count):
        events = [
            {
                "event_type": "Flash Start" if i % 3 else "Select Drive",
                "device_id": devices[(b + i) % len(devices)],
                "time": 1_700_000_000_000 + b * BATCH + i,
                "insert_id": str(uuid.uuid4()),
                "session_id": 1_700_000_000_000,
                "app_version": "1.19.21",
                "platform": "linux",
                "event_properties": {"drive": {"size": 31_914_983_424, "isUSB": True}, "i": i},
            }
            for i in range(BATCH)
        ]
        batches.append({"api_key": project, "events": events})
    return batches


def ingest(url: str, batches: list[dict[str, Any]], senders: int) -> tuple[float, list[float]]:
    bodies = [gzip.compress(json.dumps(b).encode()) for b in batches]
    latencies: list[float] = []
    lock = threading.Lock()
    queue = list(range(len(bodies)))
    headers = {"Content-Type": "application/json", "Content-Encoding": "gzip"}

    def work() -> None:
        with httpx.Client(timeout=60) as client:
            while True:
                with lock:
                    if not queue:
                        return
                    index = queue.pop()
                started = time.perf_counter()
                answer = client.post(f"{url}/2/httpapi", content=bodies[index], headers=headers)
                elapsed = time.perf_counter() - started
                if answer.status_code != 200:
                    raise RuntimeError(f"collector answered {answer.status_code}: {answer.text}")
                with lock:
                    latencies.append(elapsed)

    threads = [threading.Thread(target=work) for _ in range(senders)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return time.perf_counter() - started, latencies


def rows_of(batches: list[dict[str, Any]]) -> list[list[tuple[Any, ...]]]:
    out = []
    for body in batches:
        batch = parse_batch(json.dumps(body).encode())
        out.append(event_rows(batch, int(time.time() * 1000), 0, set())[0])
    return out


def timed_raw(insert_one: Callable[[list[tuple[Any, ...]]], None], groups: list[Any]) -> Result:
    latencies = []
    started = time.perf_counter()
    for rows in groups:
        t0 = time.perf_counter()
        insert_one(rows)
        latencies.append(time.perf_counter() - t0)
    return Result(
        "", "raw batched insert", sum(map(len, groups)), time.perf_counter() - started, latencies
    )


_COLUMNS = (
    "project, insert_id, insert_id_generated, device_id, user_id, event_type, time, event_time, "
    "received_at, event"
)


def bench_sqlite(batches: int, senders: int, workdir: Path) -> list[Result]:
    database = workdir / "bench.db"
    EventStore(database).close()  # schema
    with CollectorProcess(database) as collector:
        seconds, latencies = ingest(collector.url, make_batches(batches, "bench"), senders)
    results = [Result("SQLite", "collector ingest (HTTP)", batches * BATCH, seconds, latencies)]
    conn = sqlite3.connect(database, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = FULL")
    sql = f"INSERT OR IGNORE INTO events ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"

    def insert(rows: list[tuple[Any, ...]]) -> None:
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany(sql, rows)
        conn.execute("COMMIT")

    raw = timed_raw(insert, rows_of(make_batches(batches, "raw")))
    conn.close()
    raw.backend = "SQLite"
    return [*results, raw]


def bench_postgres(batches: int, senders: int) -> list[Result]:
    with postgres_server(durable=True) as admin, fresh_database(admin) as dsn:
        PostgresStore(dsn).close()  # schema
        with CollectorProcess(dsn) as collector:
            seconds, latencies = ingest(collector.url, make_batches(batches, "bench"), senders)
        results = [
            Result("PostgreSQL", "collector ingest (HTTP)", batches * BATCH, seconds, latencies)
        ]
        with psycopg.connect(dsn) as conn:
            sql = (
                f"INSERT INTO events ({_COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s) "
                "ON CONFLICT (project, insert_id) DO NOTHING"
            )

            def insert(rows: list[tuple[Any, ...]]) -> None:
                with conn.cursor() as cur:
                    cur.executemany(sql, [(*r[:2], bool(r[2]), *r[3:]) for r in rows])
                conn.commit()

            raw = timed_raw(insert, rows_of(make_batches(batches, "raw")))
        raw.backend = "PostgreSQL"
        return [*results, raw]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=40, help="batches of 500 events")
    parser.add_argument("--senders", type=int, default=4, help="concurrent HTTP clients")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-collector-") as tmp:
        results = bench_sqlite(args.batches, args.senders, Path(tmp))
    results += bench_postgres(args.batches, args.senders)

    print(f"{args.batches} batches x {BATCH} events, {args.senders} concurrent senders")
    header = (
        f"{'backend':<11} {'path':<24} {'events/s':>10} {'p50 ms':>8} {'p99 ms':>8} {'vs raw':>7}"
    )
    print(header)
    print("-" * len(header))
    raw_rate = {r.backend: r.rate for r in results if r.path.startswith("raw")}
    for r in results:
        lat = sorted(r.latencies)
        p50 = statistics.median(lat) * 1000
        p99 = lat[min(len(lat) - 1, round(0.99 * (len(lat) - 1)))] * 1000
        share = r.rate / raw_rate[r.backend]
        print(
            f"{r.backend:<11} {r.path:<24} {r.rate:>10,.0f} {p50:>8.1f} {p99:>8.1f} {share:>6.0%}"
        )
    print("p50/p99: per 500-event request (ingest: HTTP round trip incl. gzip, parse, commit;")
    print("raw: one executemany + commit). vs raw: events/s as a share of the raw insert rate.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
