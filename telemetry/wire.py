"""The Amplitude HTTP V2 wire format, shared by the client's uploader and the collector's
forwarder (both speak that API: ``POST /2/httpapi`` with a JSON body).

* :func:`request_body` builds the body around events that are already JSON text, so each event
  goes out byte for byte as it was stored (its ``insert_id`` included, which the receiver uses
  to drop duplicates of a resent batch).
* :func:`rejected_indexes` reads a 400 answer: which events of the batch it refused.
"""

from __future__ import annotations

import json
from typing import Final

__all__ = ["rejected_indexes", "request_body"]

#: Fields of a 400 body that map a field name to the indexes of the events it made invalid.
_INDEXED_FIELDS: Final = (
    "events_with_invalid_fields",
    "events_with_missing_fields",
    "events_with_invalid_id_lengths",
)


def request_body(api_key: str, events_json: str, *, min_id_length: int | None = None) -> str:
    """``{"api_key":…,"events":[…]}`` around ``events_json`` (events joined by commas).

    ``min_id_length`` adds ``"options":{"min_id_length":…}``: the receiver then accepts
    device and user ids of at least that many characters (Amplitude's default is 5).
    """
    body = f'{{"api_key":{json.dumps(api_key)},"events":[{events_json}]'
    if min_id_length is not None:
        body += f',"options":{{"min_id_length":{min_id_length}}}'
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
