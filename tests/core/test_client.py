"""Client identity, sessions, identify, link_devices, NoopClient and Tracker."""

from __future__ import annotations

import inspect
import time
from pathlib import Path

import pytest

import telemetry
from telemetry._identity import Identity
from telemetry._store import EventStore
from tests.core.conftest import user_events


def identifies(client: telemetry.Client) -> list[dict]:
    return [e.as_dict() for e in client._store.iter_events() if e.event_type == "$identify"]


def test_device_id_is_random_uuid_persisted_across_restarts(data_dir: Path) -> None:
    with telemetry.create_client("proj1", "app", data_dir=data_dir, upload=False) as first:
        device = first.device_id
    assert len(device) == 36 and device.count("-") == 4
    with telemetry.create_client("proj1", "app", data_dir=data_dir, upload=False) as second:
        assert second.device_id == device
    with telemetry.create_client(
        "proj1", "app", data_dir=data_dir / "other", upload=False
    ) as third:
        assert third.device_id != device


def test_two_processes_creating_the_device_id_at_once_agree_on_one(data_dir: Path) -> None:
    # Two apps sharing a data dir (two stores on one file, as two processes have) both find no
    # device id, then both create one: the second must take the first's, not overwrite it.
    with EventStore(data_dir) as one, EventStore(data_dir) as two:
        first, second = Identity(one, create=False), Identity(two, create=False)
        assert first.device_id == second.device_id == ""
        made = first.ensure_device_id()
        assert second.ensure_device_id() == made
        assert two.get_state("device_id") == made
        two.set_state("device_id", 42)  # garbage where the id belongs is replaced, not used
        third = Identity(two, create=False)
        assert third.ensure_device_id() not in ("", made)
        assert two.get_state("device_id") == third.device_id


def test_explicit_device_id_wins_and_placeholders_are_refused(data_dir: Path) -> None:
    with telemetry.create_client(
        "proj1", "app", device_id="passed-device", data_dir=data_dir, upload=False
    ) as client:
        assert client.device_id == "passed-device"
    for bad in ("null", "undefined", "00000000-0000-0000-0000-000000000000", "-1"):
        with pytest.raises(telemetry.ConfigError, match="placeholder"):
            telemetry.create_client("proj1", "app", device_id=bad, data_dir=data_dir, upload=False)


def test_bad_project_or_component_name_is_a_config_error(data_dir: Path) -> None:
    with pytest.raises(telemetry.ConfigError, match="project_name"):
        telemetry.create_client("", "app", data_dir=data_dir, upload=False)
    with pytest.raises(telemetry.ConfigError, match="component_name"):
        telemetry.create_client("proj", "../etc", data_dir=data_dir, upload=False)


def test_component_identify_sent_once_per_device(data_dir: Path) -> None:
    with telemetry.create_client("proj1", "etcher", data_dir=data_dir, upload=False) as client:
        (first,) = identifies(client)
        assert first["user_properties"] == {
            "$set": {"ComponentName": "etcher", "AnalyticsClientVersion": telemetry.__version__}
        }
    with telemetry.create_client("proj1", "etcher", data_dir=data_dir, upload=False) as client:
        assert len(identifies(client)) == 1  # not again for the same device
        client.regenerate_device_id()
    with telemetry.create_client("proj1", "etcher", data_dir=data_dir, upload=False) as client:
        assert len(identifies(client)) == 2  # a new device is identified


def test_user_id_persisted_and_kept_by_regenerate(client: telemetry.Client, data_dir: Path) -> None:
    client.set_user_id("user-12345")
    old = client.device_id
    new = client.regenerate_device_id()
    assert new != old and client.device_id == new
    assert client.user_id == "user-12345"
    client.track("Login", {"loginType": "web-auth"})
    (event,) = user_events(client)
    assert event["user_id"] == "user-12345" and event["device_id"] == new
    client.close()
    with telemetry.create_client("test-project", "test-app", data_dir=data_dir, upload=False) as c2:
        assert c2.user_id == "user-12345" and c2.device_id == new


def test_session_rolls_over_after_idle_timeout(data_dir: Path) -> None:
    # 1 s: A and B stay in one session even if a loaded machine stalls the test between them.
    with telemetry.create_client(
        "proj1", "app", data_dir=data_dir, upload=False, session_timeout=1.0
    ) as client:
        client.track("A")
        client.track("B")
        deadline = time.monotonic() + 1.2
        while time.monotonic() < deadline:  # idle longer than the timeout
            time.sleep(0.05)
        client.track("C")
        a, b, c = (e["session_id"] for e in user_events(client))
        assert a == b and c > b
        assert c == user_events(client)[2]["time"]  # a session id is its start time


