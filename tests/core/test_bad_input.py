"""Issue 13's bad inputs: each one raises InvalidEventError naming the key, and nothing is
stored (no event row, no ``internal_errors``)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

import telemetry
from telemetry.catalogue import EventCatalogue

from .conftest import user_events


def _nested_lists(depth: int) -> list[Any]:
    value: list[Any] = []
    for _ in range(depth):
        value = [value]
    return value


def _nested_dicts(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {"leaf": 1}
    for _ in range(depth):
        value = {"n": value}
    return value


def _counters(client: telemetry.Client) -> dict[str, int]:
    return client._store.counters()


def _assert_refused(
    client: telemetry.Client, name: Any, props: Any, message: str, key: str | None
) -> None:
    before = client._store.stats().events
    with pytest.raises(telemetry.InvalidEventError, match=re.escape(message)) as info:
        client.track(name, props)
    assert info.value.key == key
    assert client._store.stats().events == before
    assert "internal_errors" not in _counters(client)


@pytest.mark.parametrize(
    ("props", "message", "key"),
    [
        ({"deep": _nested_lists(500)}, "nested more than 10 levels", "deep" + "[0]" * 10),
        ({"deep": _nested_dicts(40)}, "nested more than 10 levels", "deep" + ".n" * 10),
        ({"s": "\ud800"}, "lone surrogate (U+D800)", "s"),
        ({"\udc80key": 1}, "lone surrogate (U+DC80)", "\udc80key"),
        ({"a": {"b\x00": 1}}, "control character (U+0000)", "a.b\x00"),
        ({"k\ty": 1}, "control character (U+0009)", "k\ty"),
        ({"list": ["ok", "\udfff"]}, "lone surrogate (U+DFFF)", "list[1]"),
        ({"s": "nul\x00inside"}, "NUL character", "s"),
        ({"a.b": 1, "a": {"b": 2}}, "both stored as 'a.b'", "a.b"),
        ({"A": {"b": 1}, "a": {"b": 2}}, "both stored as 'a.b'", "a.b"),
        ({"x": {"y.z": 1, "y": {"z": 2}}}, "both stored as 'x.y.z'", "x.y.z"),
        ({"f": float("nan")}, "NaN and infinity", "f"),
        ({"f": float("-inf")}, "NaN and infinity", "f"),
        ({"f": float("1e999")}, "NaN and infinity", "f"),
        ({"n": 2**53}, "beyond ±(2^53 − 1)", "n"),
        ({"n": -(2**63)}, "beyond ±(2^53 − 1)", "n"),
        ({"n": [10**400]}, "beyond ±(2^53 − 1)", "n[0]"),
        ({"b": b"x"}, "has a bytes value", "b"),
        ({"s": frozenset({1})}, "has a frozenset value", "s"),
        ({"o": object()}, "has a object value", "o"),
    ],
)
def test_bad_property_is_refused(
    client: telemetry.Client, props: dict[str, Any], message: str, key: str
) -> None:
    _assert_refused(client, "Ok", props, message, key)


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("Fl\x00sh", "control character (U+0000) at index 2"),
        ("Flash\n", "control character (U+000A) at index 5"),
        ("Fl\ud800sh", "lone surrogate (U+D800) at index 2"),
        ("Flash\x85", "control character (U+0085)"),
    ],
)
def test_bad_event_name_is_refused(client: telemetry.Client, name: str, message: str) -> None:
    _assert_refused(client, name, None, message, None)


def test_limits_themselves_are_accepted(client: telemetry.Client) -> None:
    props = {
        "deep": _nested_lists(9),
        "max": 2**53 - 1,
        "min": -(2**53 - 1),
        "text": "naïve ☃ 😀 tab\tand newline\n",
        "nested": _nested_dicts(9),
    }
    assert client.track("Ok", props) is not None
    (event,) = user_events(client)
    assert event["event_properties"]["max"] == 2**53 - 1


CATALOGUE = {
    "events": {
        "Flash": {
            "description": "A flash.",
            "properties": {
                "drives": {
                    "type": "array",
                    "description": "Target drives.",
                    "items": {
                        "size": {"type": "integer", "description": "Bytes."},
                        "bus.type": {"type": "string", "description": "Bus."},
                    },
                },
                "tags": {"type": "array", "description": "Plain strings."},
            },
        }
    },
    "user_properties": {
        "plan": {"type": "string", "description": "Subscription plan."},
        "seats": {"type": ["integer", "null"], "description": "Seats bought."},
    },
}


@pytest.fixture
def catalogued(data_dir: Path) -> Any:
    client = telemetry.create_client(
        "test-project",
        "test-app",
        data_dir=data_dir,
        upload=False,
        catalogue=EventCatalogue.from_dict(CATALOGUE),
    )
    yield client
    client.close()


def _user_identifies(client: telemetry.Client) -> list[dict[str, Any]]:
    return [
        e.as_dict()
        for e in client._store.iter_events()
        if e.event_type == "$identify"
        and "ComponentName" not in e.as_dict()["user_properties"].get("$set", {})
    ]


def test_undeclared_user_property_is_refused(catalogued: telemetry.Client) -> None:
    with pytest.raises(telemetry.InvalidEventError, match="user property 'email'") as info:
        catalogued.set_user_properties(set={"email": "alice@example.com"})
    assert info.value.key == "email"
    with pytest.raises(telemetry.InvalidEventError, match="user property 'email'"):
        catalogued.identify({"$setOnce": {"plan": "pro", "email": "alice@example.com"}})
    with pytest.raises(telemetry.InvalidEventError, match="must be string"):
        catalogued.set_user_properties(set={"plan": 3})
    assert _user_identifies(catalogued) == []
    assert catalogued.set_user_properties(set={"plan": "pro"}, set_once={"seats": None})
    assert len(_user_identifies(catalogued)) == 1


def test_user_property_values_are_checked_without_catalogue(client: telemetry.Client) -> None:
    before = client._store.stats().events
    for bad, key in (
        ({"plan": "\ud800"}, "plan"),
        ({"n": float("nan")}, "n"),
        ({"k\x00": 1}, "k\x00"),
        ({"deep": _nested_lists(50)}, "deep" + "[0]" * 10),
    ):
        with pytest.raises(telemetry.InvalidEventError) as info:
            client.set_user_properties(set=bad)
        assert info.value.key == key
    assert client._store.stats().events == before


def test_undeclared_keys_inside_array_items_are_refused(catalogued: telemetry.Client) -> None:
    drive = {"size": 1, "bus": {"type": "USB"}}
    assert catalogued.track("Flash", {"drives": [drive], "tags": ["a", 1]})
    for drives, message, key in (
        ([{**drive, "serial": "X1"}], "'drives[0].serial'", "drives[0].serial"),
        ([drive, {"path": "/dev/sdb"}], "'drives[1].path'", "drives[1].path"),
        ([{"size": "big"}], "must be integer", "drives[0].size"),
        (["sdb"], "must be an object", "drives[0]"),
    ):
        with pytest.raises(telemetry.InvalidEventError, match=re.escape(message)) as info:
            catalogued.track("Flash", {"drives": drives})
        assert info.value.key == key
    with pytest.raises(telemetry.InvalidEventError, match="declare the keys") as info:
        catalogued.track("Flash", {"tags": [{"serial": "X1"}]})
    assert info.value.key == "tags[0]"
    assert len(user_events(catalogued)) == 1


@pytest.mark.parametrize(
    ("user_id", "message"),
    [("user\x00id", "control character (U+0000)"), ("us\ud800er", "lone surrogate (U+D800)")],
)
def test_set_user_id_refuses_control_characters_and_surrogates(
    client: telemetry.Client, user_id: str, message: str
) -> None:
    with pytest.raises(telemetry.ConfigError, match=re.escape(message)):
        client.set_user_id(user_id)
    assert client.user_id is None


def test_items_and_user_properties_round_trip_and_print() -> None:
    cat = EventCatalogue.from_dict(CATALOGUE)
    assert EventCatalogue.from_dict(cat.to_dict()) == cat
    assert cat.to_dict()["user_properties"]["plan"]["type"] == "string"
    text = cat.to_text()
    assert "drives[].bus.type" in text and "User properties" in text and "seats" in text


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (
            {"events": {"F": {"description": "F.", "properties": {
                "n": {"type": "integer", "description": "N.", "items": {}}}}}},
            "property 'n' of event 'F': items are declared for arrays only",
        ),
        (
            {"events": {"F": {"description": "F.", "properties": {
                "d": {"type": "array", "description": "D.", "items": {"x": {"type": "int"}}}}}}},
            "property 'd[].x' of event 'F' has no description",
        ),
        (
            {"events": {}, "user_properties": {"plan": {"type": "str", "description": "P."}}},
            "property 'plan' of the user properties: unknown type 'str'",
        ),
    ],
)  # fmt: skip
def test_bad_items_or_user_properties_are_refused(data: dict[str, Any], message: str) -> None:
    with pytest.raises(telemetry.ConfigError) as info:
        EventCatalogue.from_dict(data)
    assert message in str(info.value)
