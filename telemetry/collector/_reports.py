"""Error reports: what the collector keeps of a Sentry ``event`` item (:class:`Report`), how it
is checked, its fingerprint (the grouping key), and the groups it falls into
(:class:`ReportGroup`).

A report stores its event payload whole, as compact strict JSON, next to the columns the listing
and the deletion need. ``contexts.telemetry.count`` (our client's occurrences of one
fingerprint, default 1) and ``contexts.telemetry.first_seen``/``last_seen`` make one report
stand for many raises of the same error.
"""

from __future__ import annotations

import datetime
import hashlib
import re
from dataclasses import dataclass
from typing import Any, Final

from telemetry.collector._strict_json import compact_json, storable_value, strict_json_loads

__all__ = [
    "DEFAULT_FINGERPRINT",
    "MAX_COUNT",
    "MAX_REPORT_BYTES",
    "Report",
    "ReportGroup",
    "ReportRejected",
    "fingerprint",
    "parse_report",
]

#: Sentry's placeholder for "group the default way".
DEFAULT_FINGERPRINT: Final = "{{ default }}"
#: Largest accepted event payload (Sentry: 1 MiB).
MAX_REPORT_BYTES: Final = 1024 * 1024
#: Largest ``contexts.telemetry.count`` accepted.
MAX_COUNT: Final = 1_000_000_000
#: Longest text kept in a column (the payload keeps everything).
_MAX_COLUMN: Final = 1024
_HEX32: Final = re.compile(r"[0-9a-f]{32}")
_UUID: Final = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
#: Timestamps outside 1970 .. 9999 are refused.
_MAX_MS: Final = 253_402_300_799_999


class ReportRejected(ValueError):
    """The event item is not an acceptable report; the message names the field."""


@dataclass(frozen=True, slots=True)
class Report:
    """One error report, ready to store."""

    project: str
    event_id: str
    device_id: str | None
    timestamp: int
    level: str | None
    platform: str | None
    release: str | None
    environment: str | None
    exception_type: str | None
    exception_value: str | None
    fingerprint: str
    count: int
    first_seen: int
    last_seen: int
    payload: str


@dataclass(frozen=True, slots=True)
class ReportGroup:
    """The reports of one (project, fingerprint)."""

    project: str
    fingerprint: str
    count: int
    reports: int
    first_seen: int
    last_seen: int
    releases: tuple[str, ...]
    exception_type: str | None
    exception_value: str | None


def normalise_event_id(value: Any) -> str | None:
    """A Sentry event id as 32 lowercase hex digits (a hyphenated UUID is accepted), or None."""
    if not isinstance(value, str) or len(value) > 36:
        return None
    text = value.lower()
    if _UUID.fullmatch(text):
        text = text.replace("-", "")
    return text if _HEX32.fullmatch(text) else None


def _time_ms(value: Any, field: str) -> int:
    """A Sentry timestamp (RFC 3339 text or seconds since the epoch) in ms."""
    if isinstance(value, bool):
        raise ReportRejected(f"{field} is not a timestamp")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str) and len(value) <= 64:
        text = value.strip()
        if text.endswith(("Z", "z")):
            text = text[:-1] + "+00:00"
        try:
            parsed = datetime.datetime.fromisoformat(text)
        except ValueError:
            raise ReportRejected(f"{field} is not a timestamp") from None
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=datetime.UTC)
        seconds = parsed.timestamp()
    else:
        raise ReportRejected(f"{field} is not a timestamp")
    # NaN, infinities and values such as 1e308 (whose ms overflow an int) are out of range.
    ms = int(seconds * 1000) if 0 <= seconds <= _MAX_MS / 1000 else -1
    if not 0 <= ms <= _MAX_MS:
        raise ReportRejected(f"{field} is out of range")
    return ms


def _text(value: Any) -> str | None:
    """A short text column from ``value`` (None unless a string)."""
    if not isinstance(value, str):
        return None
    return value[:_MAX_COLUMN]


def _exceptions(event: dict[str, Any]) -> list[dict[str, Any]]:
    exception = event.get("exception")
    values = exception.get("values") if isinstance(exception, dict) else exception
    if not isinstance(values, list):
        return []
    return [v for v in values if isinstance(v, dict)]


def _frames(exception: dict[str, Any]) -> list[dict[str, Any]]:
    stacktrace = exception.get("stacktrace")
    frames = stacktrace.get("frames") if isinstance(stacktrace, dict) else None
    if not isinstance(frames, list):
        return []
    return [f for f in frames if isinstance(f, dict)]


def _message(event: dict[str, Any]) -> str | None:
    logentry = event.get("logentry")
    if isinstance(logentry, dict):
        for key in ("message", "formatted"):
            if isinstance(logentry.get(key), str):
                return str(logentry[key])
    message = event.get("message")
    if isinstance(message, dict):
        message = message.get("message") or message.get("formatted")
    return message if isinstance(message, str) else None


