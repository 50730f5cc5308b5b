"""The error report endpoint (``POST /api/<project>/envelope/``) on both backends: auth, dedupe,
counts and groups, ignored item types, refusals that store nothing, deletion."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from telemetry.collector import EventStore, Storage
from telemetry.collector._config import ConfigError, parse_config
from telemetry.collector._reports import fingerprint
from telemetry.wire import device_proof, proof_hash
from tests.collector_process import start_in_thread

from ._reports_support import (
    DEVICE,
    SENTRY_ID,
    SENTRY_KEY,
    envelope,
    event_envelope,
    event_id,
    metric,
    post_envelope,
    report_config,
    report_rows,
    sentry_event,
)
from ._support import PROJECT, batch, event, post


@pytest.fixture
def served(storage: Storage) -> Any:
    url, stop = start_in_thread(storage, config=report_config())
    try:
        yield url, storage
    finally:
        stop()


def test_a_report_is_stored_with_its_columns_and_answered_with_its_id(served: Any) -> None:
    url, store = served
    report = sentry_event(
        "one", count=3, first_seen="2026-01-01T00:00:00Z", last_seen="2026-01-02T00:00:00Z"
    )
    answer = post_envelope(url, event_envelope(report))
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"id": report["event_id"]}
    [row] = report_rows(store)
    assert row["project"] == PROJECT
    assert row["event_id"] == report["event_id"]
    assert row["device_id"] == DEVICE
    assert row["level"] == "error"
    assert row["release"] == "demo@1.0.0"
    assert row["environment"] == "production"
    assert (row["exception_type"], row["exception_value"]) == ("ValueError", "bad value")
    assert row["count"] == 3
    assert row["first_seen"] == 1_767_225_600_000
    assert row["last_seen"] == 1_767_312_000_000
    assert row["timestamp"] == 1_767_323_045_000
    assert row["fingerprint"] == fingerprint(report)
    assert json.loads(row["payload"]) == report


def test_the_project_name_with_its_name_as_key_and_every_auth_place(storage: Storage) -> None:
    config = parse_config({"projects": {PROJECT: {}}})
    url, stop = start_in_thread(storage, config=config)
    try:
        by_header = post_envelope(
            url, event_envelope(sentry_event("h")), project=PROJECT, key=PROJECT
        )
        body = event_envelope(sentry_event("q"))
        by_query = httpx.post(
            f"{url}/api/{PROJECT}/envelope/?sentry_key={PROJECT}", content=body, timeout=30
        )
        report = sentry_event("d")
        payload = json.dumps(report).encode()
        by_dsn = post_envelope(
            url,
            envelope(
                ({"type": "event"}, payload),
                header={
                    "event_id": report["event_id"],
                    "dsn": f"http://{PROJECT}@collector.example/{PROJECT}",
                },
            ),
            project=PROJECT,
            key=None,
        )
    finally:
        stop()
    assert [r.status_code for r in (by_header, by_query, by_dsn)] == [200, 200, 200]
    assert len(report_rows(storage)) == 3


def test_unknown_project_and_wrong_or_missing_key_store_nothing(served: Any) -> None:
    url, store = served
    body = event_envelope(sentry_event())
    assert post_envelope(url, body, project=8).status_code == 404
    assert post_envelope(url, body, project="nope").status_code == 404
    assert post_envelope(url, body, key="wrong").status_code == 403
    assert post_envelope(url, body, key=None).status_code == 403
    assert post_envelope(url, body, project="other", key="other").status_code == 200
    wrong_dsn = envelope(
        ({"type": "event"}, json.dumps(sentry_event("x")).encode()),
        header={"dsn": f"http://wrong@h/{SENTRY_ID}"},
    )
    assert post_envelope(url, wrong_dsn, key=None).status_code == 403
    assert [r["project"] for r in report_rows(store)] == ["other"]
    assert metric(url, "collector_reports_rejected_total") == 5


def test_a_resent_envelope_is_stored_once(served: Any) -> None:
    url, store = served
    body = event_envelope(sentry_event("again"))
    answers = [post_envelope(url, body, gzipped=g) for g in (False, True, False)]
    assert [a.status_code for a in answers] == [200, 200, 200]
    assert len(report_rows(store)) == 1
    assert metric(url, "collector_reports_accepted_total") == 1
    assert metric(url, "collector_reports_duplicates_total") == 2
    # The same event id in another project is another report.
    assert post_envelope(url, body, project="other", key="other").status_code == 200
    assert len(report_rows(store)) == 2


def test_ten_thousand_occurrences_make_one_group_with_the_right_count(served: Any) -> None:
    url, store = served
    sent = 0
    for i in range(10):
        report = sentry_event(
            f"bulk-{i}",
            count=999,
            release=f"demo@1.{i % 3}.0",
            first_seen=f"2026-01-0{i % 9 + 1}T00:00:00Z",
            last_seen=f"2026-01-0{i % 9 + 1}T12:00:00Z",
            value=f"bad value {i}",
        )
        assert post_envelope(url, event_envelope(report), gzipped=i % 2 == 0).status_code == 200
        sent += 999
    for i in range(10):  # sentry-sdk style: no telemetry context, count 1
        report = sentry_event(f"single-{i}", timestamp=f"2026-01-0{i % 9 + 1}T06:00:00Z")
        del report["contexts"]
        assert post_envelope(url, event_envelope(report)).status_code == 200
        sent += 1
    other = sentry_event("elsewhere", function="verify", count=5)
    assert post_envelope(url, event_envelope(other)).status_code == 200
    assert sent == 10_000
    groups = store.report_groups(PROJECT)
    assert [(g.count, g.reports) for g in groups] == [(10_000, 20), (5, 1)] or [
        (g.count, g.reports) for g in groups
    ] == [(5, 1), (10_000, 20)]
    big = next(g for g in groups if g.count == 10_000)
    assert big.releases == ("demo@1.0.0", "demo@1.1.0", "demo@1.2.0")
    assert big.first_seen == 1_767_225_600_000  # 2026-01-01T00:00:00Z
    assert big.last_seen == 1_767_960_000_000  # 2026-01-09T12:00:00Z
    assert (big.exception_type, big.exception_value) == ("ValueError", "bad value 8")


def test_fingerprint_rules() -> None:
    base = sentry_event()
    same_place_other_message = sentry_event(value="other text", release="x")
    assert fingerprint(base) == fingerprint(same_place_other_message)
    assert fingerprint(base) != fingerprint(sentry_event(function="verify"))
    assert fingerprint(base) != fingerprint(sentry_event(kind="KeyError"))
    # Only in-app frames count when there are some: a library frame changing is the same group.
    moved = sentry_event()
    moved["exception"]["values"][0]["stacktrace"]["frames"][2]["function"] = "read"
    assert fingerprint(moved) == fingerprint(base)
    assert fingerprint(sentry_event(fingerprint=["{{ default }}"])) == fingerprint(base)
    custom = fingerprint(sentry_event(fingerprint=["write-failed"]))
    assert custom == fingerprint(sentry_event(kind="KeyError", fingerprint=["write-failed"]))
    assert custom != fingerprint(base)
    assert len(custom) == 64 and int(custom, 16) >= 0


def test_other_item_types_are_answered_and_ignored(served: Any) -> None:
    url, store = served
    report = sentry_event("mixed")
    body = envelope(
        ({"type": "session"}, b'{"sid":"x","status":"ok"}'),
        ({"type": "client_report", "length": 2}, b"{}"),
        ({"type": "event"}, json.dumps(report).encode()),
        ({"type": "attachment", "length": 5, "filename": "a.txt"}, b"\x00\x01\xff\n\n"),
        ({"type": "something_new"}, b"whatever"),
    )
    answer = post_envelope(url, body)
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"id": report["event_id"]}
    only_sessions = envelope(
        ({"type": "sessions"}, b'{"aggregates":[]}'), header={"event_id": event_id("s")}
    )
    answer = post_envelope(url, only_sessions)
    assert answer.status_code == 200
    assert answer.json() == {"id": event_id("s")}
    assert len(report_rows(store)) == 1
    assert metric(url, "collector_report_items_ignored_total") == 5


_ID = b'{"event_id": "' + b"a" * 32 + b'"}'


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        (b"", "empty envelope"),
        (b"not json\n", "envelope header"),
        (b"[]\n", "envelope header"),
        (b'{}\n{"length": 3}\nabc\n', "no type"),
        (b'{}\n{"type": "event", "length": 99}\n{}\n', "shorter than its length"),
        (b'{}\n{"type": "event", "length": -1}\n{}\n', "length"),
        (b'{}\n{"type": "event", "length": 2}\n{}XX\n', "not followed by a newline"),
        (b'{"event_id": "xyz"}\n', "event_id"),
        (b'{}\n{"type": "event"}\n{"event_id": "nothex"}\n', "event_id"),
        (b'{}\n{"type": "event"}\n[1]\n', "not a JSON object"),
        (b'{}\n{"type": "event"}\n{"a": NaN}\n', "strict JSON"),
        (b'{}\n{"type": "event"}\n{"a": 1e999}\n', "non-finite"),
        (b'{}\n{"type": "event"}\n{"a": "\\u0000"}\n', "NUL"),
        (b'{}\n{"type": "event"}\n{"a": "\\ud800"}\n', "surrogate"),
        (b'{}\n{"type": "event"}\n{"a": 1, "a": 2}\n', "strict JSON"),
        (b'{}\n{"type": "event"}\n\xff\xfe\n', "strict JSON"),
        (_ID + b'\n{"type": "event"}\n{"timestamp": "yesterday"}\n', "timestamp"),
        (_ID + b'\n{"type": "event"}\n{"timestamp": 1e300}\n', "timestamp"),
        # Found by an outside audit: these overflowed when turned into ms (a 503, resent forever).
        (_ID + b'\n{"type": "event"}\n{"timestamp": 1e308}\n', "timestamp"),
        (_ID + b'\n{"type": "event"}\n{"timestamp": -1e308}\n', "timestamp"),
        (
            _ID + b'\n{"type": "event"}\n{"contexts": {"telemetry": {"last_seen": -1e306}}}\n',
            "last_seen",
        ),
        (_ID + b'\n{"type": "event"}\n{"contexts": {"telemetry": {"count": 0}}}\n', "count"),
        (_ID + b'\n{"type": "event"}\n{"contexts": {"telemetry": {"count": true}}}\n', "count"),
        (
            _ID + b'\n{"type": "event"}\n{"contexts": {"telemetry": {"last_seen": "x"}}}\n',
            "last_seen",
        ),
        (b'{}\n{"type": "event"}\n{}\n{"type": "event"}\n{}\n', "more than one event"),
        (b"{}\n" + b'{"type": "session"}\n{}\n' * 101, "more than 100 items"),
    ],
)
def test_malformed_envelopes_get_a_400_naming_the_problem(
    served: Any, body: bytes, detail: str
) -> None:
    url, store = served
    answer = post_envelope(url, body)
    assert answer.status_code == 400, answer.text
    assert detail in answer.json()["detail"]
    assert report_rows(store) == []


def test_body_caps_and_encodings(served: Any) -> None:
    url, store = served
    huge = sentry_event("huge", extra={"blob": "x" * (1024 * 1024)})
    assert post_envelope(url, event_envelope(huge)).status_code == 413
    bomb = gzip.compress(b"{}\n" + b" " * (50 * 1024 * 1024))
    answer = httpx.post(
        f"{url}/api/{SENTRY_ID}/envelope/",
        content=bomb,
        headers={"Content-Encoding": "gzip", "X-Sentry-Auth": f"Sentry sentry_key={SENTRY_KEY}"},
        timeout=30,
    )
    assert answer.status_code == 413
    body = event_envelope(sentry_event("br"))
    answer = post_envelope(url, body, headers={"Content-Encoding": "br"})
    assert answer.status_code == 415
    assert "Content-Encoding" in answer.text
    answer = post_envelope(url, b"\x1f\x8b not gzip", headers={"Content-Encoding": "gzip"})
    assert answer.status_code == 400
    assert report_rows(store) == []


def test_a_device_over_its_rate_gets_429_with_retry_after(storage: Storage) -> None:
    config = parse_config(
        {
            "projects": {PROJECT: {"sentry_project_id": SENTRY_ID, "sentry_key": SENTRY_KEY}},
            "rate_limit": {"device_events_per_second": 0.001, "device_burst_events": 2},
        }
    )
    url, stop = start_in_thread(storage, config=config)
    try:
        answers = [post_envelope(url, event_envelope(sentry_event(f"r{i}"))) for i in range(3)]
        other_device = post_envelope(url, event_envelope(sentry_event("o", device="dev-other1")))
    finally:
        stop()
    assert [a.status_code for a in answers] == [200, 200, 429]
    assert int(answers[2].headers["Retry-After"]) >= 1
    assert other_device.status_code == 200
    assert len(report_rows(storage)) == 3


def test_a_verified_deletion_deletes_the_devices_reports_and_refuses_later_ones(
    served: Any,
) -> None:
    url, store = served
    secret = b"s" * 32
    proof = device_proof(secret, PROJECT, DEVICE)
    # The device's events carry its proof hash (trust on first use), as our client's do.
    assert (
        post(
            url, batch([event(1, device_id=DEVICE)], device_proofs={DEVICE: proof_hash(proof)})
        ).status_code
        == 200
    )
    for name in ("a", "b"):
        assert post_envelope(url, event_envelope(sentry_event(name))).status_code == 200
    keep = sentry_event("keep", device=None, contexts={"telemetry": {"device_id": "dev-keep01"}})
    assert post_envelope(url, event_envelope(keep)).status_code == 200
    assert [r["device_id"] for r in report_rows(store)] == [DEVICE, DEVICE, "dev-keep01"]
    wrong = {"project": PROJECT, "device_id": DEVICE, "reason": "user", "proof": "0" * 64}
    assert httpx.post(url + "/deletion", json=wrong, timeout=10).status_code == 200
    assert len(report_rows(store)) == 3  # a wrong proof deletes nothing
    right = {**wrong, "proof": proof}
    assert httpx.post(url + "/deletion", json=right, timeout=10).status_code == 200
    assert [r["event_id"] for r in report_rows(store)] == [keep["event_id"]]
    later = post_envelope(url, event_envelope(sentry_event("later")))
    assert later.status_code == 200
    assert [r["event_id"] for r in report_rows(store)] == [keep["event_id"]]


def test_config_keys_for_reports() -> None:
    config = parse_config(
        {
            "projects": {
                "a": {"sentry_project_id": 3, "sentry_dsn": "https://k3y@sentry.example:8443/p/42"},
                "b": {"production": "tok", "sentry_key": "bee"},
            }
        }
    )
    assert config.report_project("a") == "a"
    assert config.report_project("3") == "a"
    assert config.report_project("4") is None
    assert config.report_key("a") == "a"
    assert config.report_key("b") == "bee"
    target = config.report_target("a")
    assert target is not None
    assert target.envelope_url == "https://sentry.example:8443/p/api/42/envelope/"
    assert target.public_key.reveal() == "k3y"
    assert "k3y" not in repr(config)
    assert config.report_target("b") is None
    assert config.forwarding_reports()
    assert config.token("b", "production") is not None
    for bad in (
        {"x": {"sentry_project_id": 0}},
        {"x": {"sentry_project_id": "7"}},
        {"x": {"sentry_dsn": "https://sentry.example/1"}},
        {"x": {"sentry_dsn": "ftp://k@sentry.example/1"}},
        {"x": {"sentry_dsn": "https://k@sentry.example/abc"}},
        {"x": {"sentry_project_id": 1}, "y": {"sentry_project_id": 1}},
        {"x": {"sentry_secret": "s"}},
        # A project named like another's id would take its reports (found by an outside audit).
        {"7": {"production": "t"}, "x": {"sentry_project_id": 7}},
    ):
        with pytest.raises(ConfigError):
            parse_config({"projects": bad})
    assert parse_config({"projects": {"8": {"sentry_project_id": 8}}}).report_project("8") == "8"


def test_the_report_tables_survive_a_reopen(tmp_path: Path) -> None:
    store = EventStore(tmp_path / "c.db")
    assert store.schema_version == 6
    store.close()
    again = EventStore(tmp_path / "c.db")
    try:
        assert again.report_count() == 0
        assert again.report_groups() == []
    finally:
        again.close()


def test_a_version_3_sqlite_database_migrates_to_4_keeping_its_events(tmp_path: Path) -> None:
    import sqlite3

    from telemetry.collector._sqlite_schema import MIGRATIONS

    path = tmp_path / "v3.db"
    conn = sqlite3.connect(path, isolation_level=None)
    for statement in (s for migration in MIGRATIONS[:3] for s in migration):
        conn.execute(statement)
    conn.execute("PRAGMA user_version = 3")
    conn.execute(
        "INSERT INTO events (project, insert_id, device_id, event_type, received_at, event) "
        "VALUES (?, 'i-1', ?, 'e', 1, '{}')",
        (PROJECT, DEVICE),
    )
    conn.close()
    store = EventStore(path)
    try:
        assert store.schema_version == 6
        assert store.count() == 1
        report = sentry_event("after-migration")
        from telemetry.collector._reports import parse_report

        parsed = parse_report(
            PROJECT, json.dumps(report).encode(), envelope_event_id=None, received_at=5
        )
        assert store.insert_report(parsed).inserted == 1
        assert store.report_count() == 1
    finally:
        store.close()


def test_a_version_3_postgres_database_migrates_to_4_keeping_its_events(postgres_dsn: str) -> None:
    import psycopg

    from telemetry.collector._postgres_schema import PG_MIGRATIONS
    from telemetry.collector._postgres_store import PostgresStore

    with psycopg.connect(postgres_dsn, autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, "
            "applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"
        )
        for number, migration in enumerate(PG_MIGRATIONS[:3], start=1):
            for statement in migration:
                conn.execute(statement)
            conn.execute("INSERT INTO schema_migrations (version) VALUES (%s)", (number,))
        conn.execute(
            "INSERT INTO events (project, insert_id, device_id, event_type, received_at, event) "
            "VALUES (%s, 'i-1', %s, 'e', 1, '{}')",
            (PROJECT, DEVICE),
        )
    store = PostgresStore(postgres_dsn)
    try:
        assert store.schema_version == 6
        assert store.count() == 1
        assert store.report_count() == 0
        assert store.report_groups() == []
    finally:
        store.close()
