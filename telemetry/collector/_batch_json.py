"""Decoding a batch body as strict JSON while counting its ``events``: parsing stops as soon as
the array holds more items than allowed, so a body of 100,000 ``{}`` is never materialised.
Integer literals beyond 64 bits decode to :class:`OutOfRangeInt`, which validation refuses."""

from __future__ import annotations

import codecs
import json
import json.scanner
import re
from typing import Any, Final

from telemetry.collector._strict_json import strict_json_loads

__all__ = ["OutOfRangeInt", "TooManyEvents", "load_batch_json"]

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


def _skip(text: str, index: int) -> int:
    match = _WHITESPACE.match(text, index)
    assert match is not None
    return match.end()


def _value(text: str, index: int) -> tuple[Any, int]:
    try:
        value, end = _SCAN(text, index)
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


def _object(text: str, index: int, limit: int) -> tuple[dict[str, Any], int]:
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
            value, index = _events(text, index + 1, limit)
        else:
            value, index = _value(text, index)
        pairs.append((key, value))
        index = _skip(text, index)
        if text.startswith("}", index):
            return _unique_keys(pairs), index + 1
        index = _skip(text, _expect(text, index, ","))


def load_batch_json(body: bytes, max_events: int) -> Any:
    """Parse ``body`` like :func:`strict_json_loads`, but raise :class:`TooManyEvents` as soon as
    a top-level ``events`` array has more than ``max_events`` items."""
    if body.startswith(codecs.BOM_UTF8):
        raise ValueError("byte order mark")
    text = body.decode("utf-8")
    start = _skip(text, 0)
    if not text.startswith("{", start):
        return strict_json_loads(body)
    payload, end = _object(text, start + 1, max_events)
    if _skip(text, end) != len(text):
        raise ValueError("extra data after the JSON object")
    return payload
