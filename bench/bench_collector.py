"""Benchmark (not a test): collector ingest throughput on SQLite and PostgreSQL, in one run.

For each backend, on a fresh database, the collector runs as a real child process on 127.0.0.1
(``python -m telemetry.collector --workers W``) and receives ``--batches`` gzip batches of 500
events from 1, 4 and 16 concurrent senders, with 1 worker and with one worker per core. The
senders write requests built before timing to plain sockets, so the load generator takes little
of the CPU it shares with the collector. Just before each ingest run, the same kind of rows
(other ``insert_id``s) are inserted straight into the same database with one ``executemany``
per 500-row transaction and the same durability (SQLite WAL, synchronous=FULL; PostgreSQL
commit with fsync on): the "raw" rate that run is compared with. Each figure is the median of
``--repeats`` such pairs (3). Then ``--stored`` rows (default 1M) are loaded and the 1-worker,
4-sender ingest measured again, next to the same figure on the empty database.

Prints events/s, p50 and p99 latency per 500-event batch, each ingest rate as a share of the raw
rate (target: at least 0.8x) and the full-table rate as a share of the empty one (target: 0.8x),
and the CPU time each 500-event batch cost: the collector's processes for an ingest run, this
process for a raw SQLite insert. It first measures how much parallel work the machine's cores
really give (a virtual machine's cores may share physical ones): with that and the CPU per batch,
the best share an ingest run could reach here is capacity x raw CPU / ingest CPU.

PostgreSQL: ``$TELEMETRY_TEST_POSTGRES_DSN``, else a throwaway cluster (initdb/pg_ctl, as in the
tests).

    uv run python bench/bench_collector.py [--batches 40] [--stored 1000000] [--repeats 3]
        [--quick] [--only sqlite|postgresql]
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import json
import multiprocessing
import socket
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
import urllib.parse
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from telemetry.collector import EventStore
from telemetry.collector._postgres_store import PostgresStore
from telemetry.collector._server import default_workers
from telemetry.collector._sqlite_schema import DAY_MS
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
    #: The run this one is compared with ("vs empty"), if any.
    reference: Result | None = None
    #: Median over the repeats of this rate / the raw rate measured just before it.
    share: float | None = None
    #: CPU seconds spent per 500-event batch (the collector's processes; this process for a
    #: raw SQLite insert), if measured.
    cpu_per_batch: float | None = None

    @property
    def rate(self) -> float:
        return self.events / self.seconds


def make_batches(count: int, project: str) -> list[dict[str, Any]]:
    """``count`` batches of 500 events, each of one device (as a client sends them)."""
    devices = [f"device-{i:08x}" for i in range(50)]
    batches = []
    for b in range(count):
        events = [
            {
                "event_type": "Flash Start" if i % 3 else "Select Drive",
                "device_id": devices[b % len(devices)],
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


def _busy(loops: int) -> None:
    total = 0
    for i in range(loops):
        total += i


def _busy_seconds(processes: int, loops: int) -> float:
    """Wall time for ``processes`` processes each running the same pure-Python loop."""
    context = multiprocessing.get_context("fork")
    workers = [context.Process(target=_busy, args=(loops,)) for _ in range(processes)]
    started = time.perf_counter()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return time.perf_counter() - started


def parallel_capacity(cores: int, loops: int = 20_000_000) -> float:
    """How many cores' worth of work ``cores`` busy processes get done at once: ``cores`` x
    (one process's time / the time of ``cores`` together), median of 3. 2.0 on two real
    cores; less where virtual cores share physical ones or neighbours take their time."""
    if cores <= 1:
        return 1.0
    shares = []
    for _ in range(3):
        alone = _busy_seconds(1, loops)
        together = _busy_seconds(cores, loops)
        shares.append(cores * alone / together)
    return statistics.median(shares)


def _request(host: str, port: int, body: bytes) -> bytes:
    """One whole HTTP/1.1 request for ``body`` (a gzip batch), built once before timing."""
    head = (
        f"POST /2/httpapi HTTP/1.1\r\nHost: {host}:{port}\r\n"
        "Content-Type: application/json\r\nContent-Encoding: gzip\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


def _answer(sock: socket.socket, pending: bytearray) -> tuple[int, bytes]:
    """Read one HTTP/1.1 response (status, body) from a keep-alive connection."""
    while b"\r\n\r\n" not in pending:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("the collector closed the connection")
        pending += chunk
    head, _, rest = bytes(pending).partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split()[1])
    length = next(
        int(line.split(b":", 1)[1]) for line in lines if line.lower().startswith(b"content-length:")
    )
    while len(rest) < length:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("the collector closed the connection")
        rest += chunk
    pending[:] = rest[length:]
    return status, rest[:length]


def ingest(url: str, batches: list[dict[str, Any]], senders: int) -> tuple[float, list[float]]:
    """Send every batch (gzip) from ``senders`` threads, each over one keep-alive connection;
    return the wall time and each request's latency. The requests are built (and compressed)
    before timing and written to a plain socket, so the load generator takes as little as
    possible of the CPU the collector shares with it (a real client runs on another machine)."""
    address = urllib.parse.urlsplit(url)
    host, port = address.hostname or "127.0.0.1", address.port or 80
    requests = [_request(host, port, gzip.compress(json.dumps(b).encode())) for b in batches]
    latencies: list[float] = []
    lock = threading.Lock()
    queue = list(range(len(requests)))
    failures: list[str] = []

    def work() -> None:
        with socket.create_connection((host, port), timeout=60) as sock:
            pending = bytearray()
            while True:
                with lock:
                    if not queue:
                        return
                    index = queue.pop()
                started = time.perf_counter()
                sock.sendall(requests[index])
                status, text = _answer(sock, pending)
                elapsed = time.perf_counter() - started
                if status != 200:
                    failures.append(f"collector answered {status}: {text[:200]!r}")
                    return
                with lock:
                    latencies.append(elapsed)

    threads = [threading.Thread(target=work) for _ in range(senders)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failures:
        raise RuntimeError(failures[0])
    return time.perf_counter() - started, latencies


def rows_of(batches: list[dict[str, Any]]) -> list[list[tuple[Any, ...]]]:
    out = []
    for body in batches:
        batch = parse_batch(json.dumps(body).encode())
        out.append(event_rows(batch, int(time.time() * 1000), 0, set())[0])
    return out


def timed_raw(insert_one: Callable[[list[tuple[Any, ...]]], None], groups: list[Any]) -> Result:
    latencies = []
    cpu = time.process_time()
    started = time.perf_counter()
    for rows in groups:
        t0 = time.perf_counter()
        insert_one(rows)
        latencies.append(time.perf_counter() - t0)
    seconds = time.perf_counter() - started
    cpu = time.process_time() - cpu
    result = Result("", "raw batched insert", sum(map(len, groups)), seconds, latencies)
    result.cpu_per_batch = cpu / len(groups)
    return result


def _tree_cpu(pid: int) -> float:
    """CPU seconds (user + system) of process ``pid`` and its children."""
    root = psutil.Process(pid)
    total = 0.0
    for process in [root, *root.children(recursive=True)]:
        with contextlib.suppress(psutil.Error):
            times = process.cpu_times()
            total += times.user + times.system
    return total


_COLUMNS = (
    "project, insert_id, insert_id_generated, device_id, user_id, event_type, time, event_time, "
    "received_at, event"
)


def stored_rows(count: int, chunk: int = 50_000) -> Iterator[list[tuple[Any, ...]]]:
    """``count`` rows like the ingested ones (random UUID insert_ids, 10,000 devices), in
    chunks."""
    template = json.dumps(make_batches(1, "x")[0]["events"][0])
    now = int(time.time() * 1000)
    for start in range(0, count, chunk):
        rows = []
        for i in range(start, min(count, start + chunk)):
            insert_id = str(uuid.uuid4())
            rows.append(
                (
                    "stored",
                    insert_id,
                    False,
                    f"device-{i % 10_000:08x}",
                    None,
                    "Flash Start",
                    1_600_000_000_000 + i,
                    1_600_000_000_000 + i,
                    now - 1000 * (count - i),
                    template,
                )
            )
        yield rows


RawInsert = Callable[[list[tuple[Any, ...]]], None]


class Runner:
    """One backend's measurements (``database``: a SQLite path or a PostgreSQL DSN).

    Each ingest figure is the median of ``repeats`` runs, each run paired with a raw insert
    measured just before it on the same database, so a machine that slows down or speeds up
    during the bench (shared cores) moves both sides of each ratio alike."""

    def __init__(
        self,
        backend: str,
        database: Path | str,
        batches: int,
        repeats: int,
        raw_session: Callable[[], contextlib.AbstractContextManager[RawInsert]],
    ) -> None:
        self.backend = backend
        self.database = database
        self.batches = batches
        self.repeats = repeats
        self.results: list[Result] = []
        self.raws: list[Result] = []
        self._raw_session = raw_session
        self._serial = 0

    def _raw(self) -> Result:
        self._serial += 1
        groups = rows_of(make_batches(self.batches, f"raw-{self._serial}"))
        with self._raw_session() as insert:
            result = timed_raw(insert, groups)
        result.backend = self.backend
        self.raws.append(result)
        return result

    def _ingest(self, senders: int, workers: int) -> Result:
        self._serial += 1
        payload = make_batches(self.batches, f"bench-{self._serial}")
        with CollectorProcess(self.database, extra_args=["--workers", str(workers)]) as collector:
            assert collector.pid is not None
            cpu = _tree_cpu(collector.pid)
            seconds, latencies = ingest(collector.url, payload, senders)
            cpu = _tree_cpu(collector.pid) - cpu
        result = Result(self.backend, "", self.batches * BATCH, seconds, latencies)
        result.cpu_per_batch = cpu / self.batches
        return result

    def measure(self, senders: int, workers: int, label: str) -> Result:
        """Median of ``repeats`` ingest runs, each next to a raw insert just before it."""
        runs = [(self._raw(), self._ingest(senders, workers)) for _ in range(self.repeats)]
        rate = statistics.median(run.rate for _, run in runs)
        result = Result(
            self.backend,
            label,
            self.batches * BATCH,
            self.batches * BATCH / rate,
            [latency for _, run in runs for latency in run.latencies],
            share=statistics.median(run.rate / raw.rate for raw, run in runs),
            cpu_per_batch=statistics.median(run.cpu_per_batch or 0.0 for _, run in runs),
        )
        self.results.append(result)
        return result

    def matrix(self, cores: int) -> Result:
        """Ingest with 1, 4, 16 senders, with 1 worker and one per core; return the 1-worker,
        4-sender result (the empty-table reference)."""
        reference = None
        for workers in sorted({1, cores}):
            for senders in (1, 4, 16):
                result = self.measure(senders, workers, f"ingest {workers}w {senders:>2}s")
                if workers == 1 and senders == 4:
                    reference = result
        assert reference is not None
        return reference

    def summary(self) -> list[Result]:
        """The ingest results and one row for the raw inserts (their median)."""
        rate = statistics.median(r.rate for r in self.raws)
        raw = Result(
            self.backend,
            f"raw batched insert (x{len(self.raws)})",
            self.batches * BATCH,
            self.batches * BATCH / rate,
            [latency for r in self.raws for latency in r.latencies],
            share=1.0,
            cpu_per_batch=statistics.median(r.cpu_per_batch or 0.0 for r in self.raws),
        )
        return [*self.results, raw]


def bench_sqlite(
    batches: int, stored: int, cores: int, repeats: int, workdir: Path
) -> list[Result]:
    database = workdir / "bench.db"
    EventStore(database).close()  # schema
    sql = f"INSERT INTO events ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    keys = "INSERT INTO event_keys (project, day, insert_id) VALUES (?, ?, ?)"

    @contextlib.contextmanager
    def session() -> Iterator[RawInsert]:
        conn = sqlite3.connect(database, isolation_level=None)
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = FULL")

        def insert(rows: list[tuple[Any, ...]]) -> None:
            # The same rows with their dedup keys (schema 5), as the collector writes them.
            conn.execute("BEGIN IMMEDIATE")
            day = [(r[0], -1 if r[6] is None else r[6] // DAY_MS, r[1]) for r in rows]
            conn.executemany(keys, day)
            conn.executemany(sql, rows)
            conn.execute("COMMIT")

        try:
            yield insert
        finally:
            conn.close()

    runner = Runner("SQLite", database, batches, repeats, session)
    empty = runner.matrix(cores)
    load_started = time.perf_counter()
    with session() as insert:
        for rows in stored_rows(stored):
            insert(rows)
    print(f"SQLite: loaded {stored:,} rows in {time.perf_counter() - load_started:.0f} s")
    full = runner.measure(4, 1, f"ingest 1w  4s, {stored // 1000}k stored")
    full.reference = empty
    return runner.summary()


def bench_postgres(batches: int, stored: int, cores: int, repeats: int) -> list[Result]:
    with postgres_server(durable=True) as admin, fresh_database(admin) as dsn:
        PostgresStore(dsn).close()  # schema
        sql = (
            f"INSERT INTO events ({_COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s) "
            "ON CONFLICT (project, insert_id) DO NOTHING"
        )

        @contextlib.contextmanager
        def session() -> Iterator[RawInsert]:
            with psycopg.connect(dsn) as conn:

                def insert(rows: list[tuple[Any, ...]]) -> None:
                    with conn.cursor() as cur:
                        cur.executemany(sql, [(*r[:2], bool(r[2]), *r[3:]) for r in rows])
                    conn.commit()

                yield insert

        runner = Runner("PostgreSQL", dsn, batches, repeats, session)
        empty = runner.matrix(cores)
        load_started = time.perf_counter()
        with psycopg.connect(dsn) as conn:
            for rows in stored_rows(stored):
                with conn.cursor() as cur, cur.copy(f"COPY events ({_COLUMNS}) FROM STDIN") as copy:
                    for row in rows:
                        copy.write_row(row)
                conn.commit()
            conn.execute("ANALYZE events")
            conn.commit()
        print(f"PostgreSQL: loaded {stored:,} rows in {time.perf_counter() - load_started:.0f} s")
        full = runner.measure(4, 1, f"ingest 1w  4s, {stored // 1000}k stored")
        full.reference = empty
        return runner.summary()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=40, help="batches of 500 events per run")
    parser.add_argument(
        "--stored", type=int, default=1_000_000, help="rows loaded before the full-table run"
    )
    parser.add_argument(
        "--repeats", type=int, default=3, help="runs per figure (median), each next to a raw run"
    )
    parser.add_argument(
        "--quick", action="store_true", help="10 batches per run, 100k stored rows, 1 repeat"
    )
    parser.add_argument("--only", choices=("sqlite", "postgresql"), default=None)
    args = parser.parse_args()
    if args.quick:
        args.batches, args.stored, args.repeats = 10, 100_000, 1
    cores = default_workers()
    capacity = parallel_capacity(cores)
    print(
        f"this machine: {cores} cores do {capacity:.2f}x the work of one in parallel "
        "(busy processes, median of 3)"
    )
    results: list[Result] = []
    if args.only in (None, "sqlite"):
        with tempfile.TemporaryDirectory(prefix="bench-collector-") as tmp:
            results += bench_sqlite(args.batches, args.stored, cores, args.repeats, Path(tmp))
    if args.only in (None, "postgresql"):
        results += bench_postgres(args.batches, args.stored, cores, args.repeats)

    print(
        f"\n{args.batches} batches x {BATCH} events per run; Nw = N worker processes "
        f"({cores} = one per core), Ns = N concurrent senders"
    )
    header = (
        f"{'backend':<11} {'path':<28} {'events/s':>10} {'p50 ms':>8} {'p99 ms':>8} "
        f"{'vs raw':>7} {'vs empty':>9} {'CPU ms':>7}"
    )
    print(header)
    print("-" * len(header))
    for r in results:
        lat = sorted(r.latencies)
        p50 = statistics.median(lat) * 1000
        p99 = lat[min(len(lat) - 1, round(0.99 * (len(lat) - 1)))] * 1000
        share = r.share if r.share is not None else float("nan")
        empty = f"{r.rate / r.reference.rate:>8.2f}x" if r.reference is not None else ""
        cpu = "" if r.cpu_per_batch is None else f"{r.cpu_per_batch * 1000:.1f}"
        if r.backend == "PostgreSQL" and r.path.startswith("raw"):
            cpu = ""  # its work is in the PostgreSQL server, not measured here
        print(
            f"{r.backend:<11} {r.path:<28} {r.rate:>10,.0f} {p50:>8.1f} {p99:>8.1f} "
            f"{share:>6.2f}x {empty:>9} {cpu:>7}"
        )
    print(f"events/s: median of {args.repeats} runs; p50/p99: per 500-event request over those")
    print("runs (ingest: HTTP round trip incl. gzip, parse, commit; raw: one executemany + commit,")
    print("one client). vs raw: median of each run's rate over the raw insert run just before it")
    print("(target >= 0.8x); vs empty: the full-table rate over the same figure on the empty")
    print("table (target >= 0.8x). CPU ms: CPU time per 500-event batch (ingest: every collector")
    print("process; raw SQLite: this process; not the PostgreSQL server's).")
    _print_ceiling(results, capacity)
    return 0


def _print_ceiling(results: list[Result], capacity: float) -> None:
    """The best SQLite share this machine allows: the collector's CPU per batch against the raw
    insert's, with all of the machine's parallel capacity (senders and kernel not counted)."""
    sqlite = [r for r in results if r.backend == "SQLite" and r.cpu_per_batch]
    raw = next((r for r in sqlite if r.path.startswith("raw")), None)
    ingest_cpu = [r.cpu_per_batch for r in sqlite if not r.path.startswith("raw")]
    if raw is None or raw.cpu_per_batch is None or not ingest_cpu:
        return
    cpu = statistics.median(c for c in ingest_cpu if c is not None)
    ceiling = capacity * raw.cpu_per_batch / cpu
    print(
        f"SQLite ceiling here: {capacity:.2f} cores x {raw.cpu_per_batch * 1000:.1f} ms raw / "
        f"{cpu * 1000:.1f} ms ingest CPU per batch (median) = {ceiling:.2f}x"
    )


if __name__ == "__main__":
    raise SystemExit(main())
