"""Shared helpers for the collector tests: event builders, HTTP posting, reading the database."""

from __future__ import annotations

import gzip
import json
import sqlite3
import uuid
from pathlib import Path
from typing import Any

import httpx

PROJECT = "etcher-test"
DEVICE_ID = "device-0b1f5c2e"


def event(i: int = 0, **fields: Any) -> dict[str, Any]:
    """A valid Amplitude event; ``fields`` override or add keys (``None`` removes one)."""
    base: dict[str, Any] = {
        "event_type": f"Test Event {i}",
        "device_id": DEVICE_ID,
        "time": 1_700_000_000_000 + i,
        "insert_id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"test-event-{i}")),
        "event_properties": {"index": i},
    }
    base.update(fields)
    return {key: value for key, value in base.items() if value is not None}


def batch(events: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    """A request body for ``events``."""
    return {"api_key": PROJECT, "events": events, **extra}


def post(
    url: str,
    body: dict[str, Any] | bytes,
    *,
    gzipped: bool = False,
    path: str = "/2/httpapi",
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    """POST ``body`` (JSON-encoded unless bytes) to the collector, optionally gzip-compressed."""
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    all_headers = {"Content-Type": "application/json", **(headers or {})}
    if gzipped:
        data = gzip.compress(data)
        all_headers["Content-Encoding"] = "gzip"
    return httpx.post(url + path, content=data, headers=all_headers, timeout=15.0)


def rows(database: Path) -> list[dict[str, Any]]:
    """All stored rows, ordered by id."""
    if not database.exists():
        return []
    conn = sqlite3.connect(database, timeout=10)
    try:
        conn.row_factory = sqlite3.Row
        return [dict(r) for r in conn.execute("SELECT * FROM events ORDER BY id")]
    finally:
        conn.close()
