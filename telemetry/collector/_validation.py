"""Parsing and validating an Amplitude HTTP V2 request body into a batch of storable events.

Rules (Amplitude semantics; the HTTP answers are listed in the ``telemetry.collector`` docstring):

* the body is strict JSON (UTF-8 without a byte order mark, so no UTF-16/32; no
  ``NaN``/``Infinity``; no key repeated in an object) and an object with ``api_key`` (non-empty
  string without NUL: the project name), ``events`` (non-empty list, at most 2,000 items) and
  optional ``options.min_id_length`` (int >= 1);
* every event is an object with a non-empty string ``event_type`` and at least one *valid*
  ``device_id`` / ``user_id``: a string of at least ``min_id_length`` characters that is not a
  placeholder such as ``"null"`` or the all-zero UUID (case-insensitive). An invalid id next to a
  valid one is ignored (not used for the ``device_id`` / ``user_id`` columns), as Amplitude drops
  it; an event with no valid id is refused;
* every string of an event (keys included) has no NUL and no lone surrogate (``"\\ud800"``),
  every number is finite (``1e999`` is not) and every integer fits in a signed 64-bit integer;
  the offending top-level key is named (``"event"`` when it is the key itself that is bad);
* ``time``, when present and not null, is an integer number of milliseconds from 0 to
  253402300799999 (the end of year 9999 UTC);
* ``insert_id``, when present and not null, is a non-empty string of at most 1,024 characters;
* an event serialises to at most 32 KiB of compact UTF-8 JSON.

If any event breaks a rule, the whole request is refused with 400 and Amplitude's body
(``events_with_invalid_fields`` / ``events_with_missing_fields`` map a field name to the list of
offending event indexes); the client drops those events and resends the others.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final, NamedTuple, NoReturn

from telemetry.collector import _limits as L
from telemetry.collector._batch_json import TooManyEvents, load_batch, lost_a_repeated_key
from telemetry.collector._strict_json import (
    compact_json,
    storable_text,
    storable_value,
)

__all__ = [
    "GENERATED_INSERT_ID_PREFIX",
    "Batch",
    "RequestRejected",
    "ValidEvent",
    "error_body",
    "generated_insert_id",
    "parse_batch",
]

#: Prefix of the ``insert_id`` the collector derives for an event that arrived without one.
GENERATED_INSERT_ID_PREFIX: Final = "collector-sha256:"

#: Event keys never written to storage: an IP address is personal data we do not keep
#: (``_fast_event`` checks for ``"ip"`` by name).
_DROPPED_KEYS: Final = ("ip",)

#: Field name used in ``events_with_invalid_fields`` for an event that is not a JSON object or
#: whose serialised size exceeds ``MAX_EVENT_BYTES``.
WHOLE_EVENT_FIELD: Final = "event"


class ValidEvent(NamedTuple):
    """One accepted event, ready to be stored (a named tuple: made 500 times per batch, it costs
    a third of a frozen dataclass)."""

    insert_id: str
    insert_id_generated: bool
    event_type: str
    device_id: str | None
    user_id: str | None
    time: int | None
    #: The event as received, as compact JSON, minus the keys in ``_DROPPED_KEYS``.
    event_json: str


@dataclass(frozen=True, slots=True)
class Batch:
    """A fully valid request: every event in it may be stored."""

    project: str
    events: tuple[ValidEvent, ...]
    payload_size_bytes: int
    #: ``device_proofs`` of the body: device id (of an event in the batch) to proof hash.
    device_proofs: Mapping[str, str] = field(default_factory=dict)


class RequestRejected(Exception):
    """The request is refused; ``status`` and ``body`` are the HTTP answer."""

    def __init__(self, status: int, body: dict[str, Any]) -> None:
        super().__init__(status, body.get("error"))
        self.status = status
        self.body = body


def error_body(
    code: int,
    error: str,
    *,
    missing_field: str | None = None,
    invalid: dict[str, list[int]] | None = None,
    missing: dict[str, list[int]] | None = None,
) -> dict[str, Any]:
    """Build an error answer in Amplitude's ``InvalidRequestError`` shape."""
    return {
        "code": code,
        "error": error,
        "missing_field": missing_field,
        "events_with_invalid_fields": invalid or {},
        "events_with_missing_fields": missing or {},
    }


def _reject(error: str, *, missing_field: str | None = None) -> NoReturn:
    raise RequestRejected(400, error_body(400, error, missing_field=missing_field))


