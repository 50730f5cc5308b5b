"""What an Amplitude HTTP V2 400 answer says: the indexes of the events it refused.

Shared by the client's uploader and the collector's forwarder, which both speak that API.
"""

from __future__ import annotations

import json
from typing import Final

#: Body fields that map a field name to the indexes of the events it made invalid.
_INDEXED_FIELDS: Final = (
    "events_with_invalid_fields",
    "events_with_missing_fields",
    "events_with_invalid_id_lengths",
)


def rejected_indexes(raw_body: bytes, size: int) -> set[int]:
    """Indexes below ``size`` that a 400 body names as invalid, missing or silenced (empty
    when it names none, or is not JSON: the batch was refused as a whole)."""
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