def _default_parts(event: dict[str, Any]) -> list[Any]:
    """What the default grouping hashes: each exception's type and the (module, function) of its
    in-app frames (all frames when none is in-app); a message event's message template."""
    parts: list[Any] = []
    for exception in _exceptions(event):
        frames = _frames(exception)
        in_app = [f for f in frames if f.get("in_app") is True]
        chosen = in_app or frames
        parts.append(
            [
                _text(exception.get("type")),
                [[_text(f.get("module")), _text(f.get("function"))] for f in chosen],
            ]
        )
    if not parts:
        parts.append(["message", _message(event)])
    return parts


def fingerprint(event: dict[str, Any]) -> str:
    """The grouping key of ``event``, a sha256 hex: of its ``fingerprint`` list when it has one
    other than ``["{{ default }}"]`` (a ``{{ default }}`` entry stands for the default parts),
    else of the default parts (:func:`_default_parts`)."""
    given = event.get("fingerprint")
    if (
        isinstance(given, list)
        and given
        and all(isinstance(p, str) for p in given)
        and given != [DEFAULT_FINGERPRINT]
    ):
        parts: list[Any] = [_default_parts(event) if p == DEFAULT_FINGERPRINT else p for p in given]
        source = ["custom", parts]
    else:
        source = ["default", _default_parts(event)]
    return hashlib.sha256(compact_json(source, sort_keys=True).encode()).hexdigest()


def _telemetry_context(event: dict[str, Any]) -> dict[str, Any]:
    contexts = event.get("contexts")
    context = contexts.get("telemetry") if isinstance(contexts, dict) else None
    return context if isinstance(context, dict) else {}


def _device_id(event: dict[str, Any], context: dict[str, Any]) -> str | None:
    user = event.get("user")
    user_id = user.get("id") if isinstance(user, dict) else None
    if isinstance(user_id, int) and not isinstance(user_id, bool):
        user_id = str(user_id)
    if isinstance(user_id, str) and user_id:
        return user_id[:_MAX_COLUMN]
    device = context.get("device_id")
    return device[:_MAX_COLUMN] if isinstance(device, str) and device else None


def _count(context: dict[str, Any]) -> int:
    count = context.get("count", 1)
    if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= MAX_COUNT:
        raise ReportRejected(f"contexts.telemetry.count must be an integer from 1 to {MAX_COUNT:,}")
    return count


def parse_report(
    project: str, payload: bytes, *, envelope_event_id: str | None, received_at: int
) -> Report:
    """The :class:`Report` an ``event`` item's ``payload`` makes; :class:`ReportRejected`
    naming the problem when it is not strict JSON, not an object, holds unstorable values, or has
    a bad event id, timestamp or count."""
    if len(payload) > MAX_REPORT_BYTES:
        raise ReportRejected(f"the event is larger than {MAX_REPORT_BYTES} bytes")
    try:
        event = strict_json_loads(payload)
    except (ValueError, RecursionError):
        raise ReportRejected("the event is not strict JSON") from None
    if not isinstance(event, dict):
        raise ReportRejected("the event is not a JSON object")
    if not storable_value(event):
        raise ReportRejected(
            "the event holds a NUL, a lone surrogate, a non-finite number or an integer "
            "outside 64 bits"
        )
    given = event.get("event_id")
    event_id = normalise_event_id(given) if given is not None else envelope_event_id
    if event_id is None:
        raise ReportRejected("event_id must be 32 hexadecimal digits")
    context = _telemetry_context(event)
    count = _count(context)
    timestamp = _time_ms(event["timestamp"], "timestamp") if "timestamp" in event else received_at
    first_seen = (
        _time_ms(context["first_seen"], "contexts.telemetry.first_seen")
        if "first_seen" in context
        else timestamp
    )
    last_seen = (
        _time_ms(context["last_seen"], "contexts.telemetry.last_seen")
        if "last_seen" in context
        else timestamp
    )
    first_seen, last_seen = min(first_seen, last_seen), max(first_seen, last_seen)
    exceptions = _exceptions(event)
    shown = exceptions[-1] if exceptions else {}
    value = _text(shown.get("value")) if exceptions else _text(_message(event))
    return Report(
        project=project,
        event_id=event_id,
        device_id=_device_id(event, context),
        timestamp=timestamp,
        level=_text(event.get("level")),
        platform=_text(event.get("platform")),
        release=_text(event.get("release")),
        environment=_text(event.get("environment")),
        exception_type=_text(shown.get("type")),
        exception_value=value,
        fingerprint=fingerprint(event),
        count=count,
        first_seen=first_seen,
        last_seen=last_seen,
        payload=compact_json(event),
    )
