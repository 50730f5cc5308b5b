"""Must-show: turning telemetry off in the Qt settings sends exactly one request, the deletion
request, and nothing afterwards; the collector then holds no row of the old device id.

A real collector runs as a child process (``CollectorProcess``) behind a counting proxy on
127.0.0.1 (``tests.delivery.fault_server.FaultServer`` forwarding every request and recording
it). The client is real, with its real uploader; the user works the real widgets offscreen.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import Qt
from pytestqt.qtbot import QtBot

import telemetry
from telemetry.qt import ConsentNotice, TelemetrySettingsWidget
from telemetry.wire import proof_hash
from tests.collector_process import CollectorProcess
from tests.delivery.fault_server import FaultServer
from tests.qt.conftest import db_rows, queued

PROJECT = "test-project"
#: Queued events wait for a flush (or a full batch): nothing is in flight when the user acts.
POLICY = telemetry.UploadPolicy(flush_interval=3600.0)


@pytest.fixture
def collector(tmp_path: Path) -> Iterator[CollectorProcess]:
    with CollectorProcess(tmp_path / "collector.db") as process:
        yield process


@pytest.fixture
def proxy(collector: CollectorProcess) -> Iterator[FaultServer]:
    with FaultServer(collector.url) as server:
        yield server


def _client(proxy: FaultServer, data_dir: Path) -> telemetry.Client:
    return telemetry.create_client(
        PROJECT, "test-app", "1.2.3", endpoint=proxy.url, data_dir=data_dir, upload_policy=POLICY
    )


def _device_ids(collector: CollectorProcess) -> list[str]:
    return [json.loads(row["event"]).get("device_id") for row in collector.rows()]


def _lease_holders(data_dir: Path) -> int:
    """Rows of the cross-process upload lease in the client's SQLite file (0 or 1)."""
    return int(db_rows(data_dir, "SELECT count(*) FROM upload_lease")[0][0])


def _counter(client: telemetry.Client, name: str) -> int:
    """One of the client's counters, from its public status."""
    return int(client.status()["counters"].get(name, 0))


def _summary(requests: list[Any]) -> list[tuple[str, str, int | None]]:
    return [(r.method, r.target, r.status) for r in requests]


def test_turning_off_sends_only_the_deletion_request_and_the_collector_forgets(
    qtbot: QtBot, collector: CollectorProcess, proxy: FaultServer, data_dir: Path
) -> None:
    client = _client(proxy, data_dir)
    try:
        # First run: the notice is shown and acknowledged; events are delivered.
        notice = ConsentNotice(client)
        qtbot.addWidget(notice)
        notice.show()
        qtbot.mouseClick(notice.ok_button, Qt.MouseButton.LeftButton)
        old_device = client.device_id
        for i in range(5):
            client.track("Flash", {"driveCount": i})
        assert client.flush(timeout=20)
        assert _device_ids(collector).count(old_device) >= 5
        assert all(r.accepted for r in proxy.requests)
        # flush() returns once the queue is empty, but the uploader still holds its lease and
        # would send new events at once (it stays prompt until a cycle finds nothing to send).
        # It gives the lease up when it goes idle: after that, new events wait flush_interval.
        qtbot.waitUntil(lambda: _lease_holders(data_dir) == 0, timeout=15_000)

        # More events, queued but not sent yet, then the user opens Settings.
        for i in range(3):
            client.track("Select drive", {"n": i})
        assert queued(client, data_dir) >= 3
        before = len(proxy.requests)
        settings = TelemetrySettingsWidget(client)
        qtbot.addWidget(settings)
        settings.show()
        qtbot.waitExposed(settings)
        qtbot.mouseClick(settings.checkbox, Qt.MouseButton.LeftButton)
        assert client.consent_state == telemetry.ConsentState.DENIED

        assert proxy.wait_for(lambda reqs: len(reqs) > before, timeout=15), "no deletion request"
        # Answered and taken off the client's queue (counted after that): closing the client
        # now cannot abandon it in flight and have the restarted client send it again.
        qtbot.waitUntil(lambda: _counter(client, "deletion_requests_sent") == 1, timeout=30_000)
        # The app goes on calling track() and asking for a flush, as a busy app does.
        for i in range(20):
            assert client.track("Flash", {"driveCount": i}) is None
            qtbot.wait(50)
        client.flush(timeout=2)
    finally:
        client.close()

    # A restart of the app: still nothing to send.
    restarted = _client(proxy, data_dir)
    try:
        assert restarted.consent_state == telemetry.ConsentState.DENIED
        assert restarted.track("Application start", {}) is None
        assert queued(restarted, data_dir) == 0  # no purged event came back from a journal
        restarted.flush(timeout=2)
        qtbot.wait(500)
    finally:
        restarted.close()

    after = proxy.requests[before:]
    assert len(after) == 1, _summary(after)
    deletion = after[0]
    assert deletion.method == "POST"
    assert deletion.target.endswith("/deletion"), deletion.target
    assert deletion.status == 200
    body = json.loads(deletion.body)
    assert set(body) == {"project", "device_id", "reason", "proof"}
    assert body["project"] == PROJECT
    assert body["device_id"] == old_device
    # The proof is the one whose hash the device's batches taught the collector: the tombstone
    # keeps that hash (it was set by this verified request).
    with sqlite3.connect(collector.database) as conn:
        kept = conn.execute(
            "SELECT proof_hash FROM tombstones WHERE device_id = ?", (old_device,)
        ).fetchall()
    assert kept == [(proof_hash(body["proof"]),)]
    # The collector honoured it: no row of the old device id is left (events of other
    # devices, if any, are not this test's business).
    assert old_device not in _device_ids(collector)
    # and locally nothing is left to send
    assert db_rows(data_dir, "SELECT count(*) FROM events")[0][0] == 0
