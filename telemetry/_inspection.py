"""Inspection rows: what is kept on this computer and what was sent, event by event and error
report by error report, without Qt.

This module owns :class:`EventRow` (one event as an inspector shows it), the three row lists
read through a :class:`~telemetry.TelemetryClient`'s public methods (queued events a page at a
time, the events of the last sent batches, the dropped-event log), :class:`ReportRow` (one
error report: the reports waiting and the last sent, each exactly as it is or was sent), the
filter an inspector applies to them, the cheap figures that tell whether a list changed, and
the JSON Lines export. The Qt inspector (``telemetry.qt``) and ``telemetry errors`` build on it.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from telemetry.events import encode_json, utf8_size

if TYPE_CHECKING:
    from telemetry import StoredEvent
    from telemetry._protocol import TelemetryClient

__all__ = [
    "DROPPED",
    "KINDS",
    "QUEUED",
    "REPORTS",
    "SENT",
    "EventRow",
    "ReportRow",
    "Row",
    "all_queued_rows",
    "dropped_rows",
    "human_bytes",
    "last_queue_id",
    "queued_rows",
    "report_error",
    "report_rows",
    "row_matches",
    "rows_of",
    "sent_batch_key",
    "sent_batch_rows",
    "sent_rows",
    "signature",
    "write_jsonl",
]

QUEUED: Final = "queued"
SENT: Final = "sent"
DROPPED: Final = "dropped"
#: The three lists, in the order an inspector shows them.
KINDS: Final = (QUEUED, SENT, DROPPED)
#: The error reports: those waiting and the last sent.
REPORTS: Final = "reports"
#: How many sent batches and dropped events are read (the store keeps about this many).
SENT_BATCHES: Final = 100
DROPPED_LIMIT: Final = 1000
#: How many sent reports are read (the store keeps the last 50).
SENT_REPORTS: Final = 50


@dataclass(frozen=True, slots=True)
class EventRow:
    """One event as an inspector shows it.

    ``key`` is unique within its list (``q:<queue id>`` for a queued event); ``json`` is the
    event exactly as it is (queued) or was (sent, dropped) serialised for the collector;
    ``time`` is the event's time in ms (for dropped events: when it was dropped); ``detail``
    is the insert id (queued), the batch and its HTTP status (sent) or the reason (dropped).
    """

    key: str
    kind: str
    event_type: str
    time: int | None
    detail: str
    json: str
    size: int = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "size", utf8_size(self.json))  # UTF-8 bytes of the JSON


@dataclass(frozen=True, slots=True)
class ReportRow:
    """One error report as an inspector shows it.

    ``status`` is :data:`QUEUED` (waiting) or :data:`SENT`; ``json`` is the report (a Sentry
    event object) exactly as it will be or was sent; ``error`` is ``Type: message`` (a message
    report: its message); ``count`` is how many times it happened between ``first_seen`` and
    ``last_seen`` (ms since the epoch, ``None`` when the report does not say);
    ``sent_at`` and ``http_status`` are those of its delivery (``None`` while queued).
    """

    key: str
    status: str
    level: str
    error: str
    count: int
    first_seen: int | None
    last_seen: int | None
    sent_at: int | None
    http_status: int | None
    json: str


#: A row of any inspector list.
Row = EventRow | ReportRow


# ---------------------------------------------------------------------------- reading rows


def _queued_row(event: StoredEvent) -> EventRow:
    return EventRow(
        key=f"q:{event.id}",
        kind=QUEUED,
        event_type=str(event.event_type),
        time=int(event.time),
        detail=str(event.insert_id),
        json=str(event.json),
    )


def queued_rows(
    client: TelemetryClient, *, after_id: int = 0, limit: int | None = None
) -> list[EventRow]:
    """Queued events (oldest first) after queue id ``after_id``, at most ``limit``."""
    events: Iterable[StoredEvent] = client.queued_events(after_id)
    if limit is not None:
        events = itertools.islice(events, limit)
    return [_queued_row(e) for e in events]


def all_queued_rows(client: TelemetryClient) -> Iterator[EventRow]:
    """Every queued event, oldest first, read lazily."""
    for event in client.queued_events(0):
        yield _queued_row(event)


def _batch_events(batch: dict[str, Any]) -> list[Any]:
    events = batch.get("events") or []
    if isinstance(events, dict):  # the whole request body: {"api_key": ..., "events": [...]}
        events = events.get("events") or []
    return list(events) if isinstance(events, list) else []


def sent_rows(client: TelemetryClient, *, batches: int = SENT_BATCHES) -> list[EventRow]:
    """The events of the last ``batches`` sent batches, newest batch first."""
    return sent_batch_rows(client.sent_batches(batches))


def sent_batch_rows(batches: Iterable[dict[str, Any]]) -> list[EventRow]:
    """The events of sent batches (as ``client.sent_batches()`` gives them), in that order."""
    rows: list[EventRow] = []
    for batch in batches:
        for index, event in enumerate(_batch_events(batch)):
            if not isinstance(event, dict):
                continue
            time_value = event.get("time")
            rows.append(
                EventRow(
                    key=f"s:{batch.get('id')}:{index}",
                    kind=SENT,
                    event_type=str(event.get("event_type", "")),
                    time=int(time_value) if isinstance(time_value, int) else None,
                    detail=f"#{batch.get('id')} · HTTP {batch.get('status')}",
                    # The client serialises with this same encoder, so this is the text sent.
                    json=encode_json(event),
                )
            )
    return rows


def sent_batch_key(row: EventRow) -> str:
    """Which sent batch a sent row is of (``s:<batch id>``)."""
    return row.key.rpartition(":")[0]


def dropped_rows(client: TelemetryClient, *, limit: int = DROPPED_LIMIT) -> list[EventRow]:
    """The most recently dropped events, newest first, with the reason."""
    rows: list[EventRow] = []
    for entry in client.dropped_events(limit):
        dropped_at = entry.get("dropped_at")
        rows.append(
            EventRow(
                key=f"d:{entry.get('event_id')}:{dropped_at}:{entry.get('insert_id')}",
                kind=DROPPED,
                event_type=str(entry.get("event_type") or ""),
                time=int(dropped_at) if isinstance(dropped_at, int) else None,
                detail=str(entry.get("reason") or ""),
                json=str(entry.get("payload") or ""),
            )
        )
    return rows


def report_error(report: Mapping[str, Any]) -> str:
    """``Type: message`` of the exception a report is about (the last of
    ``exception.values``, the one raised), else its message."""
    exception = report.get("exception")
    values = exception.get("values") if isinstance(exception, dict) else None
    if isinstance(values, list) and values and isinstance(values[-1], dict):
        last = values[-1]
        kind, value = str(last.get("type") or ""), str(last.get("value") or "")
        return f"{kind}: {value}" if kind and value else kind or value
    message = report.get("message")
    if isinstance(message, dict):
        return str(message.get("formatted") or message.get("message") or "")
    if isinstance(message, str):
        return message
    logentry = report.get("logentry")
    return str(logentry.get("formatted") or "") if isinstance(logentry, dict) else ""


def _iso_ms(value: Any) -> int | None:
    """ms since the epoch of an RFC 3339 time (``2026-01-31T12:00:00.000000Z``), else None."""
    if not isinstance(value, str):
        return None
    try:
        return int(datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp() * 1000)
    except ValueError:
        return None


def _report_row(
    report: Mapping[str, Any], key: str, status: str, sent: Mapping[str, Any] | None = None
) -> ReportRow:
    contexts = report.get("contexts")
    ours = contexts.get("telemetry") if isinstance(contexts, dict) else None
    ours = ours if isinstance(ours, dict) else {}
    count = ours.get("count")
    timestamp = report.get("timestamp")
    stamp = int(timestamp * 1000) if isinstance(timestamp, int | float) else None
    sent_at = sent.get("sent_at") if sent is not None else None
    http_status = sent.get("status") if sent is not None else None
    return ReportRow(
        key=key,
        status=status,
        level=str(report.get("level") or "error"),
        error=report_error(report),
        count=count if isinstance(count, int) else 1,
        first_seen=_iso_ms(ours.get("first_seen")) or stamp,
        last_seen=_iso_ms(ours.get("last_seen")) or stamp,
        sent_at=sent_at if isinstance(sent_at, int) else None,
        http_status=http_status if isinstance(http_status, int) else None,
        # The client serialises reports with this same encoder: this is the text sent.
        json=encode_json(report),
    )


def report_rows(client: TelemetryClient, *, sent: int = SENT_REPORTS) -> list[ReportRow]:
    """The error reports waiting (oldest first), then the last ``sent`` sent (newest first),
    through ``client.queued_reports()`` and ``client.sent_reports()``. At most 100 reports
    wait and the last 50 sent are kept, so this reads a bounded amount."""
    rows = [
        _report_row(report, f"rq:{report.get('event_id')}", QUEUED)
        for report in client.queued_reports()
        if isinstance(report, dict)
    ]
    for entry in client.sent_reports(sent):
        report = entry.get("report")
        if isinstance(report, dict):
            key = f"rs:{entry.get('sent_at')}:{report.get('event_id')}"
            rows.append(_report_row(report, key, SENT, entry))
    return rows


def rows_of(client: TelemetryClient, kind: str) -> Iterator[EventRow]:
    """Every row of one list: all queued events, or the sent or dropped ones."""
    if kind == QUEUED:
        return all_queued_rows(client)
    if kind == SENT:
        return iter(sent_rows(client))
    if kind == DROPPED:
        return iter(dropped_rows(client))
    raise ValueError(f"unknown list {kind!r} (use one of {', '.join(KINDS)})")


def signature(client: TelemetryClient, kind: str) -> Any:
    """Cheap figures of one list that change whenever its rows change (no event is read).

    Queued: ``(events, bytes, oldest time)``; sent: the newest batch's id; dropped: the
    newest drop's identity."""
    if kind == QUEUED:
        stats = client.queue_stats()
        return (stats.events, stats.bytes, stats.oldest_time)
    if kind == SENT:
        newest = client.sent_batches(1)
        return newest[0].get("id") if newest else None
    newest_drop = client.dropped_events(1)
    if not newest_drop:
        return None
    entry = newest_drop[0]
    return (entry.get("event_id"), entry.get("dropped_at"), entry.get("insert_id"))


