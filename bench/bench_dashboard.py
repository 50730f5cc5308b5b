"""Dashboard panel query times at 1M stored events, on SQLite and on PostgreSQL.

    uv run python bench/bench_dashboard.py [--events 1000000] [--days 90] [--only sqlite]

Seeds demo-shaped events (tests/collector/_dashboard_seed.py: launches, the image -> target ->
flash -> done workflow, several versions, systems and languages) straight into the ``events``
table, builds the dashboard's summaries once (timed: what a collector upgraded with a full
database does in the background, in chunks), then times each panel's query (median and worst
of 5 runs) for the last 30 days and for the whole range, without and with an OS filter. The
target is under 300 ms per panel. Also times an incremental refresh of 10,000 new events.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from telemetry.collector import EventStore
from telemetry.collector._dashboard_db import DashboardDB, open_dashboard_db
from telemetry.collector._dashboard_queries import PANELS, Filters, day_number
from telemetry.collector._dashboard_summaries import refresh_summaries
from telemetry.collector._postgres_store import PostgresStore
from telemetry.collector._storage import Storage
from tests.collector._dashboard_seed import demo_events
from tests.collector._postgres_server import fresh_database, postgres_server

PROJECT = "etcher"
RUNS = 5


def _rows(
    events: int, days: int, end_day: int, seed: int, received_at: int | None = None
) -> Iterator[tuple[Any, ...]]:
    """``events`` rows of the events table (column order of the COPY/INSERT below), received a
    minute after their time (or at ``received_at``)."""
    generated = demo_events(devices=events // 30 + 1, days=days, end_day=end_day, seed=seed)
    for made, event in enumerate(generated, start=1):
        yield (
            PROJECT,
            event["insert_id"],
            False,
            event["device_id"],
            None,
            event["event_type"],
            event["time"],
            event["time"],
            event["time"] + 60_000 if received_at is None else received_at,
            json.dumps(event, separators=(",", ":")),
        )
        if made >= events:
            return


_COLUMNS = (
    "project, insert_id, insert_id_generated, device_id, user_id, event_type, time, "
    "event_time, received_at, event"
)


def _seed_sqlite(store: EventStore, rows: Iterator[tuple[Any, ...]]) -> None:
    import sqlite3

    conn = sqlite3.connect(store.path)
    conn.execute("PRAGMA synchronous = OFF")
    batch: list[tuple[Any, ...]] = []
    with conn:
        for row in rows:
            batch.append(row)
            if len(batch) == 50_000:
                conn.executemany(
                    f"INSERT INTO events ({_COLUMNS}) VALUES ({', '.join('?' * 10)})", batch
                )
                batch.clear()
        if batch:
            conn.executemany(
                f"INSERT INTO events ({_COLUMNS}) VALUES ({', '.join('?' * 10)})", batch
            )
    conn.execute("ANALYZE")
    conn.close()


def _seed_postgres(dsn: str, rows: Iterator[tuple[Any, ...]]) -> None:
    import psycopg

    with psycopg.connect(dsn) as conn:
        with conn.cursor() as cur, cur.copy(f"COPY events ({_COLUMNS}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
        conn.commit()
        conn.autocommit = True
        conn.execute("VACUUM ANALYZE events")


def _time_panels(
    db: DashboardDB, filters: dict[str, Filters]
) -> dict[str, dict[str, tuple[float, float]]]:
    out: dict[str, dict[str, tuple[float, float]]] = {}
    for label, f in filters.items():
        for name, panel in PANELS.items():
            times = []
            for _ in range(RUNS):
                started = time.perf_counter()
                panel.query(db, f)
                times.append((time.perf_counter() - started) * 1000)
            out.setdefault(name, {})[label] = (statistics.median(times), max(times))
    return out


def _bench(kind: str, store: Storage, seed_rows: Any, events: int, days: int, end_day: int) -> None:
    started = time.perf_counter()
    seed_rows(_rows(events, days, end_day, seed=1))
    seeded = time.perf_counter() - started
    db = open_dashboard_db(store)
    try:
        count = db.read("SELECT count(*) FROM events")[0][0]
        now = (end_day + 1) * 86_400_000 + 3_600_000
        started = time.perf_counter()
        result = refresh_summaries(db, now_ms=now, settle_ms=0)
        built = time.perf_counter() - started
        sizes = {
            t: db.read(f"SELECT count(*) FROM {t}")[0][0]
            for t in (
                "dash_device_days",
                "dash_devices",
                "dash_event_days",
                "dash_flashes",
                "dash_workflows",
            )
        }
        # An incremental refresh: 10,000 events more.
        seed_rows(_rows(10_000, 1, end_day, seed=2, received_at=now + 1))
        started = time.perf_counter()
        more = refresh_summaries(db, now_ms=now + 86_400_000, settle_ms=0)
        incremental = time.perf_counter() - started

        filters = {
            "30 days": Filters(PROJECT, end_day - 29, end_day),
            "30 days, OS": Filters(PROJECT, end_day - 29, end_day, os_name="Windows"),
            f"{days} days": Filters(PROJECT, end_day - days + 1, end_day),
            f"{days} days, OS+ver": Filters(
                PROJECT, end_day - days + 1, end_day, app_version="2.0.0", os_name="Linux"
            ),
        }
        timings = _time_panels(db, filters)
    finally:
        db.close()
    print(f"\n== {kind}: {count:,} events stored (seeded in {seeded:.0f} s)")
    print(
        f"summaries built from scratch: {result.events:,} events in {built:.1f} s "
        f"({result.events / built:,.0f} events/s); rows: "
        + ", ".join(f"{t} {n:,}" for t, n in sizes.items())
    )
    print(f"incremental refresh: {more.events:,} new events in {incremental * 1000:.0f} ms")
    labels = list(filters)
    print(f"{'panel (median / worst of 5, ms)':<34}" + "".join(f"{x:>20}" for x in labels))
    worst = 0.0
    for name, row in timings.items():
        cells = "".join(f"{row[x][0]:>12.1f} / {row[x][1]:>5.1f}" for x in labels)
        worst = max(worst, *(row[x][1] for x in labels))
        print(f"{name:<34}{cells}")
    print(f"slowest single run: {worst:.1f} ms (target < 300 ms)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--only", choices=["sqlite", "postgresql"])
    args = parser.parse_args()
    end_day = day_number(dt.date.today()) - 1
    if args.only != "postgresql":
        with tempfile.TemporaryDirectory() as tmp:
            store = EventStore(Path(tmp) / "bench.db")
            try:
                _bench(
                    "SQLite",
                    store,
                    lambda rows: _seed_sqlite(store, rows),
                    args.events,
                    args.days,
                    end_day,
                )
            finally:
                store.close()
    if args.only != "sqlite":
        with postgres_server() as admin, fresh_database(admin) as dsn:
            pg = PostgresStore(dsn)
            try:
                _bench(
                    "PostgreSQL",
                    pg,
                    lambda rows: _seed_postgres(dsn, rows),
                    args.events,
                    args.days,
                    end_day,
                )
            finally:
                pg.close()


if __name__ == "__main__":
    main()
