"""The event model: validating names and properties, and turning them into stored JSON.

Every stored event is an Amplitude HTTP V2 event object, so it can go to our collector or to
Amplitude unchanged. This module owns the rules a property must follow before it is stored:

- strict JSON values only (RFC 8259): str, int, finite float, bool, None, lists and
  str-keyed dicts, no cycles, at most :data:`MAX_DEPTH` levels of nested objects and arrays;
- text that is valid Unicode (no lone surrogates) and free of NUL characters; event names
  and property keys printable (no control, format or separator characters but the space);
- integers within ±(2^53 − 1), the range a JSON consumer that reads numbers as doubles
  (JavaScript, Amplitude's charts) keeps exact;
- nested objects flattened to dotted, lower-cased keys as Etcher did (``drive.isusb``), while
  lists are kept as they are; two keys that flatten to the same key are refused;
- every str value anonymised (paths, the user's name, home and host name replaced; see
  :mod:`telemetry._anonymise`);
- an event name of at most 1,024 characters and at most 32 KiB per serialised event.

A violation raises :class:`~telemetry.errors.InvalidEventError` naming the offending key.
"""

from __future__ import annotations

import fnmatch
import json
import math
import os
from collections.abc import Iterable, Mapping
from typing import Any, Final

from telemetry import _anonymise
from telemetry.errors import InvalidEventError

MAX_EVENT_TYPE_LENGTH: Final = 1024
MAX_EVENT_BYTES: Final = 32 * 1024
IDENTIFY_EVENT: Final = "$identify"
#: Objects and arrays may nest this deep inside one property value (``{"a": {"b": 1}}`` is 1).
MAX_DEPTH: Final = 10
#: The largest integer magnitude stored: 2^53 − 1, exact in every JSON consumer's double.
MAX_SAFE_INTEGER: Final = 2**53 - 1

ANONYMIZE_FAILED: Final = _anonymise.ANONYMIZE_FAILED

JSONValue = str | int | float | bool | None | list[Any] | dict[str, Any]
Properties = dict[str, Any]


def validate_event_type(event_type: object) -> str:
    """Return ``event_type`` if it is a usable event name, else raise InvalidEventError."""
    if not isinstance(event_type, str):
        raise InvalidEventError(
            f"event_type must be a str, not {type(event_type).__name__}: {event_type!r}"
        )
    if not event_type.strip():
        raise InvalidEventError("event_type must not be empty or blank")
    if not event_type.isprintable():
        raise InvalidEventError(
            f"event_type {event_type!r} contains {describe_unprintable(event_type)}; "
            "event names must be printable text"
        )
    if len(event_type) > MAX_EVENT_TYPE_LENGTH:
        raise InvalidEventError(
            f"event_type is {len(event_type)} characters long; "
            f"the limit is {MAX_EVENT_TYPE_LENGTH}: {event_type[:40]!r}..."
        )
    if event_type.startswith(("$", "[Amplitude]")):
        raise InvalidEventError(
            f"event_type {event_type!r} is reserved (names starting with '$' or '[Amplitude]')"
        )
    return event_type


def normalize_properties(
    properties: Mapping[str, Any] | None, *, anonymize: bool = True
) -> Properties:
    """Validate ``properties`` and return a new flat dict ready to store.

    Nested mappings become dotted, lower-cased keys (``{"drive": {"isUSB": True}}`` becomes
    ``{"drive.isusb": True}``); lists are kept as they are, their contents validated.

    Raises:
        InvalidEventError: a key is not a non-empty str, a value is not JSON (NaN, infinity,
            bytes, objects...), or a container refers to itself; the message names the key.
    """
    if properties is None:
        return {}
    if not isinstance(properties, Mapping):
        raise InvalidEventError(
            f"properties must be a mapping (dict) of str to JSON values, "
            f"not {type(properties).__name__}"
        )
    out: Properties = {}
    for key, value in properties.items():
        if type(key) is not str or not key or not key.isprintable():
            _check_key(key, "")
        if key in out:
            raise _collision(key)
        kind = type(value)
        if kind is str:  # exact types first: the common case, several times faster
            out[key] = value if value.isascii() and "\x00" not in value else _check_text(value, key)
        elif (
            value is None
            or kind is bool
            or (kind is int and -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER)
        ):
            out[key] = value
        elif kind is dict or (kind is not str and isinstance(value, Mapping)):
            _flatten_into(out, key.lower(), value, key, {id(properties)}, 1)
        else:
            out[key] = _copy_json(value, key, {id(properties)}, 0)
    if anonymize:
        _anonymise.current().values(out)
    return out


