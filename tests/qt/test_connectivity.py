"""``QtConnectivity``: Qt's reachability (or the core detector) feeding ``client.set_online``.

The client is real, with its real uploader. Its endpoint is an unresolvable ``.invalid`` host
under the opt-in policy with no consent given, so nothing is recorded and no request is ever
made: only the uploader's connectivity state (``client.status()["connectivity"]``) is watched.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from PySide6.QtNetwork import QNetworkInformation
from pytestqt.qtbot import QtBot

import telemetry
from telemetry._system import network_interfaces_up as interfaces_up
from telemetry.qt import QtConnectivity

Reach = QNetworkInformation.Reachability


def _client(data_dir: Path, endpoint: str) -> telemetry.Client:
    return telemetry.create_client(
        "test-project",
        "test-app",
        "1.2.3",
        endpoint=endpoint,
        data_dir=data_dir,
        consent_policy="opt_in",
    )


@pytest.fixture
def remote_client(data_dir: Path) -> Iterator[telemetry.Client]:
    client = _client(data_dir, "http://collector.invalid")
    assert not client.enabled
    yield client
    client.close()


def _connectivity(client: telemetry.Client) -> str:
    return str(client.status()["connectivity"])


def test_qt_backend_or_fallback_reports_the_current_state(
    qtbot: QtBot, remote_client: telemetry.Client
) -> None:
    qc = QtConnectivity(remote_client)
    qc.start()
    try:
        info = QNetworkInformation.instance()
        if info is not None and qc.backend_name is not None:
            # Qt path: the backend's answer was passed on
            assert qc.backend_name == info.backendName()
            assert not qc.using_fallback
            expected = {Reach.Online: True, Reach.Disconnected: False}.get(info.reachability())
            assert qc.online == expected
        else:
            # no backend on this machine: the core detector answered
            assert qc.using_fallback
            assert qc.online == interfaces_up()
        if qc.online is not None:
            assert _connectivity(remote_client) == ("online" if qc.online else "offline")
    finally:
        qc.stop()


def test_qt_reachability_changes_reach_the_uploader(
    qtbot: QtBot, remote_client: telemetry.Client
) -> None:
    qc = QtConnectivity(remote_client)
    qc.start()
    try:
        info = QNetworkInformation.instance()
        assert qc.backend_name is not None and info is not None, (
            "a Qt network information backend loads here (glib, networkmanager or connman): "
            f"{QNetworkInformation.availableBackends()}"
        )
        if qc.online is not True:
            info.reachabilityChanged.emit(Reach.Online)
        with qtbot.waitSignal(qc.onlineChanged, timeout=2000) as went_offline:
            info.reachabilityChanged.emit(Reach.Disconnected)  # what the backend emits
        assert went_offline.args == [False]
        assert qc.online is False
        assert _connectivity(remote_client) == "offline"
        with qtbot.waitSignal(qc.onlineChanged, timeout=2000) as came_back:
            info.reachabilityChanged.emit(Reach.Online)
        assert came_back.args == [True]
        assert _connectivity(remote_client) == "online"
        # "only the local network" is not a verdict on the collector: the detector decides
        info.reachabilityChanged.emit(Reach.Local)
        assert qc.online is None
    finally:
        qc.stop()
    assert not qc.running and qc.online is None


def test_loopback_endpoint_is_never_reported_offline(qtbot: QtBot, data_dir: Path) -> None:
    client = _client(data_dir, "http://127.0.0.1:9")
    qc = QtConnectivity(client)
    try:
        qc.start()
        qc._on_reachability(Reach.Disconnected)
        assert qc.online is None
        assert _connectivity(client) == "online"
    finally:
        qc.stop()
        client.close()


def test_falls_back_to_the_core_detector_without_a_qt_backend(
    qtbot: QtBot, remote_client: telemetry.Client
) -> None:
    qc = QtConnectivity(remote_client, backend="no-such-backend", poll_interval=0.05)
    qc.start()
    try:
        assert qc.using_fallback
        assert qc.backend_name is None
        # the real psutil interface check decided
        assert qc.online is interfaces_up()
        assert _connectivity(remote_client) == ("online" if qc.online else "offline")
    finally:
        qc.stop()


def test_fallback_polls_and_reports_changes(
    qtbot: QtBot, remote_client: telemetry.Client, tmp_path: Path
) -> None:
    link = tmp_path / "link-up"
    link.touch()
    qc = QtConnectivity(
        remote_client, backend="no-such-backend", poll_interval=0.05, detector=link.exists
    )
    qc.start()
    try:
        assert qc.using_fallback and qc.online is True
        with qtbot.waitSignal(qc.onlineChanged, timeout=15_000) as down:
            link.unlink()
        assert down.args == [False]
        assert _connectivity(remote_client) == "offline"
        with qtbot.waitSignal(qc.onlineChanged, timeout=15_000) as up:
            link.touch()
        assert up.args == [True]
        assert _connectivity(remote_client) == "online"
    finally:
        qc.stop()
