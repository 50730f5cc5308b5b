"""telemetry.testing as an app developer uses it: assert what the app tracked, no network."""

from __future__ import annotations

from pathlib import Path

import telemetry
from telemetry.testing import RecordingDestination


def test_an_apps_test_sees_exactly_what_was_delivered(data_dir: Path) -> None:
    destination = RecordingDestination()
    with telemetry.create_client(
        "proj1", "app", "1.0", data_dir=data_dir, destination=destination
    ) as client:
        client.track("Flash", {"driveCount": 2})
        assert not client.flush(1.0)  # consent first: the notice is not answered yet
        assert destination.requests == []
        client.mark_notice_answered()
        assert client.flush(10.0)
    flashes = [e for e in destination.events if e["event_type"] == "Flash"]
    assert [e["event_properties"] for e in flashes] == [{"driveCount": 2}]
    assert flashes[0]["device_id"] == client.device_id


def test_opting_out_in_a_test_sends_no_event(data_dir: Path) -> None:
    destination = RecordingDestination()
    with telemetry.create_client(
        "proj1", "app", data_dir=data_dir, destination=destination
    ) as client:
        client.track("Flash")
        client.set_consent(False)
        assert client.flush(2.0)
    assert destination.events == []
