"""Window behaviour: featured-project link, settings, status bar, notice, image errors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from PySide6.QtCore import QObject, QPoint, Qt, QUrl, Slot
from PySide6.QtGui import QDesktopServices
from pytestqt.qtbot import QtBot

from demo_app.flasher import Target
from tests.collector_process import CollectorProcess

from .conftest import Demo, ModalDriver, answer_notice, image_bytes, write_image


class _Browser(QObject):
    """Receives the URLs Qt would hand to the desktop's browser (QDesktopServices handler)."""

    def __init__(self) -> None:
        super().__init__()
        self.opened: list[str] = []

    @Slot(QUrl)
    def open(self, url: QUrl) -> None:
        self.opened.append(url.toString())


def _props(demo: Demo, name: str) -> list[dict[str, Any]]:
    return [
        e.get("event_properties", {})
        for e in demo.events()
        if e["event_type"] == f"[Etcher] {name}"
    ]


def test_featured_project_link_carries_the_device_link_and_is_tracked(
    qtbot: QtBot, make_demo: Any, collector: CollectorProcess
) -> None:
    demo: Demo = make_demo(collector.url)
    browser = _Browser()
    QDesktopServices.setUrlHandler("https", browser, "open")
    try:
        # Before the notice is answered the device id leaves in no link, as in no upload.
        qtbot.mouseClick(demo.window.featured_button, Qt.MouseButton.LeftButton)
        qtbot.waitUntil(lambda: len(browser.opened) == 1, timeout=10_000)
        assert "d_id" not in parse_qs(urlsplit(browser.opened.pop()).query)
        answer_notice(qtbot, demo)
        qtbot.mouseClick(demo.window.featured_button, Qt.MouseButton.LeftButton)
        qtbot.waitUntil(lambda: len(browser.opened) == 1, timeout=10_000)
        query = parse_qs(urlsplit(browser.opened[0]).query)
        assert query["d_id"] == [demo.client.device_id]
        assert query["s_id"] == [str(demo.client.session_id)]
        assert browser.opened[0].startswith(demo.window.featured_url)
        # (Uploads run meanwhile: wait for a read that sees both clicks, sent or queued.)
        qtbot.waitUntil(lambda: len(_props(demo, "Open external link")) == 2, timeout=10_000)
        links = _props(demo, "Open external link")
        assert (
            links == [{**links[0], "url": demo.window.featured_url}] * 2
        )  # the link as tracked has no query: no ids in the event
        assert "d_id" not in json.dumps(links)

        # With telemetry off: no device id in the link, an opt-out request instead.
        demo.client.set_consent(False)
        qtbot.mouseClick(demo.window.featured_button, Qt.MouseButton.LeftButton)
        qtbot.waitUntil(lambda: len(browser.opened) == 2, timeout=10_000)
        query = parse_qs(urlsplit(browser.opened[1]).query)
        assert "d_id" not in query and query["optOutAnalytics"] == ["true"]
    finally:
        QDesktopServices.unsetUrlHandler("https")


