"""The proof hashes an event batch carries: ``"device_proofs": {device_id: proof_hash}``, so
the collector learns which installation owns a device id (see :mod:`telemetry.wire`)."""

from __future__ import annotations

import json
from collections.abc import Sequence

from telemetry._identity import installation_secret
from telemetry._store import EventStore, StoredEvent
from telemetry.wire import device_proof, proof_hash


def batch_proofs(store: EventStore, project: str, batch: Sequence[StoredEvent]) -> dict[str, str]:
    """``proof_hash`` of the proof of every device id in ``batch``; none without a secret (after
    an opt-out in another process, nothing may claim the old device id)."""
    secret = installation_secret(store)
    if secret is None:
        return {}
    devices = {json.loads(e.json).get("device_id") for e in batch}
    return {
        d: proof_hash(device_proof(secret, project, d))
        for d in sorted(d for d in devices if isinstance(d, str) and d)
    }