def filter_properties(properties: Properties, allowlist: Iterable[str]) -> tuple[Properties, int]:
    """Keep only keys matched by ``allowlist`` patterns; return the kept dict and dropped count.

    A pattern matches a flattened key exactly, as a glob (``drive.*``), or as a prefix of a
    dotted key (``drive`` keeps ``drive.size``).
    """
    patterns = tuple(allowlist)
    kept = {k: v for k, v in properties.items() if _allowed(k, patterns)}
    return kept, len(properties) - len(kept)


def copy_json_mapping(
    values: Mapping[str, Any], path: str, *, levels_above: int = 0, anonymize: bool = False
) -> dict[str, Any]:
    """A validated deep copy of a str-keyed mapping of JSON values (not flattened).

    ``values`` is checked like a properties mapping; ``levels_above`` adds that many levels
    to the depth limit (2 for a whole event, whose properties sit inside it). With
    ``anonymize``, every str value in the copy is anonymised like event properties.
    """
    if not isinstance(values, Mapping):
        raise InvalidEventError(
            f"{path!r} must be a mapping, not {type(values).__name__}", key=path
        )
    copied = _copy_json(values, path, set(), -1 - levels_above)
    assert isinstance(copied, dict)
    if anonymize:
        _anonymise.current().values(copied)
    return copied


def describe_unprintable(text: str) -> str:
    """Where and what the first non-printable character of ``text`` is, for a message."""
    for index, char in enumerate(text):
        if not char.isprintable():
            code = ord(char)
            if 0xD800 <= code <= 0xDFFF:
                kind = "a lone surrogate"
            elif code < 0x20 or 0x7F <= code < 0xA0:
                kind = "a control character"
            else:
                kind = "a non-printable character"
            return f"{kind} (U+{code:04X}) at index {index}"
    return "no unprintable character"


#: Compact JSON, UTF-8 kept, NaN refused (a reused encoder is several µs faster per call).
encode_json: Final = json.JSONEncoder(
    ensure_ascii=False, separators=(",", ":"), allow_nan=False
).encode


def utf8_size(text: str) -> int:
    """Bytes of ``text`` in UTF-8 (no encoding needed for ASCII, the common case)."""
    return len(text) if text.isascii() else len(text.encode("utf-8"))


def check_size(event_type: str, text: str) -> int:
    """The UTF-8 size of a serialised event; raise InvalidEventError above 32 KiB."""
    size = utf8_size(text)
    if size > MAX_EVENT_BYTES:
        raise InvalidEventError(
            f"event {event_type!r} is {size} bytes serialised; the limit is {MAX_EVENT_BYTES} bytes"
        )
    return size


def serialize_event(event: Mapping[str, Any]) -> str:
    """Serialise an event to compact JSON, enforcing the per-event size limit."""
    text = encode_json(event)
    check_size(str(event.get("event_type")), text)
    return text


def new_insert_id() -> str:
    """A random UUID4 string, formatted from ``os.urandom`` bytes drawn 256 ids at a time
    (one system call per 256 events instead of one per event; a few times faster than
    ``uuid.uuid4()``)."""
    try:
        h = _random_pool.pop()
    except IndexError:
        hexed = os.urandom(16 * _POOL).hex()
        _random_pool.extend(hexed[i : i + 32] for i in range(0, len(hexed), 32))
        h = _random_pool.pop()  # list.pop() is atomic: threads never share an id
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{_VARIANT[int(h[16], 16)]}{h[17:20]}-{h[20:]}"


_VARIANT: Final = "89ab89ab89ab89ab"
_POOL: Final = 256
_random_pool: list[str] = []
if hasattr(os, "register_at_fork"):  # a forked child must not reuse the parent's ids
    os.register_at_fork(after_in_child=_random_pool.clear)


def anonymize_path(text: str) -> str:
    """``text`` anonymised as every str property value is (see :mod:`telemetry._anonymise`)."""
    return _anonymise.current().text(text)


def _allowed(key: str, patterns: tuple[str, ...]) -> bool:
    return any(key == p or key.startswith(p + ".") or fnmatch.fnmatchcase(key, p) for p in patterns)


