"""The PostgreSQL backend against a real server: migrations, dedup, concurrency, errors."""

from __future__ import annotations

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from telemetry.collector import StorageUnavailable
from telemetry.collector._config import parse_config
from telemetry.collector._postgres_schema import PG_SCHEMA_VERSION
from telemetry.collector._postgres_store import PostgresStore
from telemetry.collector._validation import parse_batch
from tests.collector_process import CollectorProcess, start_in_thread

from ._amplitude_fake import fake_amplitude
from ._support import DEVICE_ID, PROJECT, batch, event, post


def test_migrations_are_versioned_and_run_once(postgres_dsn: str) -> None:
    store = PostgresStore(postgres_dsn)
    try:
        assert store.schema_version == PG_SCHEMA_VERSION == 6
    finally:
        store.close()
    # A second opener (another collector) finds the schema current and changes nothing.
    again = PostgresStore(postgres_dsn)
    again.close()
    with psycopg.connect(postgres_dsn) as conn:
        versions = [r[0] for r in conn.execute("SELECT version FROM schema_migrations ORDER BY 1")]
        tables = {
            r[0]
            for r in conn.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
            )
        }
        constraint = conn.execute(
            "SELECT pg_get_constraintdef(oid) FROM pg_constraint "
            "WHERE conrelid = 'events'::regclass AND contype = 'u'"
        ).fetchone()
    assert versions == [1, 2, 3, 4, 5, 6]
    assert {
        "events",
        "tombstones",
        "outbox",
        "link_hits",
        "device_proofs",
        "reports",
        "report_outbox",
        "dash_device_days",
        "dash_state",
        "schema_migrations",
    } <= tables
    assert constraint == ("UNIQUE (project, insert_id)",)


def test_a_newer_schema_is_refused(postgres_dsn: str) -> None:
    PostgresStore(postgres_dsn).close()
    with psycopg.connect(postgres_dsn, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO schema_migrations (version) VALUES (%s)", (PG_SCHEMA_VERSION + 1,)
        )
    with pytest.raises(StorageUnavailable, match="newer"):
        PostgresStore(postgres_dsn)


def test_collectors_starting_together_migrate_once(postgres_dsn: str) -> None:
    barrier = threading.Barrier(4)

    def open_one() -> int:
        barrier.wait(10)
        store = PostgresStore(postgres_dsn)
        try:
            return store.schema_version
        finally:
            store.close()

    with ThreadPoolExecutor(4) as pool:
        assert list(pool.map(lambda _: open_one(), range(4))) == [PG_SCHEMA_VERSION] * 4


def test_unreachable_server_raises_storage_unavailable() -> None:
    with pytest.raises(StorageUnavailable):
        PostgresStore("postgresql://nobody@127.0.0.1:1/nothing", connect_timeout=2)


def test_two_collector_processes_store_the_same_batch_once(
    tmp_path: Path, postgres_dsn: str
) -> None:
    """Several hosts behind a load balancer share one PostgreSQL: a batch retried against both
    at the same moment (and repeated) is stored once."""
    events = [event(i) for i in range(300)]
    body = json.dumps(batch(events)).encode()
    with CollectorProcess(postgres_dsn) as first, CollectorProcess(postgres_dsn) as second:
        urls = [first.url, second.url] * 4  # 8 concurrent posts of the same batch
        barrier = threading.Barrier(len(urls))

        def send(url: str) -> httpx.Response:
            barrier.wait(10)
            return post(url, body)

        with ThreadPoolExecutor(len(urls)) as pool:
            answers = list(pool.map(send, urls))
        assert [a.status_code for a in answers] == [200] * len(urls)
        duplicates = sorted(a.json()["duplicates"] for a in answers)
        # Exactly one request added the rows; every other one saw all 300 as duplicates...
        assert sum(300 - d for d in duplicates) == 300
        stored = first.rows()
        assert len(stored) == 300
        assert sorted(r["insert_id"] for r in stored) == sorted(e["insert_id"] for e in events)
        assert second.rows() == stored
        assert "postgresql database" in first.stderr


def _sessions(admin: psycopg.Connection[object], database: str) -> int:
    """Server processes connected to ``database``."""
    row = admin.execute(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = %s", (database,)
    ).fetchone()
    return int(row[0]) if row else 0


