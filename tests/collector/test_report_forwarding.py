"""Forwarding stored error reports to a Sentry DSN: a loopback fake Sentry records the envelopes
and checks ``X-Sentry-Auth``. Delivered once each; 429 honours Retry-After; 4xx dropped and
counted; 5xx retried; the outbox is durable across a restart."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from telemetry import __version__
from telemetry.collector import EventStore, Storage
from tests.collector_process import start_in_thread

from ._reports_support import (
    event_envelope,
    metric,
    post_envelope,
    report_config,
    report_rows,
    sentry_event,
    wait_until,
)
from ._sentry_fake import Decision, FakeSentry, Received, accept, fake_sentry


@contextmanager
def forwarding_collector(
    database: str | Path | Storage, decide: Callable[[Received], Decision] = accept
) -> Iterator[tuple[str, FakeSentry]]:
    with fake_sentry(decide) as fake:
        url, stop = start_in_thread(
            database,
            config=report_config(sentry_dsn=fake.dsn),
            forward_interval=0.05,
            forward_backoff=0.1,
        )
        try:
            yield url, fake
        finally:
            stop()


def outbox_size(store: Storage) -> int:
    if isinstance(store, EventStore):
        import sqlite3

        conn = sqlite3.connect(store.path)
        try:
            return int(conn.execute("SELECT count(*) FROM report_outbox").fetchone()[0])
        finally:
            conn.close()
    row = store._pool.run(  # type: ignore[attr-defined]
        "count", lambda c: c.execute("SELECT count(*) FROM report_outbox").fetchone()
    )
    return int(row[0])


def test_each_report_is_delivered_once_with_the_auth_header(storage: Storage) -> None:
    reports = [sentry_event(f"fwd-{i}", count=i + 1) for i in range(3)]
    with forwarding_collector(storage) as (url, fake):
        for report in reports:
            assert post_envelope(url, event_envelope(report)).status_code == 200
        # Resent: stored once, so queued once.
        assert post_envelope(url, event_envelope(reports[0]), gzipped=True).status_code == 200
        wait_until(lambda: len(fake.delivered()) == 3 and outbox_size(storage) == 0)
        assert metric(url, "collector_forwarded_reports_total") == 3
    received = fake.snapshot()
    assert [r.event_id for r in received] == [r["event_id"] for r in reports]
    for got, sent in zip(received, reports, strict=True):
        assert got.events == [sent]  # the payload as stored
        assert got.header["event_id"] == sent["event_id"]
        assert got.auth["sentry_key"] == fake.key
        assert got.auth["sentry_version"] == "7"
        assert got.auth["sentry_client"] == f"desktop-telemetry-collector/{__version__}"
    stored = {r["event_id"]: json.loads(r["payload"]) for r in report_rows(storage)}
    assert [stored[r.event_id] for r in received] == [r.events[0] for r in received]


def test_429_waits_for_retry_after_then_delivers(tmp_path: Path) -> None:
    def decide(received: Received) -> Decision:
        if not throttled:
            throttled.append(received)
            return 429, {"Retry-After": "1"}
        return 200, {}

    throttled: list[Received] = []
    with forwarding_collector(tmp_path / "c.db", decide) as (url, fake):
        report = sentry_event("slow")
        assert post_envelope(url, event_envelope(report)).status_code == 200
        wait_until(lambda: fake.delivered() == [report["event_id"]])
        first, second = fake.snapshot()[:2]
        assert (first.status, second.status) == (429, 200)
        assert second.at - first.at >= 1.0  # it honoured Retry-After
        assert metric(url, 'collector_report_forward_requests_total{status="429"}') == 1
        assert metric(url, "collector_report_forward_dropped_total") == 0


def test_400_is_dropped_and_counted_and_5xx_retried(tmp_path: Path) -> None:
    bad = sentry_event("refused-by-sentry")
    flaky = sentry_event("flaky")
    failures: list[str] = []

    def decide(received: Received) -> Decision:
        if received.event_id == bad["event_id"]:
            return 400, {}
        if received.event_id == flaky["event_id"] and len(failures) < 2:
            failures.append(received.event_id)
            return 503, {}
        return 200, {}

    store = EventStore(tmp_path / "c.db")
    try:
        with forwarding_collector(store, decide) as (url, fake):
            for report in (bad, flaky, sentry_event("fine")):
                assert post_envelope(url, event_envelope(report)).status_code == 200
            wait_until(lambda: outbox_size(store) == 0)
            assert sorted(fake.delivered()) == sorted(
                [flaky["event_id"], event_envelope_id("fine")]
            )
            assert metric(url, "collector_report_forward_dropped_total") == 1
            assert metric(url, 'collector_report_forward_requests_total{status="400"}') == 1
            assert metric(url, 'collector_report_forward_requests_total{status="503"}') == 2
            refused = [r for r in fake.snapshot() if r.event_id == bad["event_id"]]
            assert len(refused) == 1  # dropped: never sent again
        assert store.report_count() == 3  # dropped from the outbox, still stored
    finally:
        store.close()


def event_envelope_id(name: str) -> str:
    return str(sentry_event(name)["event_id"])


def test_the_outbox_survives_a_restart_while_sentry_is_down(tmp_path: Path) -> None:
    database = tmp_path / "c.db"
    report = sentry_event("durable")
    with forwarding_collector(database, lambda r: (503, {})) as (url, fake):
        assert post_envelope(url, event_envelope(report)).status_code == 200
        wait_until(lambda: len(fake.snapshot()) >= 1)
    with forwarding_collector(database) as (url, fake):
        wait_until(lambda: fake.delivered() == [report["event_id"]])
        store = EventStore(database)
        try:
            wait_until(lambda: outbox_size(store) == 0)
        finally:
            store.close()