def test_settings_toggles_are_saved_tracked_and_used(
    qtbot: QtBot, make_demo: Any, tmp_path: Path
) -> None:
    demo: Demo = make_demo()
    window = demo.window
    dialog = window.open_settings()
    qtbot.waitExposed(dialog)
    assert dialog.validate.isChecked() and not dialog.show_system.isChecked()
    for box in (dialog.validate, dialog.show_system):  # click on the box itself
        qtbot.mouseClick(box, Qt.MouseButton.LeftButton, pos=QPoint(8, box.height() // 2))
    assert dialog.system_warning.isVisible()
    dialog.close()
    saved = json.loads((demo.root / "settings.json").read_text())
    assert saved == {"show_system_drives": True, "validate_after_flash": False}
    toggles = _props(demo, "Toggle setting")
    assert [(t["setting"], t["value"]) for t in toggles] == [
        ("validateWriteOnSuccess", True),  # the value before the change, as Etcher sends
        ("showSystemDrives", False),
    ]
    raw = image_bytes(2 << 20)
    assert window.load_image(write_image(tmp_path, raw, "gz"))
    window.select_target(Target.file(tmp_path / "t.img"))
    assert window.start_flash()
    qtbot.waitUntil(lambda: window.state != "flashing", timeout=60_000)
    assert window.state == "done" and window.last_result.validation == "skipped"
    assert _props(demo, "Done")[0]["validation"] == "skipped"
    assert _props(demo, "Flash")[0]["validateWriteOnSuccess"] is False


def test_status_bar_shows_queue_and_last_upload(
    qtbot: QtBot, make_demo: Any, collector: CollectorProcess
) -> None:
    offline: Demo = make_demo(name="offline")  # no endpoint: events wait on disk
    offline.window.refresh_status()
    queued = offline.client.status()["queued"]
    assert queued >= 2
    assert offline.window.queued_label.text() == f"Events queued: {queued}"
    assert offline.window.upload_label.text() == "Last upload: never"
    assert offline.window.online_label.text() == "○ Not sending (no collector)"

    online: Demo = make_demo(collector.url, name="online")
    online.window.refresh_status()
    # Before the notice is answered nothing is sent, and the status bar says so.
    assert online.window.online_label.text() == "○ Not sending until the notice is answered"
    assert online.window.upload_label.text() == "Last upload: never"
    assert not online.client.flush(timeout=1)  # events wait: flush sends nothing yet
    assert collector.rows() == []
    answer_notice(qtbot, online)
    assert online.client.flush(timeout=20)
    qtbot.waitUntil(
        lambda: (
            online.window.upload_label.text().startswith("Last upload: ")
            and online.window.upload_label.text() != "Last upload: never"
        ),
        timeout=10_000,
    )
    assert collector.rows()
    assert online.window.queued_label.text() == "Events queued: 0"
    assert online.window.consent_label.text() == "Telemetry on"
    assert "Not sending" not in online.window.online_label.text()


def test_notice_stays_until_answered_and_is_not_shown_after_ok(
    qtbot: QtBot, make_demo: Any, tmp_path: Path
) -> None:
    demo: Demo = make_demo()
    notice = demo.window.notice
    assert notice is not None and notice.isVisible()
    assert demo.client.notice_shown and not demo.client.notice_answered
    demo.window.open_target_dialog().reject()
    assert notice.isVisible()  # using the app is not an answer
    # A second launch on the same data shows it again: it was never answered.
    demo.window.shutdown()
    demo.client.close()
    again: Demo = make_demo(name="root")
    assert again.window.notice is not None and again.window.notice.isVisible()
    answer_notice(qtbot, again)
    again.window.shutdown()
    again.client.close()
    third: Demo = make_demo(name="root")
    assert third.window.notice is None


def test_notice_answered_in_settings_hides_it(qtbot: QtBot, make_demo: Any) -> None:
    demo: Demo = make_demo()
    notice = demo.window.notice
    assert notice is not None and notice.isVisible()
    dialog = demo.window.open_settings()
    checkbox = dialog.telemetry.checkbox
    qtbot.mouseClick(checkbox, Qt.MouseButton.LeftButton)  # off: a choice answers the notice
    assert demo.client.notice_answered and not demo.client.enabled
    qtbot.waitUntil(lambda: not notice.isVisible(), timeout=10_000)


def test_unusable_image_is_explained_and_tracked_without_its_path(
    qtbot: QtBot, make_demo: Any, tmp_path: Path
) -> None:
    demo: Demo = make_demo()
    broken = tmp_path / "secret-name.img.xz"
    broken.write_bytes(b"plain text, not xz")
    assert not demo.window.load_image(broken)
    assert "not xz-compressed" in demo.window.image_error.text()
    assert demo.window.source is None
    assert not demo.window.target_card.button.isEnabled()
    errors = _props(demo, "Image error")
    assert errors and errors[0]["errorCode"] == "EBADIMAGE"
    assert "secret-name" not in json.dumps(demo.events())


def test_selected_drive_unplugged_while_idle_is_deselected(
    qtbot: QtBot, make_demo: Any, umockdev_drives: list[Any], tmp_path: Path
) -> None:
    demo: Demo = make_demo(drives=umockdev_drives)
    window = demo.window
    qtbot.waitUntil(lambda: len(demo.watcher.drives()) == len(umockdev_drives), timeout=10_000)
    assert window.load_image(write_image(tmp_path, image_bytes(1 << 20), "img"))
    dialog = window.open_target_dialog()
    assert dialog.select_device("/dev/sdb")
    dialog._accept_drive()
    assert window.target is not None and window.flash_card.button.isEnabled()

    demo.drives[:] = [d for d in demo.drives if d.device != "/dev/sdb"]  # pulled out
    demo.watcher.rescan()
    qtbot.waitUntil(lambda: window.target is None, timeout=10_000)
    assert "removed" in window.target_warning.text()
    assert not window.flash_card.button.isEnabled()
    toggles = _props(demo, "Toggle drive")
    assert [t["previouslySelected"] for t in toggles] == [False, True]


def test_closing_the_image_dialog_changes_nothing(qtbot: QtBot, make_demo: Any) -> None:
    demo: Demo = make_demo()
    driver = ModalDriver([lambda dialog: dialog.reject()])
    qtbot.mouseClick(demo.window.image_card.button, Qt.MouseButton.LeftButton)
    assert driver.pending == 0
    assert demo.window.source is None
    names = demo.names()
    assert names[-2:] == ["[Etcher] Open image selector", "[Etcher] Image selector closed"]


def test_outside_names_show_literally_in_tooltips_and_warnings(
    qtbot: QtBot, make_demo: Any, tmp_path: Path
) -> None:
    """Found by an outside audit: Qt guessed rich text in tooltips, so an image named
    ``<b>x</b>`` showed in bold and ``<img src=x>`` as a broken image, hiding the real name."""
    from PySide6.QtGui import QTextDocument

    from demo_app.ui.rich_text import literal

    def shown(text: str) -> str:
        document = QTextDocument()
        document.setHtml(text)
        return document.toPlainText()

    hostile = ["<b>BOLD</b>", "<img src=x onerror=alert(1)>", "a & b", "line 1\nline 2"]
    for text in hostile:
        assert shown(literal(text)) == text
    demo: Demo = make_demo()
    name = "<b>holiday <img src=x onerror=alert(1)> &amp;.img"  # no "/" in a file name
    image = write_image(tmp_path / "images", image_bytes(1 << 20), "img", name=name)
    assert demo.window.load_image(image)
    tooltip = demo.window.image_card.title.toolTip()
    assert shown(tooltip) == str(image)
