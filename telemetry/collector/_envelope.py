"""Reading a Sentry envelope (https://develop.sentry.dev/sdk/envelopes/): its header line and its
items, each an item header line and a payload, with bounds on their number and sizes.

Only the framing is checked here (strict UTF-8 strict JSON headers, lengths, item count); what
an ``event`` payload must hold is ``_reports``. Every problem raises :class:`EnvelopeRejected`
whose message names it (it goes into the 400 answer).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from telemetry.collector._strict_json import compact_json, storable_value, strict_json_loads

__all__ = [
    "MAX_ENVELOPE_BYTES",
    "MAX_HEADER_BYTES",
    "MAX_ITEMS",
    "Envelope",
    "EnvelopeItem",
    "EnvelopeRejected",
    "event_envelope",
    "parse_envelope",
]

#: Largest accepted envelope after decompression (Sentry: 1 MiB per event).
MAX_ENVELOPE_BYTES: Final = 1024 * 1024
#: Most items in one envelope.
MAX_ITEMS: Final = 100
#: Longest envelope or item header line.
MAX_HEADER_BYTES: Final = 16 * 1024


class EnvelopeRejected(ValueError):
    """The envelope cannot be read; the message says why (no value of the envelope in it)."""


@dataclass(frozen=True, slots=True)
class EnvelopeItem:
    """One item: its type, its header and its raw payload."""

    type: str
    header: dict[str, Any]
    payload: bytes


@dataclass(frozen=True, slots=True)
class Envelope:
    """A parsed envelope: its header object and its items, in order."""

    header: dict[str, Any]
    items: list[EnvelopeItem]


def _header(line: bytes, what: str) -> dict[str, Any]:
    if len(line) > MAX_HEADER_BYTES:
        raise EnvelopeRejected(f"{what} is longer than {MAX_HEADER_BYTES} bytes")
    try:
        value = strict_json_loads(line)
    except (ValueError, RecursionError):
        raise EnvelopeRejected(f"{what} is not a strict JSON object") from None
    if not isinstance(value, dict) or not storable_value(value):
        raise EnvelopeRejected(f"{what} is not a strict JSON object")
    return value


def _line(body: bytes, start: int) -> tuple[bytes, int]:
    """The line starting at ``start`` (without its ``\\n``) and where the next one starts."""
    end = body.find(b"\n", start)
    if end < 0:
        return body[start:], len(body)
    return body[start:end], end + 1


def parse_envelope(body: bytes) -> Envelope:
    """Split ``body`` into its header and items; :class:`EnvelopeRejected` when malformed."""
    if not body.strip():
        raise EnvelopeRejected("empty envelope")
    line, pos = _line(body, 0)
    header = _header(line, "the envelope header")
    items: list[EnvelopeItem] = []
    while pos < len(body):
        line, pos = _line(body, pos)
        if not line.strip() and pos >= len(body):
            break  # a trailing newline
        index = len(items)
        if index >= MAX_ITEMS:
            raise EnvelopeRejected(f"more than {MAX_ITEMS} items")
        what = f"item {index}"
        item_header = _header(line, f"the header of {what}")
        kind = item_header.get("type")
        if not isinstance(kind, str) or not kind:
            raise EnvelopeRejected(f"the header of {what} has no type")
        length = item_header.get("length")
        if length is None:
            payload, pos = _line(body, pos)
        else:
            if isinstance(length, bool) or not isinstance(length, int) or length < 0:
                raise EnvelopeRejected(f"the length of {what} is not a non-negative integer")
            if pos + length > len(body):
                raise EnvelopeRejected(f"{what} is shorter than its length")
            payload = body[pos : pos + length]
            pos += length
            if pos < len(body):
                if body[pos : pos + 1] != b"\n":
                    raise EnvelopeRejected(f"{what} is not followed by a newline")
                pos += 1
        items.append(EnvelopeItem(type=kind, header=item_header, payload=payload))
    return Envelope(header=header, items=items)


def event_envelope(event_id: str, payload: str, *, sent_at: str) -> bytes:
    """An envelope holding one ``event`` item whose payload is ``payload`` (JSON text), byte
    for byte, with its ``length``."""
    data = payload.encode("utf-8")
    header = compact_json({"event_id": event_id, "sent_at": sent_at})
    item = compact_json({"type": "event", "length": len(data), "content_type": "application/json"})
    return header.encode() + b"\n" + item.encode() + b"\n" + data + b"\n"