def generated_insert_id(stored_event: dict[str, Any]) -> str:
    """The deterministic ``insert_id`` of an event that has none.

    It is ``"collector-sha256:"`` + the SHA-256 (hex) of the event's canonical JSON (keys sorted,
    compact separators, UTF-8, without dropped keys such as ``ip``). A retried event therefore maps
    to the same id and is stored once; two events identical in every field are also stored once,
    which is why clients should send their own ``insert_id`` (a UUID).
    """
    canonical = compact_json(stored_event, sort_keys=True).encode("utf-8")
    return GENERATED_INSERT_ID_PREFIX + hashlib.sha256(canonical).hexdigest()


def _valid_id(value: Any, min_length: int) -> str | None:
    if not isinstance(value, str) or len(value) < min_length:
        return None
    if value.strip().lower() in L.PLACEHOLDER_IDS:
        return None
    return value


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _min_id_length(payload: dict[str, Any]) -> int:
    options = payload.get("options")
    if options is None:
        return L.DEFAULT_MIN_ID_LENGTH
    if not isinstance(options, dict):
        _reject(L.ERROR_INVALID_OPTIONS)
    value = options.get("min_id_length")
    if value is None:
        return L.DEFAULT_MIN_ID_LENGTH
    if not _is_int(value) or value < 1:
        _reject(L.ERROR_INVALID_OPTIONS)
    return int(value)


def parse_batch(body: bytes, *, fast: bool = True) -> Batch:
    """Parse and validate a decompressed request body.

    Returns the :class:`Batch` when the request and every event in it are valid; raises
    :class:`RequestRejected` (400 or 413) otherwise. ``fast=False`` decodes every part of the
    body strictly (see ``_batch_json``): the same answers, slower; the reference the fast way is
    tested against. A body nested too deeply for Python to decode, check or re-encode (near
    1,000 levels, wherever that limit is hit) is invalid JSON.
    """
    try:
        return _parse_batch(body, fast)
    except RecursionError:
        _reject(L.ERROR_INVALID_JSON)


def _parse_batch(body: bytes, fast: bool) -> Batch:
    if not body.strip():
        _reject(L.ERROR_MISSING_BODY)
    try:
        payload, events_text = load_batch(body, L.MAX_EVENTS_PER_BATCH, fast=fast)
    except TooManyEvents:  # counted while parsing: the rest of the array is never decoded
        raise RequestRejected(413, {"code": 413, "error": L.ERROR_PAYLOAD_TOO_LARGE}) from None
    except ValueError:  # (a RecursionError: parse_batch answers the same)
        _reject(L.ERROR_INVALID_JSON)
    if not isinstance(payload, dict):
        _reject(L.ERROR_INVALID_JSON)

    if "api_key" not in payload or payload["api_key"] is None:
        _reject(L.ERROR_MISSING_FIELD, missing_field="api_key")
    project = payload["api_key"]
    if not isinstance(project, str) or not project.strip() or len(project) > L.MAX_API_KEY_LENGTH:
        _reject(L.ERROR_INVALID_API_KEY)
    if not storable_text(project):
        _reject(L.ERROR_INVALID_API_KEY)

    events = payload.get("events")
    if events is None or (isinstance(events, list) and not events):
        _reject(L.ERROR_MISSING_FIELD, missing_field="events")
    if not isinstance(events, list):
        _reject(L.ERROR_INVALID_EVENT_JSON)
    if len(events) > L.MAX_EVENTS_PER_BATCH:
        raise RequestRejected(413, {"code": 413, "error": L.ERROR_PAYLOAD_TOO_LARGE})

    min_id_length = _min_id_length(payload)

    if events_text is not None:
        every = _every_event_fast(events, min_id_length, events_text)
        if every is None:  # an event needs the rule-by-rule path, which needs strict decoding
            return _parse_batch(body, fast=False)
        accepted = every
    else:
        accepted = _events_rule_by_rule(events, min_id_length)
    proofs = _device_proofs(payload.get("device_proofs"), {e.device_id for e in accepted})
    return Batch(
        project=project,
        events=tuple(accepted),
        payload_size_bytes=len(body),
        device_proofs=proofs,
    )


