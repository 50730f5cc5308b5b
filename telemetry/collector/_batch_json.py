"""Decoding a batch body as strict JSON while counting its ``events``: parsing stops as soon as
the array holds more items than allowed, so a body of 100,000 ``{}`` is never materialised.
Integer literals beyond 64 bits decode to :class:`OutOfRangeInt`, which validation refuses.

Two ways to decode the events (:func:`load_batch`):

* **strict**: item by item, every object through a duplicate-key check and every integer through
  a range check (Python callbacks, about 3x the time of the C decoder alone);
* **fast**: the whole ``events`` array in one call of the C decoder, returned with its exact
  source text, so validation can prove afterwards what the callbacks would have checked (see
  :func:`lost_a_repeated_key`). It is used when the body holds no digit run of 19 or more (so
  every integer fits in 64 bits), no escaped colon (``\\u003a``, which the proof cannot count),
  and fewer than :data:`MAX_WHOLE_ARRAY_COMMAS` commas after the array's start (so it cannot hold
  more items than that: at most that many are decoded before the count is checked).
"""

from __future__ import annotations

import codecs
import json
import json.scanner
import re
from typing import Any, Final, NamedTuple

from telemetry.collector._strict_json import reject_constant, strict_json_loads, unique_keys

__all__ = [
    "MAX_WHOLE_ARRAY_COMMAS",
    "LoadedBatch",
    "OutOfRangeInt",
    "TooManyEvents",
    "load_batch",
    "load_batch_json",
    "lost_a_repeated_key",
]

_WHITESPACE: Final = re.compile(r"[ \t\n\r]*")


class TooManyEvents(ValueError):
    """The ``events`` array holds more items than allowed; ``parsed`` items were decoded."""

    def __init__(self, parsed: int) -> None:
        super().__init__(f"more than {parsed - 1} events")
        self.parsed = parsed


class OutOfRangeInt:
    """An integer literal outside the signed 64-bit range: kept as its text, so validation
    refuses it (it is no ``int``) and the encoder cannot write it (``TypeError``)."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text


_MIN_INT: Final = -(2**63)
_MAX_INT: Final = 2**63 - 1


#: The longest text of a signed 64-bit integer (``-9223372036854775808``; JSON has no leading
#: zeros, so any longer integer literal is out of range).
_MAX_INT_TEXT: Final = 20


def _parse_int(text: str) -> int | OutOfRangeInt:
    if len(text) > _MAX_INT_TEXT:  # never converted: Python refuses over 4,300 digits
        return OutOfRangeInt(text)
    value = int(text)
    if len(text) < 19 or _MIN_INT <= value <= _MAX_INT:
        return value
    return OutOfRangeInt(text)


_DECODER: Final = json.JSONDecoder(
    parse_constant=reject_constant, object_pairs_hook=unique_keys, parse_int=_parse_int
)
_SCAN: Final = json.scanner.make_scanner(_DECODER)  # type: ignore[arg-type]
#: The C decoder with no callback but the one refusing ``NaN``/``Infinity`` (never called for
#: standard JSON): duplicate keys collapse, integers have any size.
_FAST_DECODER: Final = json.JSONDecoder(parse_constant=reject_constant)
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


#: The most items the fast way may decode before counting them.
MAX_WHOLE_ARRAY_COMMAS: Final = 100_000


class LoadedBatch(NamedTuple):
    """A decoded body: ``payload``, and when its ``events`` were decoded the fast way, the
    array's exact source text (``None``: decoded strictly)."""

    payload: Any
    events_text: str | None


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


def _events(text: str, index: int, limit: int) -> tuple[list[Any], int]:
    """The array starting after its ``[`` at ``index``, item by item, at most ``limit`` items."""
    items: list[Any] = []
    index = _skip(text, index)
    if text.startswith("]", index):
        return items, index + 1
    while True:
        item, index = _value(text, _skip(text, index))
        items.append(item)
        if len(items) > limit:
            raise TooManyEvents(len(items))
        index = _skip(text, index)
        if text.startswith("]", index):
            return items, index + 1
        index = _expect(text, index, ",")


def _whole_array(text: str, index: int, limit: int) -> tuple[list[Any], int]:
    """The array starting at its ``[`` at ``index``, in one call of the C decoder."""
    items, end = _value(text, index, _FAST_SCAN)
    if len(items) > limit:
        raise TooManyEvents(len(items))
    return items, end


def _object(
    text: str, index: int, limit: int, fast: list[str] | None
) -> tuple[dict[str, Any], int]:
    """The top-level object starting after its ``{`` at ``index`` (``events`` counted). With
    ``fast`` (a list), its ``events`` array the fast way when allowed, its text appended."""
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
            if fast is not None and text.count(",", index) < MAX_WHOLE_ARRAY_COMMAS:
                start = index
                value, index = _whole_array(text, index, limit)
                fast.append(text[start:index])  # a repeated "events" key is refused below
            else:
                value, index = _events(text, index + 1, limit)
        else:
            value, index = _value(text, index)
        pairs.append((key, value))
        index = _skip(text, index)
        if text.startswith("}", index):
            return unique_keys(pairs), index + 1
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
    arrays: list[str] | None = [] if fast and _fast_way(body) else None
    payload, end = _object(text, start + 1, max_events, arrays)
    if _skip(text, end) != len(text):
        raise ValueError("extra data after the JSON object")
    return LoadedBatch(payload, arrays[0] if arrays else None)


def load_batch_json(body: bytes, max_events: int) -> Any:
    """:func:`load_batch`'s payload, every part of it decoded strictly."""
    return load_batch(body, max_events, fast=False).payload


def lost_a_repeated_key(events_text: str, compact_events: list[str]) -> bool:
    """Whether the C decoder dropped a repeated key from the events of ``events_text`` (an
    ``events`` array decoded the fast way), given each event's compact re-encoding (separators
    ``,`` and ``:``, colons in strings written as they are).

    Outside strings, a colon appears in JSON only between a key and its value. The source holds
    one per key/value pair plus the colons inside its strings (none escaped: the fast way is not
    taken for a body holding ``\\u003a``); the re-encodings hold one per key kept plus the colons
    of the strings kept. A repeated key keeps one pair of several, so the source has more colons;
    without one, both have the same pairs and the same strings, so the same count.
    """
    return events_text.count(":") != sum(text.count(":") for text in compact_events)
