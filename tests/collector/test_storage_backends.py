"""The storage contract, run against SQLite and a real PostgreSQL alike."""

from __future__ import annotations

import json

from telemetry.collector import Storage
from telemetry.collector._storage import LinkHit
from telemetry.collector._validation import Batch, parse_batch

from ._support import DEVICE_ID, PROJECT, batch, event

OTHER = "device-4411aa0b"


def parsed(*events: dict[str, object], project: str = PROJECT) -> Batch:
    return parse_batch(json.dumps(batch(list(events)) | {"api_key": project}).encode())


def test_dedup_by_project_and_insert_id(storage: Storage) -> None:
    first = storage.insert_batch(parsed(event(1), event(2)), received_at_ms=1)
    assert (first.inserted, first.duplicates) == (2, 0)
    again = storage.insert_batch(parsed(event(2), event(3), event(3)), received_at_ms=2)
    assert (again.inserted, again.duplicates) == (1, 2)
    other = storage.insert_batch(parsed(event(1), project="other"), received_at_ms=3)
    assert (other.inserted, other.duplicates) == (1, 0)
    assert storage.count() == 4


def test_deletion_tombstone_and_outbox(storage: Storage) -> None:
    body = parsed(*[event(i) for i in range(5)], event(9, device_id=OTHER))
    assert storage.insert_batch(body, forward=True).inserted == 6
    assert storage.outbox_count() == 6
    assert storage.insert_batch(body, forward=True).inserted == 0
    assert storage.outbox_count() == 6  # duplicates are not forwarded twice

    result = storage.delete_device(PROJECT, DEVICE_ID, "r" * 1000)
    assert (result.deleted, result.forwards_deleted) == (5, 5)
    assert storage.count() == storage.outbox_count() == 1
    again = storage.delete_device(PROJECT, DEVICE_ID, "again")
    assert (again.deleted, again.forwards_deleted) == (0, 0)

    late = storage.insert_batch(parsed(event(20), event(21, device_id=OTHER)), forward=True)
    assert (late.inserted, late.duplicates, late.rejected) == (1, 0, 1)
    # Another project's device with the same id is not affected.
    assert storage.insert_batch(parsed(event(30), project="other")).inserted == 1


def test_outbox_claim_lease_retry_done_and_expiry(storage: Storage) -> None:
    storage.insert_batch(parsed(*[event(i) for i in range(5)]), received_at_ms=1000, forward=True)
    storage.insert_batch(parsed(event(50), project="other"), received_at_ms=2000, forward=True)

    claimed = storage.claim_forwards(now=5000, lease_ms=60_000, limit=3)
    assert [r.project for r in claimed] == [PROJECT] * 3  # one project per claim, oldest first
    assert [json.loads(r.event)["insert_id"] for r in claimed] == [
        event(i)["insert_id"] for i in range(3)
    ]
    rest = storage.claim_forwards(now=5000, lease_ms=60_000, limit=10)
    assert len(rest) == 2 and {r.project for r in rest} == {PROJECT}  # leased rows are skipped
    others = storage.claim_forwards(now=5000, lease_ms=60_000, limit=10)
    assert [r.project for r in others] == ["other"]
    assert storage.claim_forwards(now=5000, lease_ms=60_000, limit=10) == []

    storage.forward_done([r.id for r in claimed])
    storage.forward_retry([r.id for r in rest], next_attempt_at=9000)
    assert storage.claim_forwards(now=8999, lease_ms=1, limit=10) == []
    retried = storage.claim_forwards(now=9000, lease_ms=1, limit=10)
    assert [r.attempts for r in retried] == [1, 1]
    assert storage.forward_expire(created_before=1500) == 2
    assert storage.outbox_count() == 1


def test_link_hits_are_stored(storage: Storage) -> None:
    hit = LinkHit(
        program_id="p1",
        kind="click",
        lead=True,
        affiliate="",
        url="https://github.com",
        client_ip="203.0.113.0",
        user_agent="ua",
        dimensions=("a", "b", "", "", ""),
        is_sponsored=False,
        created_at=1,
    )
    storage.insert_link_hits([hit, hit])
    storage.check_writable()