def test_rows_are_visible_once_answered_and_a_dead_database_gives_503(
    postgres_admin_dsn: str, postgres_dsn: str
) -> None:
    url, stop = start_in_thread(postgres_dsn)
    try:
        assert post(url, batch([event(1), event(2)])).status_code == 200
        with psycopg.connect(postgres_dsn) as conn:  # a new session sees the committed rows
            assert conn.execute("SELECT count(*) FROM events").fetchone() == (2,)
        name = postgres_dsn.rsplit("/", 1)[1]
        with psycopg.connect(postgres_admin_dsn, autocommit=True) as admin:
            admin.execute(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS false')
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
                (name,),
            )
            # pg_terminate_backend only signals: until a backend has exited, the collector's
            # pooled connection to it would still work.
            deadline = time.monotonic() + 30
            while _sessions(admin, name) and time.monotonic() < deadline:
                time.sleep(0.05)
            assert _sessions(admin, name) == 0
        refused = post(url, batch([event(3)]))
        assert refused.status_code == 503
        assert refused.headers["Retry-After"] == "5"
        assert httpx.get(url + "/healthz", timeout=10).status_code == 503
        with psycopg.connect(postgres_admin_dsn, autocommit=True) as admin:
            admin.execute(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS true')
        assert post(url, batch([event(3)])).status_code == 200
        with psycopg.connect(postgres_dsn) as conn:
            assert conn.execute("SELECT count(*) FROM events").fetchone() == (3,)
    finally:
        stop()


def _reconnect_everyone(admin: psycopg.Connection[Any], name: str) -> None:
    """End every session of database ``name`` and wait until they are gone (the collector's
    pool then opens new ones, with the database's current settings)."""
    admin.execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,)
    )
    deadline = time.monotonic() + 30
    while _sessions(admin, name) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _sessions(admin, name) == 0


def test_healthz_says_unwritable_when_sessions_are_read_only(
    postgres_admin_dsn: str, postgres_dsn: str
) -> None:
    """A database whose sessions are read-only (``default_transaction_read_only``) refuses
    every batch: /healthz says so too (it checked only for a standby before)."""
    url, stop = start_in_thread(postgres_dsn)
    name = postgres_dsn.rsplit("/", 1)[1]

    def healthz_after_reconnecting() -> int:
        # The pool drops the sessions ended below one failed call at a time: ask until every
        # pooled connection is a new one (4, the default pool size), then answer.
        for _ in range(5):
            status = httpx.get(url + "/healthz", timeout=10).status_code
        return status

    try:
        assert httpx.get(url + "/healthz", timeout=10).status_code == 200
        with psycopg.connect(postgres_admin_dsn, autocommit=True) as admin:
            admin.execute(f'ALTER DATABASE "{name}" SET default_transaction_read_only = on')
            _reconnect_everyone(admin, name)
        assert healthz_after_reconnecting() == 503
        assert post(url, batch([event(1)])).status_code == 503
        with psycopg.connect(postgres_admin_dsn, autocommit=True) as admin:
            admin.execute(f'ALTER DATABASE "{name}" RESET default_transaction_read_only')
            _reconnect_everyone(admin, name)
        assert healthz_after_reconnecting() == 200
        assert post(url, batch([event(1)])).status_code == 200
    finally:
        stop()


def test_deletion_and_concurrent_inserts_leave_no_row_of_the_device(postgres_dsn: str) -> None:
    """Inserts of a device racing its deletion request: after the deletion, nothing of it is
    stored, whichever transaction ran first."""
    store = PostgresStore(postgres_dsn, pool_size=6)
    try:
        batches = [
            parse_batch(json.dumps(batch([event(1000 * b + i) for i in range(50)])).encode())
            for b in range(12)
        ]
        with ThreadPoolExecutor(6) as pool:
            inserts = [pool.submit(store.insert_batch, b) for b in batches[:6]]
            deletion = pool.submit(store.delete_device, PROJECT, DEVICE_ID, "race")
            inserts += [pool.submit(store.insert_batch, b) for b in batches[6:]]
            results = [f.result(30) for f in inserts]
            deleted = deletion.result(30)
        stored_before_deletion = deleted.deleted
        assert store.count() == 0
        rejected = sum(r.rejected for r in results)
        inserted = sum(r.inserted for r in results)
        assert inserted == stored_before_deletion
        assert inserted + rejected == 600
    finally:
        store.close()


def test_two_collectors_on_one_database_forward_each_event_once(postgres_dsn: str) -> None:
    events = [event(i) for i in range(1500)]
    with fake_amplitude() as fake:
        config = parse_config(
            {"forwarding": {"url": fake.url}, "projects": {PROJECT: {"production": "tok-12345"}}}
        )
        options: dict[str, object] = {"config": config, "forward_interval": 0.02}
        first_url, stop_first = start_in_thread(postgres_dsn, **options)
        second_url, stop_second = start_in_thread(postgres_dsn, **options)
        try:
            with ThreadPoolExecutor(6) as pool:
                answers = list(
                    pool.map(
                        lambda i: post(
                            (first_url, second_url)[i % 2], batch(events[i * 250 : i * 250 + 250])
                        ),
                        range(6),
                    )
                )
            assert [a.status_code for a in answers] == [200] * 6
            deadline = time.monotonic() + 60
            while len(fake.delivered()) < len(events) and time.monotonic() < deadline:
                time.sleep(0.05)
            time.sleep(0.3)  # a second send of anything would show up here
        finally:
            stop_first()
            stop_second()
    delivered = fake.delivered()
    assert len(delivered) == len(events)
    assert sorted(delivered) == sorted(e["insert_id"] for e in events)
