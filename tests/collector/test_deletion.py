"""Deletion requests (``POST /deletion``): rows, pending forwards, tombstone, strict body."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import httpx
import pytest

from telemetry.collector import EventStore
from telemetry.collector._validation import parse_batch
from telemetry.wire import device_proof, proof_hash
from tests._fixtures import RunningCollector
from tests.collector_process import CollectorProcess

from ._support import DEVICE_ID, PROJECT, batch, event, post, rows

OTHER_DEVICE = "device-77aa0c19"
SECRET = bytes(range(32))
PROOF = device_proof(SECRET, PROJECT, DEVICE_ID)
#: What the device's batches carry: the collector learns it from the first one.
PROOFS = {DEVICE_ID: proof_hash(PROOF)}


def delete(url: str, body: dict[str, Any] | bytes, path: str = "/deletion") -> httpx.Response:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    return httpx.post(
        url + path, content=data, headers={"Content-Type": "application/json"}, timeout=15
    )


def request(device_id: str = DEVICE_ID, project: str = PROJECT) -> dict[str, str]:
    return {
        "project": project,
        "device_id": device_id,
        "reason": "user turned telemetry off",
        "proof": device_proof(SECRET, project, device_id),
    }


def test_deletion_removes_the_device_rows_keeps_a_tombstone_and_is_idempotent(
    tmp_path: Path,
) -> None:
    database = tmp_path / "collector.db"
    with CollectorProcess(database) as collector:
        url = collector.url
        mine = [event(i) for i in range(10)]
        theirs = [event(100 + i, device_id=OTHER_DEVICE) for i in range(5)]
        assert post(url, batch(mine + theirs, device_proofs=PROOFS)).status_code == 200
        # The same device id in another project is not touched.
        other_project = batch([event(200 + i) for i in range(3)]) | {"api_key": "other-app"}
        assert post(url, other_project).status_code == 200
        assert len(collector.rows()) == 18

        first = delete(url, request())
        assert first.status_code == 200
        assert first.json() == {"code": 200}  # no count: the answer is the same for anyone
        left = collector.rows()
        assert sorted((r["project"], r["device_id"]) for r in left) == sorted(
            [(PROJECT, OTHER_DEVICE)] * 5 + [("other-app", DEVICE_ID)] * 3
        )

        again = delete(url, request(), path="/amplitude/deletion")
        assert again.json() == {"code": 200}

        # Events of the deleted device that arrive later (e.g. sent before the request) are
        # answered 200 (the client must drop them) but never stored.
        late = post(url, batch([event(300), event(301), event(302, device_id=OTHER_DEVICE)]))
        assert late.status_code == 200
        assert late.json()["rejected"] == 2
        assert len(collector.rows()) == 9
        metrics = httpx.get(url + "/metrics", timeout=10).text
        assert "collector_deletions_total 2" in metrics
        assert "collector_events_deleted_total 10" in metrics

        # The tombstone survives a restart.
        collector.stop()
        collector.start()
        assert post(url, batch([event(400)])).json()["rejected"] == 1
        assert len(collector.rows()) == 9

    conn = sqlite3.connect(database)
    tombstones = conn.execute(
        "SELECT project, device_id, reason, proof_hash FROM tombstones"
    ).fetchall()
    conn.close()
    assert tombstones == [(PROJECT, DEVICE_ID, "user turned telemetry off", PROOFS[DEVICE_ID])]


@pytest.mark.parametrize(
    ("body", "why"),
    [
        (request() | {"extra": "x"}, "unknown key"),
        ({k: v for k, v in request().items() if k != "proof"}, "missing proof"),
        (request() | {"proof": None}, "proof null"),
        (request() | {"proof": PROOF.upper()}, "proof not lowercase hex"),
        (request() | {"proof": PROOF[:-1]}, "proof too short"),
        (request() | {"proof": PROOF + "0"}, "proof too long"),
        ({"project": PROJECT, "device_id": DEVICE_ID}, "missing reason"),
        ({"project": PROJECT, "reason": "r"}, "missing device_id"),
        (request() | {"device_id": 12345678}, "device_id not a string"),
        (request() | {"reason": None}, "reason null"),
        (request() | {"project": ["etcher"]}, "project a list"),
        (request() | {"project": ""}, "empty project"),
        (request() | {"device_id": "  "}, "blank device_id"),
        ([request()], "a list, not an object"),
        (b'{"project": "etcher-test", "device_id": NaN, "reason": ""}', "NaN"),
        (b"", "empty body"),
        (b"{not json", "broken JSON"),
        (b'{"project": "p1", "device_id": "device-1", "reason": "", "reason": ""}', "dup key"),
        (b'{"project": "etcher-test", "device_id": "dev\\ud800ice", "reason": ""}', "surrogate"),
    ],
)
def test_malformed_deletion_requests_get_400_and_delete_nothing(
    collector: RunningCollector, body: Any, why: str
) -> None:
    assert post(collector.url, batch([event(1), event(2)])).status_code == 200
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    response = delete(collector.url, data)
    assert response.status_code == 400, why
    assert response.json()["code"] == 400
    assert len(rows(collector.database)) == 2
    # ...and no tombstone was written: the device's events are still stored afterwards.
    assert post(collector.url, batch([event(3)])).json()["rejected"] == 0
    assert len(rows(collector.database)) == 3


def test_deletion_also_removes_pending_forwards(tmp_path: Path) -> None:
    store = EventStore(tmp_path / "c.db")
    try:
        body = batch([event(i) for i in range(4)] + [event(9, device_id=OTHER_DEVICE)])
        parsed = parse_batch(json.dumps(body).encode())
        assert store.insert_batch(parsed, forward=True).inserted == 5
        assert store.outbox_count() == 5
        # A duplicate batch adds nothing to the outbox.
        assert store.insert_batch(parsed, forward=True).inserted == 0
        assert store.outbox_count() == 5
        result = store.delete_device(PROJECT, DEVICE_ID, "test")
        assert (result.deleted, result.forwards_deleted) == (4, 4)
        assert store.count() == store.outbox_count() == 1
    finally:
        store.close()
