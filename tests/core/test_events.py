"""Event validation, flattening, path anonymisation: clear errors, nothing stored."""

from __future__ import annotations

import math
import re

import pytest

import telemetry
from telemetry import events
from tests.core.conftest import user_events


def test_stored_event_is_an_amplitude_http_v2_object(client: telemetry.Client) -> None:
    insert_id = client.track("Flash", {"driveCount": 2})
    (event,) = user_events(client)
    assert event["event_type"] == "Flash"
    assert event["insert_id"] == insert_id
    assert event["device_id"] == client.device_id
    assert event["session_id"] == client.session_id
    assert event["event_properties"] == {"driveCount": 2}
    assert event["app_version"] == "1.2.3"
    for key in ("time", "event_id", "platform", "os_name", "os_version", "language", "library"):
        assert key in event, key
    assert isinstance(event["time"], int) and event["time"] > 1_600_000_000_000
    assert "user_id" not in event


def test_event_ids_increase_per_device(client: telemetry.Client) -> None:
    for i in range(5):
        client.track("Tick", {"i": i})
    ids = [e["event_id"] for e in user_events(client)]
    assert ids == sorted(ids) and len(set(ids)) == 5


def test_nested_objects_flatten_to_lowercase_dotted_keys_arrays_kept() -> None:
    props = {"drive": {"isUSB": True, "Size": {"Bytes": 8}}, "drives": [{"isUSB": True}], "Top": 1}
    assert events.normalize_properties(props) == {
        "drive.isusb": True,
        "drive.size.bytes": 8,
        "drives": [{"isUSB": True}],
        "Top": 1,
    }


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("/home/alice/images/raspios.img", "<path>.img"),
        ("C:\\Users\\alice\\Downloads\\x.iso", "<path>.iso"),
        ("file:///home/alice/a.img", "file://<path>.img"),
        ("Error at /opt/App/Resources/app.asar/lib/main.js", "Error at <path>.js"),
        ("no path here", "no path here"),
    ],
)
def test_path_fields_are_anonymised(value: str, expected: str) -> None:
    assert events.normalize_properties({"path": value}) == {"path": expected}


def test_nested_error_and_image_paths_are_anonymised(client: telemetry.Client) -> None:
    client.track(
        "Flash error",
        {
            "error": {"message": "ENOENT: /home/alice/secret/x.img", "code": "ENOENT"},
            "image": {"path": "/home/alice/secret/x.img", "size": 3},
            "imagePath": "/home/alice/secret/x.img",
        },
    )
    (event,) = user_events(client)
    text = str(event)
    assert "alice" not in text and "secret" not in text
    assert event["event_properties"]["error.code"] == "ENOENT"
    assert event["event_properties"]["image.path"] == "<path>.img"


class Unserialisable:
    pass


def _cyclic_dict() -> dict:
    d: dict = {"a": 1}
    d["self"] = d
    return d


def _cyclic_list() -> dict:
    items: list = [1]
    items.append(items)
    return {"items": items}


@pytest.mark.parametrize(
    ("name", "props", "message", "key"),
    [
        ("", None, "empty", None),
        ("   ", None, "empty", None),
        (42, None, "must be a str", None),
        ("x" * 1025, None, "1025 characters", None),
        ("$identify", None, "reserved", None),
        ("Ok", {"v": math.nan}, "'v'", "v"),
        ("Ok", {"v": math.inf}, "'v'", "v"),
        ("Ok", {"outer": {"inner": math.nan}}, "'outer.inner'", "outer.inner"),
        ("Ok", {"blob": b"bytes"}, "'blob' has a bytes value", "blob"),
        ("Ok", {"obj": Unserialisable()}, "'obj'", "obj"),
        ("Ok", {"s": {1, 2}}, "'s' has a set value", "s"),
        ("Ok", {"list": [1, {"deep": math.nan}]}, "'list[1].deep'", "list[1].deep"),
        ("Ok", _cyclic_dict(), "'self'", "self"),
        ("Ok", _cyclic_list(), "'items[1]'", "items[1]"),
        ("Ok", {1: "int key"}, "keys must be str", None),
        ("Ok", {"": "empty key"}, "must not be empty", ""),
        ("Ok", {"big": "x" * 40_000}, "32768 bytes", None),
        ("Ok", ["not", "a", "mapping"], "must be a mapping", None),
    ],
)
def test_bad_input_raises_naming_the_key_and_stores_nothing(
    client: telemetry.Client, name: object, props: object, message: str, key: str | None
) -> None:
    before = client._store.stats().events
    with pytest.raises(telemetry.InvalidEventError, match=re.escape(message)) as info:
        client.track(name, props)  # type: ignore[arg-type]
    assert info.value.key == key
    assert isinstance(info.value, ValueError)
    assert client._store.stats().events == before


def test_allowlist_keeps_only_listed_properties(data_dir) -> None:
    with telemetry.create_client(
        "p-proj", "app", data_dir=data_dir, upload=False, property_allowlist=["appId", "drive"]
    ) as client:
        client.track("E", {"appId": 1, "secret": "x", "drive": {"size": 5}, "drivex": 1})
        (event,) = user_events(client)
        assert event["event_properties"] == {"appId": 1, "drive.size": 5}
        assert client._store.counters()["properties_filtered"] == 2


def test_throttle_keeps_one_event_per_name_and_interval(data_dir) -> None:
    with telemetry.create_client(
        "p-proj", "app", data_dir=data_dir, upload=False, throttle={"Noisy": 60.0}
    ) as client:
        results = [client.track("Noisy") for _ in range(5)]
        client.track("Other")
        client.track("Other")
        assert results[0] is not None and results[1:] == [None] * 4
        names = [e["event_type"] for e in user_events(client)]
        assert names == ["Noisy", "Other", "Other"]
        assert client._store.counters()["dropped_throttled"] == 4
