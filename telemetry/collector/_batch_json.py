"""Decoding a batch body as strict JSON while counting its ``events``: parsing stops as soon as
the array holds more items than allowed, so a body of 100,000 ``{}`` is never materialised.
Integer literals beyond 64 bits decode to :class:`OutOfRangeInt`, which validation refuses.

Two ways to decode the events (:func:`load_batch`):

* **strict**: every object through a duplicate-key check and every integer through a range check
  (Python callbacks, about 5x the time of the C decoder alone);
* **fast**: the events through the C decoder alone, each returned with its exact source text, so
  validation can prove afterwards, per event, what the callbacks would have checked (see
  :func:`has_duplicate_keys`). It is used when the body holds no digit run of 19 or more (so every
  integer fits in 64 bits) and no escaped colon (``\\u003a``, which the proof cannot count).
"""

from __future__ import annotations

import codecs
import json
import json.scanner
import re
from typing import Any, Final, NamedTuple

from telemetry.collector._strict_json import strict_json_loads

__all__ = [
    "LoadedBatch",
    "OutOfRangeInt",
    "TooManyEvents",
    "has_duplicate_keys",
    "load_batch",
    "load_batch_json",
    "strict_event",
]

_WHITESPACE: Final = re.compile(r"[ \t\n\r]*")


class TooManyEvents(ValueError):
    """The ``events`` array holds more items than allowed; ``parsed`` items were decoded."""

    def __init__(self, parsed: int) -> None:
        super().__init__(f"more than {parsed - 1} events")
        self.parsed = parsed


def _reject_constant(name: str) -> Any:
    raise ValueError(f"non-standard JSON constant {name}")


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        raise ValueError("duplicate key in a JSON object")
    return result


