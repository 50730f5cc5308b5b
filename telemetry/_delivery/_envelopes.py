"""Sentry's envelope format around one error report (https://develop.sentry.dev/sdk/envelopes/):
an envelope header line, an item header line, the event JSON. The client sends it to
``{endpoint}/api/{project}/envelope/``, as the official Sentry SDKs do.

:func:`report_json` completes a waiting report for sending: its event id (kept through
retries, so the collector stores a resent report once) and ``contexts.telemetry``: how many
times it happened (``count``) between ``first_seen`` and ``last_seen``.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from telemetry._store import StoredReport


def report_json(report: StoredReport) -> str:
    """The Sentry event JSON to send for ``report``."""
    event = report.as_dict()
    event["event_id"] = report.event_id
    contexts = event.setdefault("contexts", {})
    telemetry = contexts.setdefault("telemetry", {})
    telemetry.update(
        count=report.count,
        first_seen=_iso(report.first_seen),
        last_seen=_iso(report.last_seen),
    )
    return json.dumps(event, ensure_ascii=False, allow_nan=False, separators=(",", ":"))


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def envelope(event_json: str, event_id: str, *, sent_at: datetime | None = None) -> bytes:
    """The envelope bytes around one event (already JSON text)."""
    when = (sent_at or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    payload = event_json.encode("utf-8")
    header = json.dumps({"event_id": event_id, "sent_at": when}, separators=(",", ":"))
    item = json.dumps(
        {"type": "event", "length": len(payload), "content_type": "application/json"},
        separators=(",", ":"),
    )
    return header.encode() + b"\n" + item.encode() + b"\n" + payload + b"\n"


def parse_envelope(body: bytes) -> dict[str, Any]:
    """``{"header": {...}, "items": [{"header": {...}, "payload": ...}]}`` of an envelope
    (a JSON payload decoded, any other kept as bytes); raises ValueError when malformed."""
    header_line, _, rest = body.partition(b"\n")
    result: dict[str, Any] = {"header": json.loads(header_line), "items": []}
    while rest.strip():
        item_line, _, rest = rest.partition(b"\n")
        item_header = json.loads(item_line)
        length = item_header.get("length")
        if isinstance(length, int):
            raw, rest = rest[:length], rest[length:]
            rest = rest[1:] if rest.startswith(b"\n") else rest
        else:
            raw, _, rest = rest.partition(b"\n")
        payload: Any = raw
        if item_header.get("type") == "event" or item_header.get("content_type") == (
            "application/json"
        ):
            payload = json.loads(raw)
        result["items"].append({"header": item_header, "payload": payload})
    return result