def last_queue_id(rows: Iterable[EventRow]) -> int:
    """The highest queue id among queued rows (0 for none): where the next page starts."""
    return max((int(r.key[2:]) for r in rows if r.kind == QUEUED), default=0)


# ---------------------------------------------------------------------------- filter, export


def row_matches(row: Row, event_type: str | None, search: str) -> bool:
    """Whether ``row`` is of ``event_type`` (``None``: any; an error report has no event type
    and is never left out by it) and contains ``search`` (case-insensitive, in its JSON, event
    type or detail, a report's error and level; empty: anything)."""
    needle = search.casefold().strip()
    if isinstance(row, ReportRow):
        return not needle or any(
            needle in text.casefold() for text in (row.json, row.error, row.level)
        )
    if event_type is not None and row.event_type != event_type:
        return False
    if not needle:
        return True
    return (
        needle in row.json.casefold()
        or needle in row.event_type.casefold()
        or needle in row.detail.casefold()
    )


def write_jsonl(rows: Iterable[Row], path: str | os.PathLike[str]) -> int:
    """Write each row's exact JSON as one line (UTF-8) to ``path``, replacing it only once
    everything is written; returns the number of lines."""
    count = 0
    target = Path(path)
    tmp = target.with_name(target.name + ".part")
    try:
        with tmp.open("w", encoding="utf-8", newline="\n") as out:
            for row in rows:
                out.write(row.json.replace("\n", " "))
                out.write("\n")
                count += 1
        tmp.replace(target)
    finally:
        tmp.unlink(missing_ok=True)
    return count


def human_bytes(size: int) -> str:
    """``512 B``, ``1.5 KiB``, ``3.2 MiB``."""
    value = float(size)
    for unit in ("B", "KiB", "MiB"):
        if value < 1024 or unit == "MiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"
