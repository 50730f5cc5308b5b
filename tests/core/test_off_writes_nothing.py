"""While telemetry is off, nothing is written: URL ids, experiments, user id, linked devices,
sessions. After opting back in, no id from before or during the opt-out comes back."""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path
from urllib.parse import parse_qs

import telemetry
from telemetry import AnalyticsUrlParams, LocalExperiment
from telemetry.testing import RecordingDestination

OTHER_SITE = "https://dashboard.example.org/page"


def snapshot(data_dir: Path) -> dict[str, object]:
    """Every row of every table, read by an independent connection, plus the journal files."""
    uri = f"{(data_dir / 'telemetry.db').resolve().as_uri()}?mode=ro"
    with contextlib.closing(sqlite3.connect(uri, uri=True)) as db:
        tables = [
            r[0]
            for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY 1")
        ]
        rows: dict[str, object] = {
            t: sorted(map(repr, db.execute(f"SELECT * FROM {t}"))) for t in tables
        }
    journals = data_dir / "journal"
    rows["journal files"] = (
        sorted((p.name, p.stat().st_size) for p in journals.iterdir()) if journals.exists() else []
    )
    return rows


def link_ids(params: AnalyticsUrlParams) -> list[str]:
    query = params.get_query_string(OTHER_SITE)
    return parse_qs(query).get("d_id", [""])[0].split(",") if query else []


def test_nothing_is_written_while_off_and_no_old_id_returns(data_dir: Path) -> None:
    # A client that may upload (links carry ids only then), to an in-memory destination.
    client = telemetry.create_client(
        "proj1", "app", data_dir=data_dir, destination=RecordingDestination()
    )
    try:
        client.set_consent(True)
        params = AnalyticsUrlParams(client)
        experiment = LocalExperiment[str]("colour", client).define("red", 50).define("blue", 50)
        params.consume_url_parameters("d_id=before-optout-1")
        client.set_user_id("user-before-1")
        experiment.engage()
        before_device = client.device_id
        assert "before-optout-1" in link_ids(params)

        client.set_consent(False)
        client._housekeeping()  # let any pending write land before the snapshot
        off = snapshot(data_dir)

        # Everything an app may do while the user has telemetry off.
        assert params.consume_url_parameters("d_id=after-optout-x&s_id=1700000000000") == ""
        client.set_user_id("user-while-off")
        client.set_session_id(1_700_000_000_000)
        assert experiment.engage() == "red"  # not kept: the first variation
        assert experiment.engage("some-device-1") == "red"
        client.link_devices("user-while-off", ["linked-while-off"])
        client.set_device_id("device-while-off")
        assert client.regenerate_device_id() == ""
        assert client.track("Flash", {"driveCount": 1}) is None
        assert client.identify({"$set": {"plan": "pro"}}) is None
        assert client.session_id == -1 and client.device_id == ""
        assert link_ids(params) == []  # no device id may leave in a link while off
        client._housekeeping()
        assert snapshot(data_dir) == off, "a row was written while telemetry was off"

        client.set_consent(True)
        ids = link_ids(params)
        assert ids == [client.device_id], ids  # only the new id: no old one, no empty one
        assert client.device_id not in (before_device, "device-while-off", "")
        assert client.user_id is None
        rows = client.query("SELECT name, device_id FROM experiments")
        assert rows == []  # the assignment under the old id was erased, none made while off
    finally:
        client.close()


def test_ids_consumed_while_off_are_not_handed_to_a_client_later(data_dir: Path) -> None:
    with telemetry.create_client(
        "proj1",
        "app",
        data_dir=data_dir,
        destination=RecordingDestination(),
        consent_policy="opt_in",
    ) as client:
        params = AnalyticsUrlParams(client)  # opt-in policy, no answer yet: off
        params.consume_url_parameters("d_id=while-off-1")
        assert params.get_passed_device_id() is None
        client.set_consent(True)
        assert "while-off-1" not in link_ids(params)
        assert link_ids(params) == [client.device_id]
