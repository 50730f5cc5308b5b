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


def test_showing_marks_it_shown_but_only_an_answer_stops_it_showing(
    qtbot: QtBot, client: telemetry.Client, data_dir: Path
) -> None:
    assert ConsentNotice.should_show(client)
    assert not client.notice_shown
    _notice(qtbot, client)
    assert client.notice_shown
    assert db_state(data_dir, "notice_shown") is True
    assert not client.notice_answered
    assert ConsentNotice.should_show(client)  # shown is not answered
    client.close()
    again = telemetry.create_client("test-project", "test-app", "1.2.3", data_dir=data_dir)
    try:
        assert ConsentNotice.should_show(again)  # a restart shows it until it is answered
        notice = _notice(qtbot, again)
        qtbot.mouseClick(notice.ok_button, Qt.MouseButton.LeftButton)
        assert again.notice_answered
    finally:
        again.close()
    assert db_state(data_dir, "notice_answered") is True
    third = telemetry.create_client("test-project", "test-app", "1.2.3", data_dir=data_dir)
    try:
        assert not ConsentNotice.should_show(third)
    finally:
        third.close()


def test_words_without_a_catalogue_promise_nothing_they_cannot_know(
    qtbot: QtBot, client: telemetry.Client
) -> None:
    assert client.catalogue is None
    notice = _notice(qtbot, client)
    text = notice.plain_text()
    for phrase in (
        "Nothing is sent before you answer",
        "its name and time",
        "app version",
        "operating system",
        "language setting",
        "random device ID",
        "up to this app",
        "Show me the data",
    ):
        assert phrase in text, phrase
    for promise in ("types of drives", "Never sent", "rough size"):
        assert promise not in text, promise
    assert notice.details is None
    assert "Turn off" in notice.turn_off_button.text().replace("&", "")


def _catalogue(extra: dict[str, object] | None = None) -> telemetry.EventCatalogue:
    properties: dict[str, object] = {
        "driveCount": {"type": "integer", "description": "Number of drives written."},
    }
    properties.update(extra or {})
    return telemetry.EventCatalogue.from_dict(
        {
            "events": {
                "Flash": {"description": "A flash started.", "properties": properties},
                "Select drive": {
                    "description": "A drive was chosen.",
                    "properties": {
                        "driveCount": {"type": "integer", "description": "Drives selected."}
                    },
                },
            }
        }
    )


def _catalogue_client(data_dir: Path, catalogue: telemetry.EventCatalogue) -> telemetry.Client:
    return telemetry.create_client(
        "test-project", "test-app", "1.2.3", data_dir=data_dir, upload=False, catalogue=catalogue
    )


def test_words_list_every_declared_event_and_property(qtbot: QtBot, tmp_path: Path) -> None:
    plain = _catalogue_client(tmp_path / "a", _catalogue())
    vendor = {"drive.vendor": {"type": "string", "description": "Vendor of the drive."}}
    extended = _catalogue_client(tmp_path / "b", _catalogue(vendor))
    try:
        before, after = _notice(qtbot, plain), _notice(qtbot, extended)
        for notice in (before, after):
            text = notice.plain_text()
            assert "• Flash: A flash started." in text
            assert "• Select drive: A drive was chosen." in text
            # declared by two events with two descriptions: both are kept
            assert "• driveCount: Number of drives written. / Drives selected." in text
            assert "refused before it is stored" in text
            assert notice.details is not None and notice.details_label is not None
        assert "drive.vendor" not in before.plain_text()
        assert "• drive.vendor: Vendor of the drive." in after.plain_text()
        assert after.details_label is not None
        assert "drive.vendor" in after.details_label.text()  # what is on screen
        assert "drive.vendor" in after.details_label.accessibleDescription()  # and read out
        # and the app can record exactly that property now, and nothing undeclared
        assert extended.track("Flash", {"drive": {"vendor": "Acme"}}) is not None
        with pytest.raises(telemetry.InvalidEventError):
            extended.track("Flash", {"drive": {"serial": "X1"}})
    finally:
        plain.close()
        extended.close()


def test_the_demo_notice_names_what_the_demo_sends(qtbot: QtBot, tmp_path: Path) -> None:
    from demo_app.app import CATALOGUE_PATH

    catalogue = telemetry.EventCatalogue.from_file(CATALOGUE_PATH)
    client = _catalogue_client(tmp_path / "demo", catalogue)
    try:
        text = _notice(qtbot, client).plain_text()
        for name in (
            "drive.vendor",
            "drive.model",
            "drive.usb_driver",
            "drive.bus_version",
            "image.extension",
            "image.compression",
            "image.size",
            "durationMs",
            "errorCode",
        ):
            assert f"• {name}: " in text, name
        for spec in catalogue.events:
            assert f"• {spec.name}: {spec.description}" in text
    finally:
        client.close()


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
    # Turned off before the notice was answered: nothing could have left this computer, so
    # there is nothing to ask the collector to delete.
    assert old_device
    assert (db_state(data_dir, "deletion_requests") or []) == []
    assert (db_state(data_dir, "exposed_device_id") or []) == []
    assert client.track("Flash", {}) is None


def test_ok_dismisses_and_keeps_telemetry_on(qtbot: QtBot, client: telemetry.Client) -> None:
    notice = _notice(qtbot, client)
    with qtbot.waitSignal(notice.dismissed, timeout=2000):
        qtbot.mouseClick(notice.ok_button, Qt.MouseButton.LeftButton)
    assert not notice.isVisible()
    assert client.consent_state == telemetry.ConsentState.UNKNOWN
    assert client.notice_answered
    assert client.enabled
    assert client.track("Flash", {"driveCount": 1}) is not None


def test_keyboard_alone_dismisses_or_turns_off(
    qtbot: QtBot, client: telemetry.Client, data_dir: Path
) -> None:
    notice = _notice(qtbot, client)
    notice.activateWindow()
    qtbot.waitUntil(notice.isActiveWindow, timeout=10_000)
    assert not client.notice_answered
    with qtbot.waitSignal(notice.dismissed, timeout=2000):
        qtbot.keyClick(notice, Qt.Key.Key_Escape)
    assert not notice.isVisible()
    assert client.consent_state == telemetry.ConsentState.UNKNOWN
    assert client.notice_answered  # Escape is an answer: uploads may start

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
    assert not client.notice_answered


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
