"""``TelemetrySettingsWidget``: the toggle, clicked and typed as a user would, checked in the
real client and its real SQLite file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from pytestqt.qtbot import QtBot

import telemetry
from telemetry.qt import ConsentNotice, TelemetrySettingsWidget
from tests.qt.conftest import assert_readable, db_state, queued, render, user_events


def _settings(qtbot: QtBot, client: telemetry.Client) -> TelemetrySettingsWidget:
    widget = TelemetrySettingsWidget(client)
    qtbot.addWidget(widget)
    widget.resize(600, 240)
    widget.show()
    qtbot.waitExposed(widget)
    return widget


def test_unchecking_turns_everything_off_at_once(
    qtbot: QtBot, unreachable_client: telemetry.Client, data_dir: Path
) -> None:
    client = unreachable_client
    client.mark_notice_answered()  # the user answered the notice: events could have left
    client.track("Flash", {"driveCount": 1})
    old_device = client.device_id
    assert old_device and db_state(data_dir, "device_id") == old_device
    assert queued(client, data_dir) > 0
    widget = _settings(qtbot, client)
    assert widget.checkbox.isChecked()

    with qtbot.waitSignal(widget.toggled, timeout=2000) as toggled:
        qtbot.mouseClick(widget.checkbox, Qt.MouseButton.LeftButton)
    assert toggled.args == [False]
    assert client.consent_state == telemetry.ConsentState.DENIED
    assert not client.enabled
    # the real file: queue empty, device id gone, exactly one deletion request for the old id
    assert queued(client, data_dir) == 0
    assert db_state(data_dir, "device_id") is None
    assert client.device_id == ""
    requests = db_state(data_dir, "deletion_requests")
    assert [r["device_id"] for r in requests] == [old_device]
    assert {"device_id", "project", "reason"} <= set(requests[0])
    assert db_state(data_dir, "consent") == "denied"
    # recording stopped
    assert client.track("Flash", {"driveCount": 2}) is None
    assert queued(client, data_dir) == 0
    assert not widget.checkbox.isChecked()
    assert "off" in widget.status_label.text()


def test_checking_again_starts_over_with_a_new_device_id(
    qtbot: QtBot, client: telemetry.Client, data_dir: Path
) -> None:
    client.mark_notice_answered()
    old_device = client.device_id
    widget = _settings(qtbot, client)
    qtbot.mouseClick(widget.checkbox, Qt.MouseButton.LeftButton)  # off
    with qtbot.waitSignal(widget.toggled, timeout=2000) as toggled:
        qtbot.mouseClick(widget.checkbox, Qt.MouseButton.LeftButton)  # on again
    assert toggled.args == [True]
    assert client.consent_state == telemetry.ConsentState.GRANTED
    new_device = client.device_id
    assert new_device and new_device != old_device
    assert db_state(data_dir, "device_id") == new_device
    client.track("Flash", {"driveCount": 3})
    payloads = [e.as_dict() for e in client.queued_events()]
    assert payloads and all(p["device_id"] == new_device for p in payloads)
    assert old_device not in json.dumps(payloads)


def test_space_bar_toggles_like_a_click(
    qtbot: QtBot, client: telemetry.Client, data_dir: Path
) -> None:
    widget = _settings(qtbot, client)
    widget.activateWindow()
    widget.checkbox.setFocus()
    qtbot.waitUntil(widget.checkbox.hasFocus, timeout=10_000)
    with qtbot.waitSignal(widget.toggled, timeout=2000):
        qtbot.keyClick(widget.checkbox, Qt.Key.Key_Space)
    assert client.consent_state == telemetry.ConsentState.DENIED
    assert queued(client, data_dir) == 0


def test_follows_a_turn_off_from_the_notice(qtbot: QtBot, client: telemetry.Client) -> None:
    widget = _settings(qtbot, client)
    notice = ConsentNotice(client)
    qtbot.addWidget(notice)
    notice.show()
    assert widget.checkbox.isChecked()
    qtbot.mouseClick(notice.turn_off_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not widget.checkbox.isChecked(), timeout=10_000)
    assert client.consent_state == telemetry.ConsentState.DENIED


@pytest.mark.parametrize("variable", ["DO_NOT_TRACK", "TELEMETRY_DISABLED"])
def test_environment_veto_disables_the_box_and_writes_nothing(
    qtbot: QtBot, monkeypatch: pytest.MonkeyPatch, data_dir: Path, variable: str
) -> None:
    monkeypatch.setenv(variable, "1")
    client = telemetry.create_client("test-project", "test-app", "1.2.3", data_dir=data_dir)
    try:
        widget = _settings(qtbot, client)
        assert not widget.checkbox.isEnabled()
        assert not widget.checkbox.isChecked()
        assert f"Disabled by environment ({variable})" in widget.environment_label.text()
        assert widget.environment_label.isVisible()
        qtbot.mouseClick(widget.checkbox, Qt.MouseButton.LeftButton)  # a disabled box ignores it
        assert client.track("Flash", {"driveCount": 1}) is None
        assert client.consent_state == telemetry.ConsentState.UNKNOWN
        assert not client.device_id
    finally:
        client.close()
    assert not (data_dir / "telemetry.db").exists()
    assert db_state(data_dir, "device_id") is None


def test_environment_veto_keeps_the_stored_choice(
    qtbot: QtBot, monkeypatch: pytest.MonkeyPatch, data_dir: Path
) -> None:
    first = telemetry.create_client(
        "test-project", "test-app", "1.2.3", data_dir=data_dir, upload=False
    )
    first.set_consent(True)
    first.close()
    monkeypatch.setenv("DO_NOT_TRACK", "true")
    client = telemetry.create_client("test-project", "test-app", "1.2.3", data_dir=data_dir)
    try:
        widget = _settings(qtbot, client)
        assert "DO_NOT_TRACK" in widget.environment_label.text()
        assert not widget.checkbox.isEnabled()
    finally:
        client.close()
    assert db_state(data_dir, "consent") == "granted"


def test_renders_readably_in_light_and_dark(
    qtbot: QtBot, client: telemetry.Client, tmp_path: Path, palette_name: str
) -> None:
    widget = _settings(qtbot, client)
    image = render(widget, tmp_path / f"settings-{palette_name}.png", 900, 600)
    assert_readable(image, palette_name)


def test_user_events_are_not_recorded_while_off(qtbot: QtBot, client: telemetry.Client) -> None:
    widget = _settings(qtbot, client)
    qtbot.mouseClick(widget.checkbox, Qt.MouseButton.LeftButton)
    for i in range(5):
        client.track("Flash", {"n": i})
    assert user_events(client) == []