def _every_event_fast(
    events: list[Any], min_id_length: int, events_text: str
) -> list[ValidEvent] | None:
    """Every event of an array decoded the fast way, when each passes :func:`_fast_event`
    (``None`` as soon as one does not); refuses the request when the array repeated a key."""
    accepted: list[ValidEvent] = []
    for event in events:
        if type(event) is not dict:
            return None
        valid = _fast_event(event, min_id_length)
        if valid is None:
            return None
        accepted.append(valid)
    if lost_a_repeated_key(events_text, [valid.event_json for valid in accepted]):
        _reject(L.ERROR_INVALID_JSON)  # what the strict decoder answers for a repeated key
    return accepted


def _events_rule_by_rule(events: list[Any], min_id_length: int) -> list[ValidEvent]:
    """The events of an array decoded strictly, each checked rule by rule when it is not the
    common case; refuses the request naming every bad event."""
    invalid: defaultdict[str, list[int]] = defaultdict(list)
    missing: defaultdict[str, list[int]] = defaultdict(list)
    accepted: list[ValidEvent] = []
    for index, event in enumerate(events):
        parsed = _parse_event(index, event, min_id_length, invalid, missing)
        if parsed is not None:
            accepted.append(parsed)

    if invalid or missing:
        error = L.ERROR_INVALID_EVENTS if invalid else L.ERROR_MISSING_FIELD
        raise RequestRejected(
            400, error_body(400, error, invalid=_distinct(invalid), missing=_distinct(missing))
        )
    return accepted


def _device_proofs(value: Any, devices: set[str | None]) -> dict[str, str]:
    """The usable entries of a body's ``device_proofs``: a device id of the batch mapped to 64
    lowercase hex digits. Anything else is ignored (it never costs the batch its events)."""
    if not isinstance(value, dict):
        return {}
    return {
        device: digest
        for device, digest in value.items()
        if device in devices
        and isinstance(digest, str)
        and len(digest) == 64
        and all(c in "0123456789abcdef" for c in digest)
    }


def _distinct(named: defaultdict[str, list[int]]) -> dict[str, list[int]]:
    """Each field's event indexes, in order and once."""
    return {field: sorted(set(indexes)) for field, indexes in named.items()}


def _parse_event(
    index: int,
    event: Any,
    min_id_length: int,
    invalid: defaultdict[str, list[int]],
    missing: defaultdict[str, list[int]],
) -> ValidEvent | None:
    """Validate one strictly decoded event, recording its problems by ``index``; return it if
    it has none.

    Every check runs (so the answer names every bad field), in a fixed order.
    """
    if not isinstance(event, dict):
        invalid[WHOLE_EVENT_FIELD].append(index)
        return None
    fast = _fast_event(event, min_id_length)
    if fast is not None:
        return fast
    device_id = _valid_id(event.get("device_id"), min_id_length)
    user_id = _valid_id(event.get("user_id"), min_id_length)
    content_ok = _content_ok(index, event, invalid)
    checks = (
        content_ok and _size_ok(index, event, invalid),
        _event_type_ok(index, event, invalid, missing),
        _ids_ok(index, event, device_id is not None or user_id is not None, invalid, missing),
        _time_ok(index, event, invalid),
        _insert_id_ok(index, event, invalid),
    )
    if not all(checks):
        return None
    event_type = event["event_type"]
    assert isinstance(event_type, str)
    insert_id = event.get("insert_id")
    stored = {key: value for key, value in event.items() if key not in _DROPPED_KEYS}
    generated = insert_id is None
    return ValidEvent(
        insert_id=generated_insert_id(stored) if generated else str(insert_id),
        insert_id_generated=generated,
        event_type=event_type,
        device_id=device_id,
        user_id=user_id,
        time=event.get("time"),
        event_json=compact_json(stored),
    )


