"""``ConsentNotice``: the first-run banner, clicked and typed as a user would, checked in the
real client and its real SQLite file."""

from __future__ import annotations

from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from pytestqt.qtbot import QtBot

import telemetry
from telemetry.qt import ConsentNotice, EventInspector
from tests.qt.conftest import assert_readable, db_rows, db_state, queued, render


def _notice(qtbot: QtBot, client: telemetry.Client) -> ConsentNotice:
    notice = ConsentNotice(client)
    qtbot.addWidget(notice)
    notice.resize(900, 260)
    notice.show()
    qtbot.waitExposed(notice)
    return notice


def test_first_show_marks_the_notice_shown_and_persists_it(
    qtbot: QtBot, client: telemetry.Client, data_dir: Path
) -> None:
    assert ConsentNotice.should_show(client)
    assert not client.notice_shown
    _notice(qtbot, client)
    assert client.notice_shown
    assert db_state(data_dir, "notice_shown") is True
    client.close()
    again = telemetry.create_client("test-project", "test-app", "1.2.3", data_dir=data_dir)
    try:
        assert not ConsentNotice.should_show(again)
    finally:
        again.close()


def test_words_list_what_is_sent_and_never_sent(qtbot: QtBot, client: telemetry.Client) -> None:
    notice = _notice(qtbot, client)
    text = notice.plain_text()
    for phrase in (
        "names of the actions you take",
        "app version",
        "operating system",
        "random device ID",
        "types of drives",
        "Never sent",
        "file names",
        "folder paths",
        "user name",
        "serial numbers",
        "IP address is not stored",
    ):
        assert phrase in text, phrase
    assert "Turn off" in notice.turn_off_button.text().replace("&", "")


def test_turn_off_before_any_upload_purges_the_queue_unsent(
    qtbot: QtBot, unreachable_client: telemetry.Client, data_dir: Path
) -> None:
    client = unreachable_client
    client.track("Application start", {"packageType": "deb"})  # queued before the notice
    assert queued(client, data_dir) > 0
    old_device = client.device_id
    notice = _notice(qtbot, client)
    with qtbot.waitSignal(notice.turnedOff, timeout=2000):
        qtbot.mouseClick(notice.turn_off_button, Qt.MouseButton.LeftButton)
    assert not notice.isVisible()
    assert client.consent_state == telemetry.ConsentState.DENIED
    assert queued(client, data_dir) == 0
    assert db_rows(data_dir, "SELECT count(*) FROM sent_batches")[0][0] == 0
    assert db_state(data_dir, "device_id") is None
    requests = db_state(data_dir, "deletion_requests") or []
    assert [r["device_id"] for r in requests] == [old_device]
    assert client.track("Flash", {}) is None


def test_ok_dismisses_and_keeps_telemetry_on(qtbot: QtBot, client: telemetry.Client) -> None:
    notice = _notice(qtbot, client)
    with qtbot.waitSignal(notice.dismissed, timeout=2000):
        qtbot.mouseClick(notice.ok_button, Qt.MouseButton.LeftButton)
    assert not notice.isVisible()
    assert client.consent_state == telemetry.ConsentState.UNKNOWN
    assert client.enabled
    assert client.track("Flash", {"driveCount": 1}) is not None


def test_keyboard_alone_dismisses_or_turns_off(
    qtbot: QtBot, client: telemetry.Client, data_dir: Path
) -> None:
    notice = _notice(qtbot, client)
    notice.activateWindow()
    qtbot.waitUntil(notice.isActiveWindow, timeout=10_000)
    with qtbot.waitSignal(notice.dismissed, timeout=2000):
        qtbot.keyClick(notice, Qt.Key.Key_Escape)
    assert client.consent_state == telemetry.ConsentState.UNKNOWN

    other = _notice(qtbot, client)
    other.activateWindow()
    qtbot.waitUntil(other.isActiveWindow, timeout=10_000)
    other.show_data_button.setFocus()
    qtbot.keyClick(other.show_data_button, Qt.Key.Key_Tab)
    assert other.focusWidget() is other.turn_off_button
    with qtbot.waitSignal(other.turnedOff, timeout=2000):
        qtbot.keyClick(other.turn_off_button, Qt.Key.Key_Space)
    assert client.consent_state == telemetry.ConsentState.DENIED
    assert queued(client, data_dir) == 0


def test_buttons_have_distinct_mnemonics(qtbot: QtBot, client: telemetry.Client) -> None:
    notice = _notice(qtbot, client)
    keys = [
        b.shortcut().toString()
        for b in (notice.show_data_button, notice.turn_off_button, notice.ok_button)
    ]
    assert len(set(keys)) == 3, keys
    assert all(k.startswith("Alt+") for k in keys)


def test_tab_order_is_link_then_turn_off_then_ok(qtbot: QtBot, client: telemetry.Client) -> None:
    notice = _notice(qtbot, client)
    notice.activateWindow()
    qtbot.waitUntil(notice.isActiveWindow, timeout=10_000)
    notice.show_data_button.setFocus()
    order = [notice.focusWidget()]
    for _ in range(2):
        qtbot.keyClick(notice.focusWidget(), Qt.Key.Key_Tab)
        order.append(notice.focusWidget())
    assert order == [notice.show_data_button, notice.turn_off_button, notice.ok_button]


def test_show_me_the_data_opens_the_inspector(qtbot: QtBot, client: telemetry.Client) -> None:
    client.track("Flash", {"driveCount": 1})
    notice = _notice(qtbot, client)
    opened: list[EventInspector] = []

    def open_inspector() -> None:
        inspector = EventInspector(client, refresh_interval=0)
        qtbot.addWidget(inspector)
        inspector.show()
        opened.append(inspector)

    notice.showDataRequested.connect(open_inspector)
    qtbot.mouseClick(notice.show_data_button, Qt.MouseButton.LeftButton)
    assert len(opened) == 1
    assert any(r.event_type == "Flash" for r in opened[0].shown_rows())
    assert notice.isVisible()  # looking at the data does not answer the notice


def test_not_shown_when_the_environment_blocks(
    monkeypatch: pytest.MonkeyPatch, data_dir: Path
) -> None:
    monkeypatch.setenv("DO_NOT_TRACK", "1")
    client = telemetry.create_client("test-project", "test-app", "1.2.3", data_dir=data_dir)
    try:
        assert not ConsentNotice.should_show(client)
    finally:
        client.close()


def test_opt_in_notice_asks_and_allow_starts_recording(qtbot: QtBot, data_dir: Path) -> None:
    client = telemetry.create_client(
        "test-project",
        "test-app",
        "1.2.3",
        data_dir=data_dir,
        consent_policy="opt_in",
        upload=False,
    )
    try:
        assert client.track("Flash", {}) is None
        assert not client.device_id
        notice = _notice(qtbot, client)
        assert "Allow" in notice.ok_button.text().replace("&", "")
        assert "unless you allow it" in notice.plain_text()
        with qtbot.waitSignal(notice.turnedOn, timeout=2000):
            qtbot.mouseClick(notice.ok_button, Qt.MouseButton.LeftButton)
        assert client.consent_state == telemetry.ConsentState.GRANTED
        assert client.device_id
        assert client.track("Flash", {"driveCount": 1}) is not None
        assert queued(client, data_dir) >= 1
    finally:
        client.close()


def test_renders_readably_in_light_and_dark(
    qtbot: QtBot, client: telemetry.Client, tmp_path: Path, palette_name: str
) -> None:
    notice = _notice(qtbot, client)
    image = render(notice, tmp_path / f"notice-{palette_name}.png", 900, 600)
    assert_readable(image, palette_name)
