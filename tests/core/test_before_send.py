"""The ``before_send`` hook: what it returns is what is stored; dropping, raising or returning
an unusable event costs that event only (logged and counted), never an app exception."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import telemetry

Hook = Callable[[dict[str, Any]], "dict[str, Any] | None"]


@pytest.fixture
def make(data_dir: Path) -> Iterator[Callable[[Hook], telemetry.Client]]:
    clients: list[telemetry.Client] = []

    def make(hook: Hook) -> telemetry.Client:
        client = telemetry.create_client(
            "test-project", "test-app", data_dir=data_dir, upload=False, before_send=hook
        )
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


def _stored(client: telemetry.Client, event_type: str = "Ok") -> list[dict[str, Any]]:
    return [json.loads(e.json) for e in client.queued_events() if e.event_type == event_type]


def test_the_hook_sees_and_changes_the_full_event(make: Callable[[Hook], Any]) -> None:
    seen: list[dict[str, Any]] = []

    def hook(event: dict[str, Any]) -> dict[str, Any]:
        seen.append(json.loads(json.dumps(event)))
        if event["event_type"] != "Ok":
            return event
        event["event_properties"].pop("secret", None)
        event["event_properties"]["added"] = [1, "two"]
        return event

    client = make(hook)
    insert_id = client.track("Ok", {"secret": "x", "kept": 1})
    (stored,) = _stored(client)
    assert stored["event_properties"] == {"kept": 1, "added": [1, "two"]}
    assert stored["insert_id"] == insert_id and stored["device_id"] == client.device_id
    assert {"$identify", "Ok"} <= {e["event_type"] for e in seen}  # the client's own too
    assert seen[-1]["event_properties"] == {"secret": "x", "kept": 1}
    assert client._store.counters() == {}


def test_the_hook_may_rename_an_event(make: Callable[[Hook], Any]) -> None:
    client = make(lambda e: {**e, "event_type": "Renamed"} if e["event_type"] == "Ok" else e)
    assert client.track("Ok")
    assert len(_stored(client, "Renamed")) == 1 and _stored(client) == []


def test_returning_none_drops_the_event(make: Callable[[Hook], Any]) -> None:
    client = make(lambda e: None if e["event_type"] == "Ok" else e)
    assert client.track("Ok") is None
    assert _stored(client) == []
    assert client._store.counters() == {"dropped_before_send": 1}


def test_an_exception_in_the_hook_never_reaches_the_app(
    make: Callable[[Hook], Any], caplog: pytest.LogCaptureFixture
) -> None:
    def hook(event: dict[str, Any]) -> dict[str, Any]:
        if event["event_type"] == "Ok":
            raise RuntimeError("hook bug")
        return event

    client = make(hook)
    assert client.track("Ok") is None
    assert _stored(client) == []
    assert client._store.counters() == {"before_send_errors": 1}
    assert "before_send raised" in caplog.text and "hook bug" in caplog.text


def test_a_hook_that_records_is_refused_without_deadlock(make: Callable[[Hook], Any]) -> None:
    holder: list[telemetry.Client] = []

    def hook(event: dict[str, Any]) -> dict[str, Any]:
        if event["event_type"] == "Ok":
            holder[0].track("Nested")
        return event

    holder.append(make(hook))
    assert holder[0].track("Ok") is None
    assert holder[0]._store.counters() == {"before_send_errors": 1}


@pytest.mark.parametrize(
    "change",
    [
        lambda e: ["not", "a", "dict"],
        lambda e: {**e, "event_properties": {"v": float("nan")}},
        lambda e: {**e, "event_properties": {"v": "\ud800"}},
        lambda e: {**e, "event_properties": {"v": b"bytes"}},
        lambda e: {**e, "event_properties": {"v": 2**64}},
        lambda e: {**e, "event_properties": {"v": "x" * 40_000}},
        lambda e: {**e, "insert_id": "forged"},
        lambda e: {**e, "event_type": "$identify"},
        lambda e: {**e, "event_type": "bad\x00name"},
        lambda e: {k: v for k, v in e.items() if k != "event_type"},
    ],
)
def test_an_invalid_result_is_dropped_and_counted(
    make: Callable[[Hook], Any], change: Callable[[dict[str, Any]], Any]
) -> None:
    client = make(lambda e: change(e) if e["event_type"] == "Ok" else e)
    assert client.track("Ok", {"v": 1}) is None
    assert [e.event_type for e in client.queued_events()] == ["$identify"]
    assert client._store.counters() == {"before_send_invalid": 1}


def test_bad_input_still_raises_before_the_hook(make: Callable[[Hook], Any]) -> None:
    calls: list[str] = []
    client = make(lambda e: calls.append(e["event_type"]) or e)
    with pytest.raises(telemetry.InvalidEventError):
        client.track("Ok", {"v": float("inf")})
    assert "Ok" not in calls


def test_before_send_must_be_callable(data_dir: Path) -> None:
    with pytest.raises(telemetry.ConfigError, match="before_send must be a callable"):
        telemetry.create_client("p", "app", data_dir=data_dir, before_send="nope")  # type: ignore[arg-type]