def _fast_event(event: dict[str, Any], min_id_length: int) -> ValidEvent | None:
    """The common case in one pass: the event breaks no rule and has no key to drop, so its one
    compact encoding is both the proof that it is storable and its stored JSON. ``None``: check
    it rule by rule (the slow path names what is wrong, or drops keys).

    The encode proves the content storable: a non-finite number makes it raise, so does an integer
    beyond 64 bits (the parser turned it into ``OutOfRangeInt``); a lone surrogate makes UTF-8
    raise; a NUL is written ``\\u0000``."""
    event_type = event.get("event_type")
    insert_id = event.get("insert_id")
    time = event.get("time")
    if type(event_type) is not str or not event_type.strip():
        return None
    if insert_id is not None and (
        type(insert_id) is not str or not insert_id or len(insert_id) > L.MAX_INSERT_ID_LENGTH
    ):
        return None
    if time is not None and (type(time) is not int or not 0 <= time <= L.MAX_TIME_MS):
        return None
    device_id = _valid_id(event.get("device_id"), min_id_length)
    user_id = _valid_id(event.get("user_id"), min_id_length)
    if device_id is None and user_id is None:
        return None
    if max(map(len, event)) > L.MAX_NAMED_FIELD_LENGTH or "ip" in event:
        return None
    try:
        text = compact_json(event)
        # ASCII text: one byte a character, and no lone surrogate (encoding would find one).
        size = len(text) if text.isascii() else len(text.encode("utf-8"))
    except (ValueError, TypeError, RecursionError):  # UnicodeEncodeError is a ValueError
        return None
    if size > L.MAX_EVENT_BYTES or "\\u0000" in text:
        return None
    return ValidEvent(  # by position: half the cost of keywords, 500 times a batch
        insert_id if insert_id is not None else generated_insert_id(event),
        insert_id is None,
        event_type,
        device_id,
        user_id,
        time,
        text,
    )


def _content_ok(index: int, event: dict[str, Any], invalid: defaultdict[str, list[int]]) -> bool:
    """Every key and value of the event is storable strict JSON (see ``storable_value``); each
    offending top-level key is named, or ``"event"`` when the key itself is bad or too long."""
    ok = True
    for key, value in event.items():
        if not storable_text(key) or len(key) > L.MAX_NAMED_FIELD_LENGTH:
            invalid[WHOLE_EVENT_FIELD].append(index)
            ok = False
        elif not storable_value(value):
            invalid[key].append(index)
            ok = False
    return ok


def _size_ok(index: int, event: dict[str, Any], invalid: defaultdict[str, list[int]]) -> bool:
    """The event serialises to at most ``MAX_EVENT_BYTES`` of UTF-8 JSON."""
    try:
        too_big = len(compact_json(event).encode("utf-8")) > L.MAX_EVENT_BYTES
    except RecursionError:  # nested too deeply to serialise again in this thread
        too_big = True
    except ValueError:  # not strict JSON; ``_content_ok`` names such events first
        too_big = True
    if too_big:
        invalid[WHOLE_EVENT_FIELD].append(index)
    return not too_big


def _event_type_ok(
    index: int,
    event: dict[str, Any],
    invalid: defaultdict[str, list[int]],
    missing: defaultdict[str, list[int]],
) -> bool:
    """``event_type`` is present and a non-blank string."""
    event_type = event.get("event_type")
    if event_type is None:
        missing["event_type"].append(index)
        return False
    if not isinstance(event_type, str) or not event_type.strip():
        invalid["event_type"].append(index)
        return False
    return True


def _ids_ok(
    index: int,
    event: dict[str, Any],
    has_valid_id: bool,
    invalid: defaultdict[str, list[int]],
    missing: defaultdict[str, list[int]],
) -> bool:
    """At least one valid ``device_id`` / ``user_id``; else the ids given are named invalid, or
    ``device_id`` missing when neither is given."""
    if has_valid_id:
        return True
    raw_device, raw_user = event.get("device_id"), event.get("user_id")
    if raw_device is None and raw_user is None:
        missing["device_id"].append(index)
    else:
        for field, raw in (("device_id", raw_device), ("user_id", raw_user)):
            if raw is not None:
                invalid[field].append(index)
    return False


def _time_ok(index: int, event: dict[str, Any], invalid: defaultdict[str, list[int]]) -> bool:
    """``time``, if given, is an integer number of ms in range."""
    time = event.get("time")
    if time is not None and (not _is_int(time) or not 0 <= time <= L.MAX_TIME_MS):
        invalid["time"].append(index)
        return False
    return True


def _insert_id_ok(index: int, event: dict[str, Any], invalid: defaultdict[str, list[int]]) -> bool:
    """``insert_id``, if given, is a non-empty string of at most ``MAX_INSERT_ID_LENGTH``."""
    insert_id = event.get("insert_id")
    if insert_id is not None and (
        not isinstance(insert_id, str) or not insert_id or len(insert_id) > L.MAX_INSERT_ID_LENGTH
    ):
        invalid["insert_id"].append(index)
        return False
    return True
