"""Strict JSON in and out: decoding a body (UTF-8 only, RFC 8259), telling which parsed values
the collector can store and forward, and writing them back as compact strict JSON."""

from __future__ import annotations

import codecs
import json
import json.encoder
import math
from typing import Any, Final

__all__ = [
    "compact_json",
    "reject_constant",
    "storable_text",
    "storable_value",
    "strict_json_loads",
    "unique_keys",
]

_MIN_INT: Final = -(2**63)
_MAX_INT: Final = 2**63 - 1


def reject_constant(name: str) -> Any:
    """``parse_constant`` hook: ``NaN``, ``Infinity`` and ``-Infinity`` are not JSON."""
    raise ValueError(f"non-standard JSON constant {name}")


def unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """``object_pairs_hook``: an object, unless a key is repeated in it."""
    result = dict(pairs)
    if len(result) != len(pairs):
        raise ValueError("duplicate key in a JSON object")
    return result


def strict_json_loads(body: bytes) -> Any:
    """Parse ``body`` as strict JSON: UTF-8 without a byte order mark (so no UTF-16 or UTF-32),
    no ``NaN``/``Infinity`` literals, no key repeated in an object.

    Raises ``ValueError`` (``RecursionError`` when nested too deeply). A number too large for a
    float (``1e999``) still parses, as infinity: :func:`storable_value` is what refuses it.
    """
    if body.startswith(codecs.BOM_UTF8):
        raise ValueError("byte order mark")
    text = body.decode("utf-8")  # a UnicodeDecodeError is a ValueError
    return json.loads(text, parse_constant=reject_constant, object_pairs_hook=unique_keys)


def storable_text(value: str) -> bool:
    """Whether ``value`` has no NUL and no lone surrogate (``"\\ud800"``): PostgreSQL text refuses
    the first, UTF-8 cannot encode the second."""
    if "\x00" in value:
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def storable_value(value: Any) -> bool:
    """Whether a parsed JSON value holds only storable text (keys included), finite numbers and
    integers of the signed 64-bit range (what the databases and the forward target accept)."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if not storable_text(item):
                return False
        elif isinstance(item, bool) or item is None:
            continue
        elif isinstance(item, int):
            if not _MIN_INT <= item <= _MAX_INT:
                return False
        elif isinstance(item, float):
            if not math.isfinite(item):
                return False
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
        else:
            return False
    return True


def _unencodable(value: Any) -> Any:
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def _c_encoder() -> Any:
    """CPython's C encoder set up once for :func:`compact_json` (``json.dumps`` builds one per
    call, which costs more than encoding a small event), or ``None`` where there is none or it
    does not take the arguments this was written for."""
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:
        return None
    try:
        encoder = make(
            None, _unencodable, json.encoder.encode_basestring, None, ":", ",", False, False, False
        )
        sample = {"a": [1, 2.5, "é\n", None, True], "b": {}}
        if "".join(encoder(sample, 0)) != _dumps(sample):
            return None
    except (TypeError, ValueError):
        return None
    return encoder


def _dumps(value: Any, *, sort_keys: bool = False) -> str:
    return json.dumps(
        value, ensure_ascii=False, allow_nan=False, separators=(",", ":"), sort_keys=sort_keys
    )


_C_ENCODER: Final = _c_encoder()


def compact_json(value: Any, *, sort_keys: bool = False) -> str:
    """``value`` as compact RFC 8259 JSON, non-ASCII text as is (``ValueError`` for a non-finite
    float, ``TypeError`` for a value JSON has no form for)."""
    if sort_keys or _C_ENCODER is None:
        return _dumps(value, sort_keys=sort_keys)
    return "".join(_C_ENCODER(value, 0))
