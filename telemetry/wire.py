"""The Amplitude HTTP V2 wire format, shared by the client's uploader and the collector's
forwarder (both speak that API: ``POST /2/httpapi`` with a JSON body).

* :func:`request_body` builds the body around events that are already JSON text, so each event
  goes out byte for byte as it was stored (its ``insert_id`` included, which the receiver uses
  to drop duplicates of a resent batch).
* :func:`rejected_indexes` reads a 400 answer: which events of the batch it refused.
* :func:`device_proof` and :func:`proof_hash`: the proof of ownership of a device id. A batch
  carries ``"device_proofs": {device_id: proof_hash(proof)}``; a deletion request carries the
  proof itself, which the collector accepts only when its hash is the one it learned first.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Final

__all__ = ["device_proof", "proof_hash", "rejected_indexes", "request_body"]

#: Bytes of the per-installation secret a device proof is made with.
SECRET_BYTES: Final = 32

#: Fields of a 400 body that map a field name to the indexes of the events it made invalid.
_INDEXED_FIELDS: Final = (
    "events_with_invalid_fields",
    "events_with_missing_fields",
    "events_with_invalid_id_lengths",
)


def device_proof(secret: bytes, project: str, device_id: str) -> str:
    """The proof that the installation holding ``secret`` owns ``device_id`` in ``project``:
    ``HMAC-SHA256(secret, project + "\\0" + device_id)``, hex."""
    message = f"{project}\0{device_id}".encode()
    import hashlib  # hashing is needed at upload and opt-out only, not at start-up
    import hmac

    return hmac.new(secret, message, hashlib.sha256).hexdigest()


def proof_hash(proof: str) -> str:
    """``sha256(proof)`` (hex): what a batch carries, and what the collector keeps."""
    import hashlib

    return hashlib.sha256(proof.encode("utf-8", "surrogatepass")).hexdigest()


def request_body(
    api_key: str,
    events_json: str,
    *,
    min_id_length: int | None = None,
    device_proofs: Mapping[str, str] | None = None,
) -> str:
    """``{"api_key":…,"events":[…]}`` around ``events_json`` (events joined by commas).

    ``min_id_length`` adds ``"options":{"min_id_length":…}``: the receiver then accepts
    device and user ids of at least that many characters (Amplitude's default is 5).
    ``device_proofs`` (device id to :func:`proof_hash`) adds ``"device_proofs":{…}``.
    """
    body = f'{{"api_key":{json.dumps(api_key)},"events":[{events_json}]'
    if min_id_length is not None:
        body += f',"options":{{"min_id_length":{min_id_length}}}'
    if device_proofs:
        body += f',"device_proofs":{json.dumps(dict(device_proofs), separators=(",", ":"))}'
    return body + "}"


def rejected_indexes(raw_body: bytes, size: int) -> set[int]:
    """Indexes below ``size`` that a 400 body names as invalid, missing or silenced.

    Empty when it names none or is not JSON: the batch was then refused as a whole.
    """
    try:
        body = json.loads(raw_body)
    except ValueError:
        return set()
    if not isinstance(body, dict):
        return set()
    found: set[int] = set()
    for key in _INDEXED_FIELDS:
        groups = body.get(key)
        if isinstance(groups, dict):
            for indexes in groups.values():
                if isinstance(indexes, list):
                    found.update(i for i in indexes if isinstance(i, int))
    silenced = body.get("silenced_events")
    if isinstance(silenced, list):
        found.update(i for i in silenced if isinstance(i, int))
    return {i for i in found if 0 <= i < size}
