"""Shared helpers for the error report tests: Sentry events and envelopes as our client sends
them, posting them, reading the ``reports`` table of either backend, waiting for a state."""

from __future__ import annotations

import gzip
import json
import sqlite3
import time
import uuid
from collections.abc import Callable
from typing import Any

import httpx

from telemetry.collector import EventStore, Storage
from telemetry.collector._config import CollectorConfig, parse_config

from ._support import PROJECT

SENTRY_ID = 7
SENTRY_KEY = "public-key-4f1d"
DEVICE = "device-5e0c3b9a"


def report_config(**extra: Any) -> CollectorConfig:
    """``PROJECT`` with a Sentry project id and key (``extra`` adds keys to its table)."""
    table: dict[str, Any] = {"sentry_project_id": SENTRY_ID, "sentry_key": SENTRY_KEY, **extra}
    return parse_config({"projects": {PROJECT: table, "other": {}}})


def event_id(name: str) -> str:
    return uuid.uuid5(uuid.NAMESPACE_URL, f"report-{name}").hex


def sentry_event(
    name: str = "a",
    *,
    kind: str = "ValueError",
    value: str = "bad value",
    release: str = "demo@1.0.0",
    count: int | None = None,
    first_seen: str | None = None,
    last_seen: str | None = None,
    device: str | None = DEVICE,
    function: str = "flash",
    **fields: Any,
) -> dict[str, Any]:
    """A Sentry error event as our client sends it (``count`` in ``contexts.telemetry``)."""
    telemetry: dict[str, Any] = {}
    if count is not None:
        telemetry["count"] = count
    if first_seen is not None:
        telemetry["first_seen"] = first_seen
    if last_seen is not None:
        telemetry["last_seen"] = last_seen
    body: dict[str, Any] = {
        "event_id": event_id(name),
        "timestamp": "2026-01-02T03:04:05.000Z",
        "level": "error",
        "platform": "python",
        "release": release,
        "environment": "production",
        "exception": {
            "values": [
                {
                    "type": kind,
                    "value": value,
                    "module": "builtins",
                    "stacktrace": {
                        "frames": [
                            {"module": "demo_app.main", "function": "main", "in_app": True},
                            {"module": "demo_app.writer", "function": function, "in_app": True},
                            {"module": "shutil", "function": "copyfileobj", "in_app": False},
                        ]
                    },
                }
            ]
        },
        "contexts": {"telemetry": telemetry} if telemetry else {},
    }
    if device is not None:
        body["user"] = {"id": device}
    body.update(fields)
    return body


def envelope(*items: tuple[dict[str, Any], bytes], header: dict[str, Any] | None = None) -> bytes:
    """An envelope of ``(item header, payload)`` pairs."""
    lines = [json.dumps(header if header is not None else {"sent_at": "2026-01-02T03:04:06Z"})]
    out = "\n".join(lines).encode() + b"\n"
    for item_header, payload in items:
        out += json.dumps(item_header).encode() + b"\n" + payload + b"\n"
    return out


def event_envelope(event: dict[str, Any], *, with_length: bool = True) -> bytes:
    payload = json.dumps(event).encode()
    item: dict[str, Any] = {"type": "event", "content_type": "application/json"}
    if with_length:
        item["length"] = len(payload)
    return envelope((item, payload), header={"event_id": event["event_id"], "sent_at": "x"})


def post_envelope(
    url: str,
    body: bytes,
    *,
    project: str | int = SENTRY_ID,
    key: str | None = SENTRY_KEY,
    gzipped: bool = False,
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    all_headers = {"Content-Type": "application/x-sentry-envelope", **(headers or {})}
    if key is not None:
        all_headers["X-Sentry-Auth"] = f"Sentry sentry_version=7, sentry_key={key}"
    if gzipped:
        body = gzip.compress(body)
        all_headers["Content-Encoding"] = "gzip"
    return httpx.post(
        f"{url}/api/{project}/envelope/", content=body, headers=all_headers, timeout=30.0
    )


def report_rows(store: Storage) -> list[dict[str, Any]]:
    """Every ``reports`` row of ``store``, oldest first."""
    sql = "SELECT * FROM reports ORDER BY id"
    if isinstance(store, EventStore):
        conn = sqlite3.connect(store.path, timeout=10)
        try:
            conn.row_factory = sqlite3.Row
            return [dict(r) for r in conn.execute(sql)]
        finally:
            conn.close()

    def read(conn: Any) -> list[dict[str, Any]]:
        cursor = conn.execute(sql)
        names = [d.name for d in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]

    rows: list[dict[str, Any]] = store._pool.run("reading reports", read)  # type: ignore[attr-defined]
    return rows


def wait_until(predicate: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.02)


def metric(url: str, line_start: str) -> float:
    for line in httpx.get(url + "/metrics", timeout=10).text.splitlines():
        if line.startswith(line_start + " "):
            return float(line.split()[-1])
    raise AssertionError(f"no metric {line_start}")