def test_set_user_properties_is_one_identify(client: telemetry.Client) -> None:
    client.set_user_properties(set={"plan": "pro"}, set_once={"firstSeen": "2026-11-23"})
    last = identifies(client)[-1]
    assert last["user_properties"] == {
        "$set": {"plan": "pro"},
        "$setOnce": {"firstSeen": "2026-11-23"},
    }
    with pytest.raises(telemetry.InvalidEventError):
        client.identify({"set": {"a": 1}})


def test_link_devices_identifies_each_and_ends_on_first_usable(client: telemetry.Client) -> None:
    current = client.device_id
    client.link_devices("user-12345", ["dev-d1-xx", "dev-d2-xx"])
    devices = [e["device_id"] for e in identifies(client)[1:]]
    assert devices == [current, "dev-d1-xx", "dev-d2-xx"]  # n + 1 identifies
    assert client.device_id == current  # the current id was usable, so it is kept
    assert client.user_id == "user-12345"


def test_link_devices_never_leaves_device_equal_to_user(client: telemetry.Client) -> None:
    client.set_device_id("user-12345")
    client.link_devices("user-12345", ["user-12345"])
    assert client.device_id != "user-12345"
    client.link_devices("user-12345", ["user-12345", "device-two"])
    assert client.device_id not in ("user-12345",)


def test_noop_client_has_the_same_public_surface() -> None:
    def surface(cls: type) -> set[str]:
        return {n for n in dir(cls) if not n.startswith("_")}

    missing = surface(telemetry.Client) - surface(telemetry.NoopClient) - {"data_dir"}
    assert not missing, missing
    assert isinstance(noop_client := telemetry.create_noop_client(), telemetry.TelemetryClient)
    assert noop_client.queue_stats().events == 0
    noop = telemetry.create_noop_client()
    assert noop.device_id == "" and noop.session_id == -1
    assert noop.track("Anything", {"x": 1}) is None and noop.flush() is True
    methods = {n for n in surface(telemetry.Client) if callable(getattr(telemetry.Client, n))}
    for name in sorted(methods):
        real = inspect.signature(getattr(telemetry.Client, name)).parameters
        fake = inspect.signature(getattr(telemetry.NoopClient, name)).parameters
        assert list(real) == list(fake), name


def test_closed_client_records_nothing(data_dir: Path) -> None:
    client = telemetry.create_client("proj1", "app", data_dir=data_dir, upload=False)
    client.close()
    assert client.track("Late") is None


def test_tracker_prefixes_names_and_measures_screens(client: telemetry.Client) -> None:
    tracker = telemetry.Tracker(client, prefix="Etcher")
    tracker.track("Flash", {"driveCount": 1})
    opened = time.monotonic() - 0.25
    tracker.track_screen_view("Settings", opened_at=opened, metrics={"interactive": 12.5})
    tracker.track_navigation_click("https://etcher.balena.io")
    telemetry.Tracker(client, prefix=None).track("Plain")
    flash, view, click, plain = user_events(client)
    assert flash["event_type"] == "[Etcher] Flash"
    assert view["event_type"] == "[Etcher] Screen View"
    props = view["event_properties"]
    assert props["current_screen"] == "Settings" and props["previous_screen"] is None
    assert props["metrics.interactive"] == 12.5 and props["metrics.timetoshow"] >= 250
    assert click["event_type"] == "[Etcher] Navigation Click"
    assert click["event_properties"] == {
        "href": "https://etcher.balena.io",
        "current_screen": "Settings",
    }
    assert plain["event_type"] == "Plain"


def test_endpoint_url_follows_the_seed() -> None:
    assert telemetry.endpoint_url(None) == "https://api2.amplitude.com/2/httpapi"
    assert (
        telemetry.endpoint_url(telemetry.PRODUCTION_ENDPOINT)
        == "https://data.balena-cloud.com/amplitude/2/httpapi"
    )
    assert telemetry.endpoint_url("http://127.0.0.1:8555/") == (
        "http://127.0.0.1:8555/amplitude/2/httpapi"
    )


def test_log_events_variable_logs_each_payload_as_stored(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("TELEMETRY_LOG_EVENTS", "1")
    with (
        caplog.at_level("INFO", logger="telemetry"),
        telemetry.create_client("proj1", "app", data_dir=data_dir, upload=False) as client,
    ):
        insert_id = client.track("Logged", {"n": 7})
        stored = [e.json for e in client._store.iter_events() if e.insert_id == insert_id]
    logged = [
        r.getMessage() for r in caplog.records if "telemetry event recorded" in r.getMessage()
    ]
    assert stored and any(m.endswith(stored[0]) for m in logged)
    monkeypatch.delenv("TELEMETRY_LOG_EVENTS")
    caplog.clear()
    with telemetry.create_client("proj1", "app", data_dir=data_dir, upload=False) as client:
        client.track("Quiet")
    assert not [r for r in caplog.records if "telemetry event recorded" in r.getMessage()]
