"""Property test: ``track()`` and ``set_user_properties()`` with arbitrary Python values either
store strict JSON (RFC 8259: no NaN or infinity, valid UTF-8) or raise InvalidEventError and
store nothing; never another exception, never ``internal_errors``."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

import telemetry


class Opaque:
    """An arbitrary object; its repr fails, so error messages must not depend on it."""

    def __repr__(self) -> str:
        raise RuntimeError("no repr")


ANY_CHAR = st.characters(exclude_categories=())  # surrogates and control characters too
PRINTABLE = st.characters(exclude_categories=("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp", "Zs"))
BAD_TEXT = st.text(ANY_CHAR, max_size=8) | st.sampled_from(["\ud800", "a\x00b", "a\tb"])
GOOD_TEXT = st.text(PRINTABLE, min_size=1, max_size=8) | st.sampled_from(["é😀", "a b"])
# Mostly good input (so that storing is exercised too), bad input in every draw's reach.
KEYS = st.one_of(GOOD_TEXT, GOOD_TEXT, st.sampled_from(["a.b", "a", "A", "b"]), BAD_TEXT)
GOOD_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**53 - 1), max_value=2**53 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | GOOD_TEXT
    | st.text(ANY_CHAR.filter(lambda c: not 0xD800 <= ord(c) <= 0xDFFF and c != "\x00"))
)
BAD_SCALARS = (
    st.integers()
    | st.floats()
    | BAD_TEXT
    | st.binary(max_size=3)
    | st.builds(Opaque)
    | st.builds(object)
    | st.builds(set, st.lists(st.integers(), max_size=2))
)
SCALARS = st.one_of(GOOD_SCALARS, GOOD_SCALARS, GOOD_SCALARS, BAD_SCALARS)


def _nest(depth: int) -> Any:
    value: Any = "leaf"
    for level in range(depth):
        value = [value] if level % 2 else {"n": value}
    return value


TREES = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.tuples(inner, inner)
        | st.dictionaries(KEYS, inner, max_size=3)
    ),
    max_leaves=8,
)
VALUES = st.one_of(TREES, TREES, TREES, st.integers(min_value=0, max_value=14).map(_nest))
PROPERTIES = st.dictionaries(KEYS, VALUES, max_size=3)
NAMES = st.one_of(st.just("Ok"), GOOD_TEXT, BAD_TEXT)


def _refuse(constant: str) -> None:
    raise ValueError(f"non-JSON constant {constant}")


def _assert_strict_json(client: telemetry.Client, insert_id: str) -> None:
    (event,) = [e for e in client.queued_events() if e.insert_id == insert_id]
    decoded = json.loads(event.json, parse_constant=_refuse)
    event.json.encode("utf-8", errors="strict")
    json.dumps(decoded, allow_nan=False, ensure_ascii=False).encode("utf-8", errors="strict")


def _check(client: telemetry.Client, call: Any, *args: Any, **kwargs: Any) -> None:
    before = client._store.stats().events
    try:
        insert_id = call(*args, **kwargs)
    except telemetry.InvalidEventError:
        event("refused")
        assert client._store.stats().events == before
    else:
        event("stored" if insert_id is not None else "not recorded")
        if insert_id is not None:
            _assert_strict_json(client, insert_id)
    assert "internal_errors" not in client._store.counters()


SETTINGS = settings(
    max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@SETTINGS
@given(name=NAMES, properties=st.one_of(PROPERTIES, PROPERTIES, PROPERTIES, VALUES))
def test_track_stores_strict_json_or_raises(
    client: telemetry.Client, name: Any, properties: Any
) -> None:
    _check(client, client.track, name, properties)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(values=PROPERTIES, once=PROPERTIES)
def test_user_properties_store_strict_json_or_raise(
    client: telemetry.Client, values: dict[str, Any], once: dict[str, Any]
) -> None:
    _check(client, client.set_user_properties, set=values, set_once=once)
