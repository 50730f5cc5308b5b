"""open_client(): a tool's view of an app's data dir, with the app's consent decision."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

import telemetry


def test_a_tool_sees_what_a_running_app_committed(data_dir: Path) -> None:
    with telemetry.create_client(
        "proj1", "app", "2.0", "http://127.0.0.1:9", data_dir=data_dir, upload=False
    ) as app:
        app.track("Started", {"n": 1})
        assert (data_dir / "telemetry.db-wal").stat().st_size > 0  # still in the log
        tool = telemetry.open_client(data_dir)
        try:
            assert (tool.project_name, tool.component_name, tool.endpoint) == (
                "proj1",
                "app",
                "http://127.0.0.1:9",
            )
            # The app copies its journal into SQLite about once a second; then the tool sees it.
            deadline = time.monotonic() + 30
            while tool.queue_stats().events < 2 and time.monotonic() < deadline:
                time.sleep(0.05)
            assert [e.event_type for e in tool.queued_events()] == ["$identify", "Started"]
            assert not tool.uploading  # the notice was not answered in the app
        finally:
            tool.close()


def test_a_tool_applies_the_apps_choice_and_records_nothing(data_dir: Path) -> None:
    with telemetry.create_client("proj1", "app", data_dir=data_dir, upload=False) as app:
        app.track("Started")
        app.set_consent(False)
    tool = telemetry.open_client(data_dir, upload=True)
    try:
        assert tool.consent_state is telemetry.ConsentState.DENIED
        assert not tool.enabled and not tool.uploading
        assert tool.track("From the tool") is None
        assert tool.queue_stats().events == 0
    finally:
        tool.close()


def test_no_database_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(telemetry.ConfigError, match="no telemetry database"):
        telemetry.open_client(tmp_path / "nothing-here")
    assert not (tmp_path / "nothing-here").exists()
