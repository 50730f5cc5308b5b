"""LocalExperiment: the seed's validation messages, sticky assignment, Experiments property."""

from __future__ import annotations

from pathlib import Path

import pytest

import telemetry


def test_define_validates_percent_duplicates_and_total(client: telemetry.Client) -> None:
    exp = telemetry.LocalExperiment("WelcomeUI", client)
    with pytest.raises(ValueError, match="between 0 and 100"):
        exp.define("modal", 101)
    with pytest.raises(ValueError, match="between 0 and 100"):
        exp.define("modal", -1)
    exp.define("modal", 50).define("sidebar-left", 25)
    with pytest.raises(ValueError, match="Variation modal is already defined"):
        exp.define("modal", 10)
    with pytest.raises(ValueError, match=r"variation sidebar-right: 30%"):
        exp.define("sidebar-right", 30)


def test_engage_requires_full_definition(client: telemetry.Client) -> None:
    exp = telemetry.LocalExperiment("E1", client)
    with pytest.raises(ValueError, match="Variations are not defined"):
        exp.engage()
    exp.define("a", 40)
    with pytest.raises(ValueError, match="not fully defined"):
        exp.engage()


def test_assignment_is_sticky_across_restarts(data_dir: Path) -> None:
    rolls = iter([0.10, 0.99, 0.99])
    with telemetry.create_client("proj1", "app", data_dir=data_dir, upload=False) as client:
        exp = telemetry.LocalExperiment("WelcomeUI", client, rand=lambda: next(rolls))
        exp.define("modal", 50).define("sidebar-left", 25).define("sidebar-right", 25)
        assert exp.engage() == "modal"  # roll 10 < 50
        assert exp.engage() == "modal"  # stored value wins over the next roll (99)
        other = exp.engage("another-device")
        assert other == "sidebar-right"
        identifies = [
            e.as_dict()["user_properties"]
            for e in client._store.iter_events()
            if e.event_type == "$identify"
        ][1:]
        assert identifies[0] == {"$preInsert": {"Experiments": "WelcomeUI_modal"}}
        assert len(identifies) == 3  # one per engagement
    with telemetry.create_client("proj1", "app", data_dir=data_dir, upload=False) as client:
        exp = telemetry.LocalExperiment("WelcomeUI", client, rand=lambda: 0.99)
        exp.define("modal", 50).define("sidebar-left", 25).define("sidebar-right", 25)
        assert exp.engage() == "modal"


def test_without_storage_first_variation() -> None:
    exp = telemetry.LocalExperiment("E2").define("first", 60).define("second", 40)
    assert exp.engage("some-device") == "first"
