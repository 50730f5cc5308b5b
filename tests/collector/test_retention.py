"""Retention: rows older than the configured age (``[retention] days``, a project's
``retention_days``) are deleted in small transactions while ingest keeps answering; newer rows
are kept. On both backends, against a real collector on 127.0.0.1."""

from __future__ import annotations

import statistics
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from telemetry.collector import EventStore, Storage
from telemetry.collector._config import parse_config
from telemetry.collector._postgres_store import PostgresStore
from telemetry.collector._reports import Report
from telemetry.collector._validation import Batch, ValidEvent
from tests.collector_process import start_in_thread

from ._reports_support import metric, wait_until
from ._support import batch, event

DAY_MS = 24 * 3600 * 1000
OLD_EVENTS = 200_000
CHUNK = 20_000


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Storage]:
    opened: Storage
    if request.param == "sqlite":
        opened = EventStore(tmp_path / "c.db")
    else:
        opened = PostgresStore(request.getfixturevalue("postgres_dsn"))
    try:
        yield opened
    finally:
        opened.close()


def _events(project: str, prefix: str, count: int, device: str) -> Batch:
    return Batch(
        project=project,
        events=tuple(
            ValidEvent(
                insert_id=f"{prefix}-{i}",
                insert_id_generated=False,
                event_type="Seeded",
                device_id=device,
                user_id=None,
                time=1_700_000_000_000 + i,
                event_json=f'{{"event_type":"Seeded","insert_id":"{prefix}-{i}"}}',
            )
            for i in range(count)
        ),
        payload_size_bytes=0,
    )


def _report(project: str, name: str, device: str) -> Report:
    return Report(
        project=project,
        event_id=uuid.uuid5(uuid.NAMESPACE_URL, name).hex,
        device_id=device,
        timestamp=1_700_000_000_000,
        level="error",
        platform="python",
        release="1.0",
        environment="production",
        exception_type="ValueError",
        exception_value="boom",
        fingerprint="f",
        count=1,
        first_seen=1_700_000_000_000,
        last_seen=1_700_000_000_000,
        payload="{}",
    )


def _tombstoned(store: Storage, project: str, device: str, at: int) -> bool:
    """Whether ``device`` still has a tombstone (its next event is refused)."""
    probe = _events(project, f"probe-{uuid.uuid4()}", 1, device)
    return store.insert_batch(probe, received_at_ms=at).rejected == 1


def test_expired_rows_go_in_batches_while_ingest_keeps_answering(store: Storage) -> None:
    now = int(time.time() * 1000)
    old, recent = now - 40 * DAY_MS, now - 2 * DAY_MS
    for start in range(0, OLD_EVENTS, CHUNK):  # 40 days old: past the default 30 days
        store.insert_batch(
            _events("app", f"old-{start}", CHUNK, "device-old-0001"), received_at_ms=old
        )
    store.insert_batch(_events("app", "recent", 100, "device-recent-01"), received_at_ms=recent)
    # "short" keeps one day: its 2-day-old rows go, the default project's stay.
    store.insert_batch(_events("short", "recent", 50, "device-short-001"), received_at_ms=recent)
    store.insert_report(_report("app", "old", "device-old-0001"), received_at_ms=old)
    store.insert_report(_report("app", "recent", "device-recent-01"), received_at_ms=recent)
    store.insert_report(_report("short", "recent", "device-short-001"), received_at_ms=recent)
    store.delete_device("app", "device-gone-old", "user asked", now=old)
    store.delete_device("app", "device-gone-new", "user asked", now=recent)
    assert store.count() == OLD_EVENTS + 150

    config = parse_config(
        {"retention": {"days": 30}, "projects": {"app": {}, "short": {"retention_days": 1}}}
    )
    assert config.retention_rules() == [("short", 1.0), (None, 30.0)]
    url, stop = start_in_thread(store, config=config)
    latencies: list[float] = []
    statuses: list[int] = []
    purged = threading.Event()

    def send() -> None:
        with httpx.Client(timeout=60) as client:
            n = 0
            while not purged.is_set():
                body = batch([event(n * 10 + i) for i in range(10)], api_key="app")
                started = time.perf_counter()
                answer = client.post(f"{url}/2/httpapi", json=body)
                latencies.append(time.perf_counter() - started)
                statuses.append(answer.status_code)
                n += 1

    sender = threading.Thread(target=send)
    try:
        sender.start()
        started = time.perf_counter()
        # Expired: the old events, "short"'s events, two reports and one tombstone.
        expired = OLD_EVENTS + 50 + 2 + 1
        wait_until(lambda: metric(url, "collector_retention_deleted_rows_total") >= expired, 600)
        purge_seconds = time.perf_counter() - started
    finally:
        purged.set()
        sender.join()
        stop()

    assert statuses and all(200 <= s < 300 for s in statuses), set(statuses)
    sent = 10 * len(statuses)
    # Left: the default project's recent rows and everything just sent (the sent events are
    # `event(i)`: distinct insert_ids, so each request stored 10 new rows).
    assert store.count() == 100 + sent
    assert store.report_count() == 1
    assert [g.project for g in store.report_groups()] == ["app"]
    assert not _tombstoned(store, "app", "device-gone-old", now)
    assert _tombstoned(store, "app", "device-gone-new", now)
    ordered = sorted(latencies)
    print(
        f"\n{store.kind}: purged {OLD_EVENTS:,} rows in {purge_seconds:.1f} s while answering "
        f"{len(statuses)} ingest requests: median {statistics.median(ordered) * 1000:.1f} ms, "
        f"max {ordered[-1] * 1000:.1f} ms"
    )
