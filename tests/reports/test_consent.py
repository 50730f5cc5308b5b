"""Error reports follow the same switch as events: nothing kept while off or under an
unanswered opt-in, nothing sent before the notice is answered, nothing with DO_NOT_TRACK, and
an opt-out deletes the reports waiting (a real store file, a RecordingDestination)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from telemetry.testing import RecordingDestination
from tests.reports._support import make_client, raise_from_here


def _capture(client) -> str | None:  # type: ignore[no-untyped-def]
    try:
        raise_from_here("boom")
    except ValueError as exc:
        return client.capture_exception(exc)
    return None


def _rows(data_dir: Path) -> int:
    with sqlite3.connect(data_dir / "telemetry.db") as conn:
        return int(conn.execute("SELECT count(*) FROM reports").fetchone()[0])


def test_nothing_is_sent_before_the_notice_is_answered(data_dir: Path):
    destination = RecordingDestination()
    with make_client(data_dir, destination, answered=False) as client:
        assert _capture(client) is not None  # kept, as events are
        assert client.flush(0.5) is False  # held: the report and the app's $identify wait
        assert destination.requests == []
        client.mark_notice_answered()
        assert client.flush(10)
    assert len(destination.reports) == 1


def test_off_keeps_nothing_and_an_opt_out_deletes_what_waits(data_dir: Path):
    destination = RecordingDestination()
    with make_client(data_dir, destination, answered=False) as client:
        _capture(client)
        assert _rows(data_dir) == 1
        client.set_consent(False)
        assert _rows(data_dir) == 0
        assert _capture(client) is None
        client.capture_message("still off")
        assert _rows(data_dir) == 0
    assert destination.reports == []


def test_opt_in_policy_keeps_nothing_until_the_user_agrees(data_dir: Path):
    destination = RecordingDestination()
    with make_client(data_dir, destination, answered=False, consent_policy="opt_in") as client:
        assert _capture(client) is None
        assert _rows(data_dir) == 0
        client.set_consent(True)
        assert _capture(client) is not None
        assert client.flush(10)
    assert len(destination.reports) == 1


@pytest.mark.parametrize("variable", ["DO_NOT_TRACK", "TELEMETRY_DISABLED"])
def test_the_environment_veto_stops_reports(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch, variable: str
):
    monkeypatch.setenv(variable, "1")
    destination = RecordingDestination()
    with make_client(data_dir, destination) as client:
        client.capture_errors(native_crashes=True)
        assert _capture(client) is None
        assert client.flush(0.5)
    assert destination.requests == []
    assert not (data_dir / "crashes").exists()
