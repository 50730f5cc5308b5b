"""What the dashboard tests share: a seeded store, the dashboard's configuration, a logged-in
HTTP client, and reference figures computed with SQL straight from the ``events`` table (not
from the dashboard's summaries)."""

from __future__ import annotations

import json
import re
import sqlite3
import time
from collections.abc import Sequence
from typing import Any

import httpx

from telemetry.collector._config import CollectorConfig, parse_config
from telemetry.collector._dashboard_db import open_dashboard_db
from telemetry.collector._dashboard_summaries import refresh_summaries
from telemetry.collector._storage import Storage
from telemetry.collector._validation import parse_batch
from tests.collector._dashboard_seed import DAY_MS, demo_events

__all__ = [
    "DAYS",
    "END_DAY",
    "PROJECT",
    "TOKEN",
    "dashboard_config",
    "date_of",
    "day_sql",
    "log_in",
    "seed",
    "sql",
]

TOKEN = "correct horse battery staple 42"
PROJECT = "etcher"
#: 2025-11-09: the seeded events end on this day (days since 1970-01-01).
END_DAY = 20401
DAYS = 21


def dashboard_config(**dashboard: Any) -> CollectorConfig:
    """A configuration with ``[dashboard]`` (token :data:`TOKEN`, no settle time)."""
    table = {"token": TOKEN, "settle_seconds": 0, "refresh_seconds": 0.2, **dashboard}
    return parse_config({"dashboard": table})


def seed(store: Storage, *, devices: int = 60, seed_value: int = 7) -> int:
    """Store demo events of ``devices`` devices over :data:`DAYS` days ending on
    :data:`END_DAY` through ``insert_batch`` (batches of 500), fold them into the summaries,
    and answer how many were stored."""
    events = list(demo_events(devices=devices, days=DAYS, end_day=END_DAY, seed=seed_value))
    for start in range(0, len(events), 500):
        chunk = events[start : start + 500]
        body = json.dumps({"api_key": PROJECT, "events": chunk})
        received = max(e["time"] for e in chunk) + 60_000
        store.insert_batch(parse_batch(body.encode()), received_at_ms=received)
    db = open_dashboard_db(store)
    try:
        refresh_summaries(db, now_ms=int(time.time() * 1000), settle_ms=0)
    finally:
        db.close()
    return len(events)


def date_of(day: int) -> str:
    import datetime as dt

    return (dt.date(1970, 1, 1) + dt.timedelta(days=day)).isoformat()


def sql(store: Storage, query: str, params: Sequence[object] = ()) -> list[tuple[Any, ...]]:
    """Run ``query`` on the store's database (SQLite text; ``json(e, 'a.b')`` is rewritten to
    each dialect's JSON text extraction, ``?`` to ``%s`` on PostgreSQL)."""
    if store.kind == "sqlite":

        def sqlite_path(match: re.Match[str]) -> str:
            path = re.sub(r"\.(\d+)(?=\.|$)", r"[\1]", match.group(2))
            return f"json_extract({match.group(1)}, '$.{path}')"

        text = re.sub(r"json\((\w+), '([\w.]+)'\)", sqlite_path, query)
        conn = sqlite3.connect(store.path)  # type: ignore[attr-defined]
        try:
            return list(conn.execute(text, tuple(params)).fetchall())
        finally:
            conn.close()

    def pg_path(match: re.Match[str]) -> str:
        return f"(({match.group(1)})::jsonb #>> '{{{match.group(2).replace('.', ',')}}}')"

    text = re.sub(r"json\((\w+), '([\w.]+)'\)", pg_path, query).replace("?", "%s")
    pool = store.__dict__["_pool"]
    return list(pool.run("test query", lambda c: c.execute(text, tuple(params)).fetchall()))


def day_sql(first_day: int, last_day: int) -> tuple[str, list[object]]:
    """Condition and params: an event's day (event_time in UTC) within the range."""
    return "event_time >= ? AND event_time < ?", [first_day * DAY_MS, (last_day + 1) * DAY_MS]


def log_in(url: str) -> httpx.Client:
    """An HTTP client logged in to the dashboard at ``url``."""
    client = httpx.Client(base_url=url, timeout=30.0)
    client.get("/dashboard/login")
    response = client.post(
        "/dashboard/login",
        data={"token": TOKEN, "csrf": client.cookies["dashboard_csrf"]},
    )
    assert response.status_code == 303, response.text
    return client