class OutOfRangeInt:
    """An integer literal outside the signed 64-bit range: kept as its text, so validation
    refuses it (it is no ``int``) and the encoder cannot write it (``TypeError``)."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text


_MIN_INT: Final = -(2**63)
_MAX_INT: Final = 2**63 - 1


def _parse_int(text: str) -> int | OutOfRangeInt:
    value = int(text)
    if len(text) < 19 or _MIN_INT <= value <= _MAX_INT:
        return value
    return OutOfRangeInt(text)


_DECODER: Final = json.JSONDecoder(
    parse_constant=_reject_constant, object_pairs_hook=_unique_keys, parse_int=_parse_int
)
_SCAN: Final = json.scanner.make_scanner(_DECODER)  # type: ignore[arg-type]
#: The C decoder with no callback but the one refusing ``NaN``/``Infinity`` (never called for
#: standard JSON): duplicate keys collapse, integers have any size.
_FAST_DECODER: Final = json.JSONDecoder(parse_constant=_reject_constant)
_FAST_SCAN: Final = json.scanner.make_scanner(_FAST_DECODER)  # type: ignore[arg-type]
#: Every digit byte made ``0`` (what ``bytes.translate`` takes): a body holding
#: ``_LONG_DIGIT_RUN`` once translated may hold an integer beyond 64 bits (2**63 has 19 digits).
_DIGITS_AS_ZERO: Final = bytes(48 if 48 <= b <= 57 else b for b in range(256))
_LONG_DIGIT_RUN: Final = b"0" * 19


def _fast_way(body: bytes) -> bool:
    """Whether the events of ``body`` may be decoded the fast way (module docstring)."""
    if b"\\u003a" in body or b"\\u003A" in body:
        return False
    return _LONG_DIGIT_RUN not in body.translate(_DIGITS_AS_ZERO)


class LoadedBatch(NamedTuple):
    """A decoded body: ``payload``, and when the events were decoded the fast way, the exact
    source text of each item of ``payload["events"]`` (``None``: decoded strictly)."""

    payload: Any
    event_texts: list[str] | None


def _skip(text: str, index: int) -> int:
    match = _WHITESPACE.match(text, index)
    assert match is not None
    return match.end()


def _value(text: str, index: int, scan: Any = _SCAN) -> tuple[Any, int]:
    try:
        value, end = scan(text, index)
    except StopIteration as exc:
        raise ValueError(f"invalid JSON value at {exc.value}") from None
    return value, end


def _expect(text: str, index: int, char: str) -> int:
    if not text.startswith(char, index):
        raise ValueError(f"expected {char!r} at {index}")
    return index + 1


def _events(text: str, index: int, limit: int, sources: list[str] | None) -> tuple[list[Any], int]:
    """The array starting after its ``[`` at ``index``, item by item, at most ``limit`` items;
    with ``sources``, decoded the fast way, each item's text appended to it."""
    items: list[Any] = []
    scan = _SCAN if sources is None else _FAST_SCAN
    index = _skip(text, index)
    if text.startswith("]", index):
        return items, index + 1
    while True:
        start = _skip(text, index)
        item, index = _value(text, start, scan)
        if sources is not None:
            sources.append(text[start:index])
        items.append(item)
        if len(items) > limit:
            raise TooManyEvents(len(items))
        index = _skip(text, index)
        if text.startswith("]", index):
            return items, index + 1
        index = _expect(text, index, ",")


def _object(
    text: str, index: int, limit: int, sources: list[str] | None
) -> tuple[dict[str, Any], int]:
    """The top-level object starting after its ``{`` at ``index`` (``events`` counted)."""
    pairs: list[tuple[str, Any]] = []
    index = _skip(text, index)
    if text.startswith("}", index):
        return {}, index + 1
    while True:
        if not text.startswith('"', index):
            raise ValueError(f"expected a key at {index}")
        key, index = _value(text, index)
        index = _skip(text, _expect(text, _skip(text, index), ":"))
        if key == "events" and text.startswith("[", index):
            if sources is not None:
                sources.clear()  # a repeated "events" key is refused below
            value, index = _events(text, index + 1, limit, sources)
        else:
            value, index = _value(text, index)
        pairs.append((key, value))
        index = _skip(text, index)
        if text.startswith("}", index):
            return _unique_keys(pairs), index + 1
        index = _skip(text, _expect(text, index, ","))


def load_batch(body: bytes, max_events: int, *, fast: bool = True) -> LoadedBatch:
    """Decode ``body`` like :func:`strict_json_loads` (the events the fast way when ``fast`` and
    the body allows it, see the module docstring), raising :class:`TooManyEvents` as soon as a
    top-level ``events`` array has more than ``max_events`` items."""
    if body.startswith(codecs.BOM_UTF8):
        raise ValueError("byte order mark")
    text = body.decode("utf-8")
    start = _skip(text, 0)
    if not text.startswith("{", start):
        return LoadedBatch(strict_json_loads(body), None)
    sources: list[str] | None = [] if fast and _fast_way(body) else None
    payload, end = _object(text, start + 1, max_events, sources)
    if _skip(text, end) != len(text):
        raise ValueError("extra data after the JSON object")
    return LoadedBatch(payload, sources)


def load_batch_json(body: bytes, max_events: int) -> Any:
    """:func:`load_batch`'s payload, every part of it decoded strictly."""
    if body.startswith(codecs.BOM_UTF8):
        raise ValueError("byte order mark")
    text = body.decode("utf-8")
    start = _skip(text, 0)
    if not text.startswith("{", start):
        return strict_json_loads(body)
    payload, end = _object(text, start + 1, max_events, None)
    if _skip(text, end) != len(text):
        raise ValueError("extra data after the JSON object")
    return payload


def strict_event(source: str) -> Any:
    """One event's source text (from :class:`LoadedBatch`) decoded strictly: ``ValueError`` for
    a repeated key, :class:`OutOfRangeInt` for an integer beyond 64 bits."""
    value, end = _value(source, 0)
    if end != len(source):
        raise ValueError("extra data after an event")
    return value


def has_duplicate_keys(source: str, compact: str) -> bool:
    """Whether an event decoded the fast way lost a repeated key, given its source text and its
    compact re-encoding (separators ``,`` and ``:``, colons in strings written as they are).

    Outside strings, a colon appears in JSON only between a key and its value. The source holds
    one per key/value pair plus the colons inside its strings (none escaped: the fast way is not
    taken for a body holding ``\\u003a``); the re-encoding holds one per key kept plus the colons
    of the strings kept. A repeated key keeps one pair of several, so the source has more colons;
    without one, both have the same pairs and the same strings, so the same count.
    """
    return source.count(":") != compact.count(":")
