"""Deletion needs proof of ownership: a batch teaches the collector a device's proof hash (trust
on first use), a deletion request must carry the proof, and the answer tells nobody anything."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from telemetry.collector import EventStore, Storage
from telemetry.collector._sqlite_schema import MIGRATIONS
from telemetry.collector._validation import parse_batch
from telemetry.wire import device_proof, proof_hash
from tests.collector_process import CollectorProcess

from ._postgres_server import fresh_database
from ._support import DEVICE_ID, PROJECT, batch, event, post

OWNER = bytes(range(32))
STRANGER = bytes(range(1, 33))
UNKNOWN_DEVICE = "device-never-seen-1"


def proof(secret: bytes = OWNER, device: str = DEVICE_ID) -> str:
    return device_proof(secret, PROJECT, device)


def proofs(secret: bytes = OWNER, device: str = DEVICE_ID) -> dict[str, str]:
    return {device: proof_hash(proof(secret, device))}


def delete(url: str, device: str = DEVICE_ID, **body: Any) -> httpx.Response:
    payload = {"project": PROJECT, "device_id": device, "reason": "opt_out"} | body
    return httpx.post(url + "/deletion", json=payload, timeout=15)


def count(collector: CollectorProcess, device: str = DEVICE_ID) -> int:
    return sum(1 for r in collector.rows() if r["device_id"] == device)


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """Where a collector process keeps its rows: a SQLite file or a fresh PostgreSQL database."""
    if request.param == "sqlite":
        yield str(tmp_path / "c.db")
    else:
        with fresh_database(request.getfixturevalue("postgres_admin_dsn")) as dsn:
            yield dsn


def test_without_proof_400_with_a_wrong_one_nothing_with_the_right_one_deleted(
    database: str,
) -> None:
    with CollectorProcess(database) as collector:
        url = collector.url
        body = batch([event(i) for i in range(5)], device_proofs=proofs())
        assert post(url, body).status_code == 200

        assert delete(url).status_code == 400  # no proof
        assert count(collector) == 5

        wrong = delete(url, proof=proof(STRANGER))
        unknown = delete(url, UNKNOWN_DEVICE, proof=proof(STRANGER, UNKNOWN_DEVICE))
        # Byte for byte the same answer (the Date header aside): nothing to learn from it.
        assert (wrong.status_code, wrong.content) == (unknown.status_code, unknown.content)
        assert wrong.content == b'{"code":200}'
        drop = {"date"}
        assert {k: v for k, v in wrong.headers.items() if k not in drop} == {
            k: v for k, v in unknown.headers.items() if k not in drop
        }
        assert count(collector) == 5
        # No tombstone either: the owner's events are still stored.
        later = post(url, batch([event(10)], device_proofs=proofs())).json()
        assert later["rejected"] == 0 and count(collector) == 6

        right = delete(url, proof=proof())
        assert (right.status_code, right.content) == (200, b'{"code":200}')
        assert count(collector) == 0
        # Tombstoned: the owner's late events are not stored; its retry is harmless.
        assert post(url, batch([event(11)], device_proofs=proofs())).json()["rejected"] == 1
        assert post(url, batch([event(12)])).json()["rejected"] == 1  # no proof: refused too
        assert delete(url, proof=proof()).content == b'{"code":200}'
        assert count(collector) == 0
        metrics = httpx.get(url + "/metrics", timeout=10).text
        assert "collector_deletions_unverified_total 1" in metrics


def test_a_stranger_cannot_replace_the_first_proof_hash(storage: Storage) -> None:
    def insert(i: int, secret: bytes) -> None:
        body = batch([event(i)], device_proofs=proofs(secret))
        storage.insert_batch(parse_batch(json.dumps(body).encode()))

    insert(1, OWNER)
    insert(2, STRANGER)  # stored anyway (no data lost), but the hash stays the owner's
    assert storage.count() == 2
    taken = storage.delete_device(PROJECT, DEVICE_ID, "x", proof_hash=proofs(STRANGER)[DEVICE_ID])
    assert (taken.verified, taken.deleted, storage.count()) == (False, 0, 2)
    done = storage.delete_device(PROJECT, DEVICE_ID, "x", proof_hash=proofs()[DEVICE_ID])
    assert (done.verified, done.deleted, storage.count()) == (True, 2, 0)


def test_a_stranger_tombstone_does_not_silence_the_owner(storage: Storage) -> None:
    # A device not yet seen: the first proof is trusted, and the tombstone keeps its hash.
    hijack = proofs(STRANGER)[DEVICE_ID]
    assert storage.delete_device(PROJECT, DEVICE_ID, "x", proof_hash=hijack).verified
    body = batch([event(1)], device_proofs=proofs())  # the real installation, another hash
    stored = storage.insert_batch(parse_batch(json.dumps(body).encode()))
    assert (stored.inserted, stored.rejected) == (1, 0)
    body = batch([event(2)], device_proofs=proofs(STRANGER))
    assert storage.insert_batch(parse_batch(json.dumps(body).encode())).rejected == 1


def test_tombstones_are_capped_per_project_oldest_first(storage: Storage) -> None:
    for i in range(6):
        device = f"device-cap-{i}"
        digest = proofs(device=device)[device]
        storage.delete_device(
            PROJECT, device, "x", proof_hash=digest, now=1000 + i, max_tombstones=4
        )
    storage.delete_device("other", "device-cap-0", "x", now=1, max_tombstones=4)
    # The two oldest expired: their late events are stored again; the newest four still refuse.
    devices = [f"device-cap-{i}" for i in range(6)]
    body = batch([event(i, device_id=d) for i, d in enumerate(devices)])
    result = storage.insert_batch(parse_batch(json.dumps(body).encode()))
    assert (result.inserted, result.rejected) == (2, 4)
    other = batch([event(9, device_id="device-cap-0")]) | {"api_key": "other"}
    assert storage.insert_batch(parse_batch(json.dumps(other).encode())).rejected == 1


def test_deletion_requests_are_rate_limited_per_network(tmp_path: Path) -> None:
    with CollectorProcess(tmp_path / "c.db") as collector:
        url = collector.url
        answers = [
            delete(url, f"device-rate-{i}", proof=proof(device=f"device-rate-{i}")).status_code
            for i in range(25)
        ]
        assert answers[:20] == [200] * 20
        assert set(answers[20:]) == {429}
        refused = delete(url, proof=proof())
        assert refused.status_code == 429 and int(refused.headers["Retry-After"]) >= 1
        # Ingest is not affected, and the refused requests set no tombstone.
        assert post(url, batch([event(1, device_id="device-rate-24")])).json()["rejected"] == 0
        with sqlite3.connect(tmp_path / "c.db") as conn:
            assert conn.execute("SELECT count(*) FROM tombstones").fetchone() == (20,)


def test_a_version_2_database_migrates_and_trusts_the_first_proof(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path, isolation_level=None)
    for statement in (s for migration in MIGRATIONS[:2] for s in migration):
        conn.execute(statement)
    conn.execute("PRAGMA user_version = 2")
    conn.execute(
        "INSERT INTO events (project, insert_id, device_id, event_type, received_at, event) "
        "VALUES (?, 'i-1', ?, 'e', 1, '{}')",
        (PROJECT, DEVICE_ID),
    )
    conn.close()
    store = EventStore(path)
    try:
        assert store.schema_version == 6
        # No proof hash known for a device stored before proofs: the first proof is trusted.
        first = store.delete_device(PROJECT, DEVICE_ID, "x", proof_hash=proofs()[DEVICE_ID])
        assert (first.verified, first.deleted) == (True, 1)
        again = store.delete_device(PROJECT, DEVICE_ID, "x", proof_hash=proofs(STRANGER)[DEVICE_ID])
        assert not again.verified
    finally:
        store.close()
