"""Consent end to end: the real client, a real collector, and a server counting every request.

Opt-out must be provably silent: after the user turns telemetry off, the collector receives
exactly one request (the deletion request: device id, project and reason, nothing else) and
then nothing, however often the app keeps calling ``track()``; and it holds no row for the
old device id. ``DO_NOT_TRACK`` and the opt-in policy are checked the same way.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from pathlib import Path

import pytest

import telemetry
from telemetry._identity import installation_secret
from telemetry.consent import environment_block
from telemetry.wire import device_proof
from tests._fixtures import RunningCollector
from tests.delivery import fault_server as fs
from tests.delivery._support import (
    COMPONENT,
    PROJECT,
    fast_policy,
    make_client,
    settled,
    track_many,
    wait_until,
)
from tests.delivery.fault_server import FaultServer

QUIET = 1.5  # seconds we watch for a request that must not come


def collector_rows(collector: RunningCollector, device_id: str) -> int:
    with sqlite3.connect(collector.database) as conn:
        row = conn.execute("SELECT count(*) FROM events WHERE device_id = ?", (device_id,))
        return int(row.fetchone()[0])


def is_deletion(record: fs.RequestRecord) -> bool:
    return record.target.endswith("/deletion")


def state_keys(data_dir: Path) -> set[str]:
    with sqlite3.connect(data_dir / "telemetry.db") as conn:
        return {k for (k,) in conn.execute("SELECT key FROM state")}


def table_count(data_dir: Path, table: str) -> int:
    with sqlite3.connect(data_dir / "telemetry.db") as conn:
        return int(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])


def test_opt_out_sends_one_deletion_request_then_nothing(
    server: FaultServer, collector: RunningCollector, data_dir: Path
):
    with make_client(data_dir, server.url) as client:
        old_id = client.device_id
        track_many(client, 30)
        assert client.flush(10)
        assert collector_rows(collector, old_id) == 31  # 30 events and the $identify
        # flush() returns once the queue is empty; the uploader then still bumps sent_events
        # and saves its status. Let it finish, or that bookkeeping lands after the erase below.
        assert wait_until(lambda: settled(client), 10)
        before = len(server.requests)

        secret = installation_secret(client._store)
        assert secret is not None and len(secret) == 32
        started = time.monotonic()
        client.set_consent(False)
        took = time.monotonic() - started
        # Effective when set_consent returns: nothing recorded, nothing queued, no id.
        assert client.consent_state is telemetry.ConsentState.DENIED
        assert not client.enabled and client.device_id == ""
        assert client.track("After opt-out", {"n": 1}) is None
        assert client._store.stats().events == 0
        assert client._store.sent_batches() == []
        # Only the deletion request's own counters may exist from now on.
        assert set(client._store.counters()) <= {
            "deletion_request_attempts",
            "deletion_requests_sent",
        }
        assert "device_id" not in state_keys(data_dir)

        assert server.wait_for(lambda rs: any(is_deletion(r) for r in rs[before:]), 10)
        for i in range(200):  # the app keeps calling track()
            assert client.track("Still clicking", {"i": i}) is None
        # Delivered (the collector answered, the client forgot the request), then watch.
        assert wait_until(lambda: client.status()["deletion_requests"] == 0, 10)
        time.sleep(QUIET)
        after = server.requests[before:]
        assert len(after) == 1, [r.target for r in after]
        deletion = after[0]
        assert deletion.method == "POST" and deletion.status == 200
        body = json.loads(deletion.body)
        proof = device_proof(secret, PROJECT, old_id)
        assert body == {
            "project": PROJECT,
            "device_id": old_id,
            "reason": "opt_out",
            "proof": proof,
        }
        assert "device_secret" not in state_keys(data_dir)
        assert collector_rows(collector, old_id) == 0
        assert client.status()["deletion_requests"] == 0
        print(f"set_consent(False) returned in {took * 1000:.1f} ms")

    # A restart keeps the choice: still nothing recorded or sent.
    with make_client(data_dir, server.url, notice_answered=False) as again:
        assert again.consent_state is telemetry.ConsentState.DENIED
        assert again.track("After restart") is None and again.device_id == ""
        time.sleep(QUIET)
    assert len(server.requests) == before + 1
    assert table_count(data_dir, "events") == 0


def test_turning_off_from_the_notice_purges_the_queue_unsent(server: FaultServer, data_dir: Path):
    client = make_client(data_dir, server.url, notice_answered=False)
    with client:
        track_many(client, 10)  # opt-out policy: recorded from the first launch...
        time.sleep(QUIET)
        assert server.requests == []  # ...but nothing leaves before the notice was shown
        assert client._store.stats().events == 11
        client.set_consent(False)  # "Turn off" on the notice
        time.sleep(QUIET)
        assert client._store.stats().events == 0
    assert server.requests == []  # no events and no deletion request: nothing ever left


def test_deletion_request_is_retried_and_survives_a_restart(
    server: FaultServer, collector: RunningCollector, data_dir: Path
):
    # A long backoff: the only retry before the restart is the one close() makes (skipping
    # the backoff), so the two scripted 503s are all this instance can meet, however slowly
    # the test thread gets to close().
    policy = fast_policy(backoff_initial=30.0, backoff_cap=60.0)
    with make_client(data_dir, server.url, policy) as client:
        old_id = client.device_id
        track_many(client, 5)
        assert client.flush(10)
        before = len(server.requests)
        server.script(fs.status(503), fs.status(503))
        client.set_consent(False)
        assert server.wait_for(lambda rs: len(rs) >= before + 1, 10)
    # Closed while the collector failed: the request is still queued on disk.
    assert collector_rows(collector, old_id) == 6
    with sqlite3.connect(data_dir / "telemetry.db") as conn:
        (queued,) = conn.execute(
            "SELECT value FROM state WHERE key = 'deletion_requests'"
        ).fetchone()
    assert [r["device_id"] for r in json.loads(queued)] == [old_id]

    with make_client(data_dir, server.url, notice_answered=False) as again:
        assert wait_until(lambda: collector_rows(collector, old_id) == 0, 20)
        assert wait_until(lambda: again.status()["deletion_requests"] == 0, 10)
    deletions = [r for r in server.requests[before:] if is_deletion(r)]
    assert [r.status for r in deletions][-1] == 200
    assert all(json.loads(r.body)["device_id"] == old_id for r in deletions)
    assert not [r for r in server.requests[before:] if not is_deletion(r)]


def test_turning_back_on_makes_a_new_device_id_and_never_sends_the_old_one(
    server: FaultServer, collector: RunningCollector, data_dir: Path
):
    with make_client(data_dir, server.url) as client:
        old_id = client.device_id
        track_many(client, 5)
        assert client.flush(10)
        client.set_consent(False)
        assert server.wait_for(lambda rs: any(is_deletion(r) for r in rs), 10)
        mark = len(server.requests)
        client.set_consent(True)
        new_id = client.device_id
        assert new_id and new_id != old_id
        track_many(client, 7)
        assert client.flush(10)
    later = server.requests[mark:]
    assert later and not any(is_deletion(r) for r in later)
    assert all(e["device_id"] == new_id for r in later for e in r.events)
    assert collector_rows(collector, old_id) == 0
    assert collector_rows(collector, new_id) == 8  # 7 events and the $identify


@pytest.mark.parametrize(
    ("name", "value"),
    [("DO_NOT_TRACK", "1"), ("DO_NOT_TRACK", "true"), ("TELEMETRY_DISABLED", "1")],
)
def test_environment_veto_writes_nothing_and_sends_nothing(
    server: FaultServer, data_dir: Path, monkeypatch: pytest.MonkeyPatch, name: str, value: str
):
    monkeypatch.setenv(name, value)
    with make_client(data_dir, server.url, notice_answered=False) as client:
        assert client.disabled_by_environment == name
        assert client.track("Application start") is None
        client.set_consent(True)  # the stored choice is not touched either
        client.mark_notice_answered()
        assert client.device_id == "" and not client.enabled
        time.sleep(QUIET)
    assert server.requests == []
    assert not data_dir.exists()  # no database, no device id file


def test_environment_veto_leaves_the_stored_choice_untouched(
    server: FaultServer, data_dir: Path, monkeypatch: pytest.MonkeyPatch
):
    with make_client(data_dir, server.url) as client:
        client.set_consent(True)
        track_many(client, 3)
        assert client.flush(10)
    sent = len(server.requests)
    db = data_dir / "telemetry.db"
    digest = hashlib.sha256(db.read_bytes()).hexdigest()
    monkeypatch.setenv("DO_NOT_TRACK", "1")
    with make_client(data_dir, server.url, notice_answered=False) as vetoed:
        assert vetoed.consent_state is telemetry.ConsentState.GRANTED  # shown, not changed
        assert vetoed.track("Application start") is None
        time.sleep(QUIET)
    assert hashlib.sha256(db.read_bytes()).hexdigest() == digest
    assert len(server.requests) == sent
    monkeypatch.setenv("DO_NOT_TRACK", "0")  # "0" is not a veto
    with make_client(data_dir, server.url, notice_answered=False) as client:
        assert client.disabled_by_environment is None and client.enabled


def test_opt_in_policy_stores_nothing_until_the_user_agrees(
    server: FaultServer, collector: RunningCollector, data_dir: Path
):
    with make_client(
        data_dir, server.url, notice_answered=False, consent_policy="opt_in"
    ) as client:
        assert client.consent_state is telemetry.ConsentState.UNKNOWN
        assert client.device_id == ""
        for i in range(20):
            assert client.track("Before consent", {"i": i}) is None
        time.sleep(QUIET)
        assert server.requests == []
        assert table_count(data_dir, "events") == 0
        assert "device_id" not in state_keys(data_dir)

        client.set_consent(True)
        device_id = client.device_id
        assert device_id
        track_many(client, 4)
        assert client.flush(10)
    assert collector_rows(collector, device_id) == 5  # 4 events and the $identify
    names = {e["event_type"] for r in server.requests for e in r.events}
    assert "Before consent" not in names


def test_opt_in_policy_refusal_is_remembered(server: FaultServer, data_dir: Path):
    with make_client(
        data_dir, server.url, notice_answered=False, consent_policy="opt_in"
    ) as client:
        client.set_consent(False)
    with make_client(
        data_dir, server.url, notice_answered=False, consent_policy="opt_in"
    ) as client:
        assert client.consent_state is telemetry.ConsentState.DENIED
        assert client.track("Application start") is None
    assert server.requests == []  # nothing was ever exposed: no deletion request either


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, None),
        ({"DO_NOT_TRACK": ""}, None),
        ({"DO_NOT_TRACK": "0"}, None),
        ({"DO_NOT_TRACK": " 0 "}, None),
        ({"DO_NOT_TRACK": "1"}, "DO_NOT_TRACK"),
        ({"DO_NOT_TRACK": "false"}, "DO_NOT_TRACK"),  # anything but empty or 0
        ({"TELEMETRY_DISABLED": "1"}, "TELEMETRY_DISABLED"),
        ({"TELEMETRY_DISABLED": "0"}, None),
    ],
)
def test_environment_rule(env: dict[str, str], expected: str | None):
    assert environment_block(env) == expected


def test_bad_policy_is_a_clear_error(data_dir: Path):
    with pytest.raises(telemetry.ConfigError, match="consent_policy must be 'opt_out' or 'opt_in'"):
        telemetry.create_client(PROJECT, COMPONENT, data_dir=data_dir, consent_policy="maybe")


def test_an_opt_out_in_another_process_stops_this_one(
    server: FaultServer, collector: RunningCollector, data_dir: Path
):
    """Two windows of one app: the user turns telemetry off in one; the other stops recording
    and sending within a housekeeping pass, and only one deletion request is sent."""
    with make_client(data_dir, server.url) as first, make_client(data_dir, server.url) as second:
        device_id = first.device_id
        assert second.device_id == device_id
        track_many(second, 5)
        assert second.flush(10)
        mark = len(server.requests)
        first.set_consent(False)
        assert wait_until(lambda: not second.enabled, 10)
        for i in range(50):
            assert second.track("Other window", {"i": i}) is None
        # Recording stops before the erase and the identity reset that follow it.
        assert wait_until(lambda: second.device_id == "" and second._store.stats().events == 0, 10)
        time.sleep(QUIET)
    later = server.requests[mark:]
    assert [is_deletion(r) for r in later] == [True]
    assert collector_rows(collector, device_id) == 0


def test_opt_out_cancels_the_upload_in_flight(
    server: FaultServer, collector: RunningCollector, data_dir: Path
):
    with make_client(data_dir, server.url) as client:
        assert client.flush(10)  # the $identify went out: this device id is exposed
        device_id = client.device_id
        mark = len(server.requests)
        server.script(fs.hang())  # the next batch never gets an answer
        track_many(client, 20)
        client.flush(0.5)
        assert server.wait_for(lambda rs: len(rs) > mark, 10)
        started = time.monotonic()
        client.set_consent(False)
        assert server.wait_for(lambda rs: any(is_deletion(r) for r in rs[mark:]), 10)
        print(f"deletion request arrived {time.monotonic() - started:.2f} s after opt-out")
        # Delivered (the collector deleted the rows and answered), then watch.
        assert wait_until(lambda: client.status()["deletion_requests"] == 0, 10)
        time.sleep(QUIET)
    later = server.requests[mark:]
    assert [is_deletion(r) for r in later] == [False, True]  # the hung batch, then deletion
    assert collector_rows(collector, device_id) == 0