def _check_key(key: object, parent: str) -> None:
    if not isinstance(key, str):
        where = f" inside {parent!r}" if parent else ""
        raise InvalidEventError(
            f"property keys must be str; got {type(key).__name__} {_safe_repr(key)}{where}",
            key=parent or None,
        )
    if not key:
        raise InvalidEventError(
            f"property keys must not be empty{f' (inside {parent!r})' if parent else ''}",
            key=parent or key,
        )
    if not key.isprintable():
        path = f"{parent}.{key}" if parent else key
        raise InvalidEventError(
            f"property key {path!r} contains {describe_unprintable(key)}; "
            "keys must be printable text",
            key=path,
        )


def _check_text(value: str, path: str) -> str:
    if "\x00" in value:
        raise InvalidEventError(
            f"property {path!r} contains a NUL character (U+0000), which PostgreSQL and many "
            "JSON consumers refuse",
            key=path,
        )
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise InvalidEventError(
                f"property {path!r} contains a lone surrogate "
                f"(U+{ord(value[exc.start]):04X}) at index {exc.start}; only valid Unicode "
                "text can be stored",
                key=path,
            ) from None
    return value


def _check_number(value: int | float, path: str) -> None:
    if isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidEventError(
                f"property {path!r} is {value!r}; NaN and infinity are not JSON values", key=path
            )
    elif not -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER:
        raise InvalidEventError(
            f"property {path!r} is an integer beyond ±(2^53 − 1), which JSON consumers that "
            "read numbers as doubles cannot keep exact",
            key=path,
        )


def _collision(flat_key: str) -> InvalidEventError:
    return InvalidEventError(
        f"two properties are both stored as {flat_key!r} (nested objects are flattened to "
        "dotted, lower-cased keys); rename one of them",
        key=flat_key,
    )


def _enter(value: object, path: str, seen: set[int], depth: int) -> set[int]:
    """The ``seen`` set inside container ``value``; raise for a cycle or too deep a nesting."""
    if id(value) in seen:
        raise InvalidEventError(f"property {path!r} contains a reference to itself", key=path)
    if depth > MAX_DEPTH:
        raise InvalidEventError(
            f"property {path!r} is nested more than {MAX_DEPTH} levels deep "
            "(objects and arrays inside one property)",
            key=path,
        )
    return seen | {id(value)}


def _flatten_into(
    out: Properties,
    prefix: str,
    mapping: Mapping[Any, Any],
    path: str,
    seen: set[int],
    depth: int,
) -> None:
    seen = _enter(mapping, path, seen, depth)
    if not mapping:
        if prefix in out:
            raise _collision(prefix)
        out[prefix] = {}
        return
    for key, value in mapping.items():
        if type(key) is not str or not key or not key.isprintable():
            _check_key(key, path)
        child_path = f"{path}.{key}"
        flat_key = f"{prefix}.{key.lower()}"
        if type(value) is dict or (type(value) is not str and isinstance(value, Mapping)):
            _flatten_into(out, flat_key, value, child_path, seen, depth + 1)
        elif flat_key in out:
            raise _collision(flat_key)
        else:
            out[flat_key] = _copy_json(value, child_path, seen, depth)


def _copy_json(value: Any, path: str, seen: set[int], depth: int) -> JSONValue:
    """A checked copy of ``value``, which sits inside ``depth`` containers of its property."""
    kind = type(value)
    if kind is str:  # exact types first: the common case, several times faster
        text: str = value
        return text if text.isascii() and "\x00" not in text else _check_text(text, path)
    if (
        value is None
        or kind is bool
        or (kind is int and -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER)
    ):
        scalar: int | None = value
        return scalar
    if isinstance(value, str):
        return _check_text(value, path)
    if isinstance(value, (int, float)):
        _check_number(value, path)
        return value
    if isinstance(value, (list, tuple)):
        inner = _enter(value, path, seen, depth + 1)
        return [_copy_json(item, f"{path}[{i}]", inner, depth + 1) for i, item in enumerate(value)]
    if isinstance(value, Mapping):
        inner = _enter(value, path, seen, depth + 1)
        copied: dict[str, Any] = {}
        for key, item in value.items():
            _check_key(key, path)
            copied[key] = _copy_json(item, f"{path}.{key}" if path else key, inner, depth + 1)
        return copied
    raise InvalidEventError(
        f"property {path!r} has a {type(value).__name__} value ({_safe_repr(value)}); "
        "only str, int, float, bool, None, lists and dicts are JSON values",
        key=path,
    )


def _safe_repr(value: object) -> str:
    try:
        return f"{value!r:.60}"
    except Exception:  # noqa: BLE001 - a message must not fail on a broken __repr__
        return f"<{type(value).__name__}>"
