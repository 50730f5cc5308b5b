"""The demo's finish, each detail as the user meets it: the title and icon, step cards as tall
as their content, wording that fits loop and zram devices (listed from real udev data under
umockdev), figures that never break across lines, the picked file's full name, and the
copy-the-link fallback when no browser opens.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import QObject, Qt, QUrl, Slot
from PySide6.QtGui import QDesktopServices, QGuiApplication, QTextDocument, QTextLayout, QTextOption
from PySide6.QtWidgets import QApplication, QLabel
from pytestqt.qtbot import QtBot

from demo_app.flasher import Target
from demo_app.targets import drive_rows
from demo_app.ui.main_window import APP_NAME, keep_figures_together
from telemetry.drives import Drive
from tests.drives._umockdev import run_listing

from .conftest import Demo, _drive, image_bytes, write_image

#: A number and its unit, joined by any kind of space.
_FIGURE = re.compile(r"\(?\d+(?:\.\d+)?[ \u00a0](?:[kMGT]?B(?:/\u2060?s)?|s)\b\)?")


@pytest.fixture(scope="module")
def virtual_drives(tmp_path_factory: pytest.TempPathFactory) -> list[Drive]:
    """``/dev/loop0`` (attached), ``/dev/loop1`` (unused), ``/dev/zram0`` (not set up) and
    ``/dev/zram1`` (4 GiB), listed by ``telemetry.drives`` from recorded udev data."""
    listed = run_listing(
        ["loop.umockdev", "zram.umockdev"], tmp_path_factory.mktemp("umockdev"), procfs="desktop"
    )
    return [_drive(item["drive"]) for item in listed]


def test_title_is_the_app_name_once_with_the_app_icon(make_demo: Any) -> None:
    demo: Demo = make_demo()
    window = demo.window
    assert window.windowTitle() == APP_NAME
    assert "—" not in window.windowTitle() and "0." not in window.windowTitle()
    assert not window.windowIcon().isNull()
    assert window.windowIcon().pixmap(48, 48).toImage().pixelColor(24, 24).alpha() == 255


def test_step_cards_are_as_tall_as_their_content(qtbot: QtBot, make_demo: Any) -> None:
    demo: Demo = make_demo()
    window = demo.window
    window.resize(900, 760)
    cards = [window.image_card, window.target_card, window.flash_card]
    content = max(card.sizeHint().height() for card in cards)
    qtbot.waitUntil(lambda: all(card.height() == cards[0].height() for card in cards))
    for card in cards:
        assert content - 2 <= card.height() <= content + 2, (card.height(), content)
    # The spare height is around the row of cards, not inside them.
    assert cards[0].height() < window.centralWidget().height() // 2


def test_loop_and_zram_devices_are_described_as_what_they_are(
    qtbot: QtBot, make_demo: Any, virtual_drives: list[Drive]
) -> None:
    rows = {
        r.drive.device: r for r in drive_rows(virtual_drives, image_size=None, show_system=True)
    }
    assert set(rows) == {"/dev/loop0", "/dev/loop1", "/dev/zram0", "/dev/zram1"}
    for row in rows.values():
        assert not row.enabled and row.reason is not None
        assert "card" not in row.reason.lower(), row.reason
    assert rows["/dev/loop1"].reason is not None and "loop" in rows["/dev/loop1"].reason.lower()
    assert rows["/dev/loop1"].title.endswith("unused")
    assert rows["/dev/zram0"].reason is not None and "zram" in rows["/dev/zram0"].reason
    assert rows["/dev/loop0"].reason is not None and "Loop device" in rows["/dev/loop0"].reason
    assert rows["/dev/zram1"].reason is not None and "zram" in rows["/dev/zram1"].reason
    # As the user sees them in the target list.
    demo: Demo = make_demo(drives=virtual_drives)
    qtbot.waitUntil(lambda: len(demo.watcher.drives()) == len(virtual_drives), timeout=10_000)
    dialog = demo.window.open_target_dialog()
    dialog.show_system.setChecked(True)
    texts = [dialog.list.item(i).text() for i in range(dialog.list.count())]
    assert len(texts) == 4
    assert not any("insert a card" in text for text in texts), texts


def _line_breaks(label: QLabel, width: int) -> list[int]:
    """Where the label's text wraps (character offsets) at ``width`` pixels, laid out as
    QLabel lays out word-wrapped text."""
    layout = QTextLayout(label.text(), label.font())
    option = QTextOption()
    option.setWrapMode(QTextOption.WrapMode.WordWrap)
    layout.setTextOption(option)
    layout.beginLayout()
    breaks = []
    while True:
        line = layout.createLine()
        if not line.isValid():
            break
        line.setLineWidth(width)
        breaks.append(line.textStart() + line.textLength())
    layout.endLayout()
    return breaks[:-1]


def test_no_line_breaks_inside_a_figure(qtbot: QtBot, make_demo: Any, tmp_path: Path) -> None:
    assert keep_figures_together("4.2 MB in 0.1 s (29.6 MB/s)") == (
        "4.2\u00a0MB in 0.1\u00a0s (29.6\u00a0MB/\u2060s)"
    )
    assert keep_figures_together("12 seconds, 3 sessions") == "12 seconds, 3 sessions"
    demo: Demo = make_demo()
    window = demo.window
    assert window.load_image(write_image(tmp_path, image_bytes(4 << 20), "gz"))
    window.select_target(Target.file(tmp_path / "target.img"))
    assert window.start_flash()
    qtbot.waitUntil(lambda: window.state == "done", timeout=120_000)
    label = window.flash_status
    text = label.text()
    figures = [m.span() for m in _FIGURE.finditer(text)]
    assert len(figures) >= 3, text  # size, duration, throughput
    assert re.search(r"\(\d+\.\d\u00a0MB/\u2060s\)", text), text
    for width in range(40, 400, 3):  # every width from very narrow to one line
        for brk in _line_breaks(label, width):
            assert not any(start < brk < end for start, end in figures), (width, text, brk)


def test_the_picked_file_is_shown_by_its_full_name(make_demo: Any, tmp_path: Path) -> None:
    demo: Demo = make_demo()
    window = demo.window
    image = write_image(tmp_path, image_bytes(1 << 20), "xz", name="test.img")
    assert image.name == "test.img.xz"
    assert window.load_image(image)
    assert "test.img.xz" in window.image_card.title.text()
    tooltip = QTextDocument()
    tooltip.setHtml(window.image_card.title.toolTip())  # shown exactly (see rich_text.literal)
    assert tooltip.toPlainText() == str(image)
    archive = write_image(tmp_path, image_bytes(1 << 20), "zip", name="raspios.img")
    assert window.load_image(archive)
    assert "raspios.zip" in window.image_card.title.text()
    assert window.image_card.detail.text().startswith("raspios.img")  # the image inside


class _NoBrowser(QObject):
    """A desktop where opening a URL fails: the handler Qt calls has no such method, so
    ``QDesktopServices.openUrl`` returns False, as it does when no browser can be started."""


class _Browser(QObject):
    def __init__(self) -> None:
        super().__init__()
        self.opened: list[str] = []

    @Slot(QUrl)
    def open(self, url: QUrl) -> None:
        self.opened.append(url.toString())


def test_learn_more_without_a_browser_shows_the_link_to_copy(qtbot: QtBot, make_demo: Any) -> None:
    demo: Demo = make_demo()
    window = demo.window
    browser = _Browser()
    QDesktopServices.setUrlHandler("https", browser, "open")
    try:  # a browser opens: no dialog
        qtbot.mouseClick(window.featured_button, Qt.MouseButton.LeftButton)
        assert len(browser.opened) == 1 and window.link_dialog is None
    finally:
        QDesktopServices.unsetUrlHandler("https")
    nobody = _NoBrowser()
    QDesktopServices.setUrlHandler("https", nobody, "noSuchMethod")
    try:
        qtbot.mouseClick(window.featured_button, Qt.MouseButton.LeftButton)
    finally:
        QDesktopServices.unsetUrlHandler("https")
    dialog = window.link_dialog
    assert dialog is not None
    qtbot.waitExposed(dialog)
    assert dialog.field.text() == window.featured_link()
    assert dialog.field.text().startswith(window.featured_url)
    assert dialog.field.isReadOnly() and dialog.field.selectedText() == dialog.field.text()
    QGuiApplication.clipboard().clear()
    qtbot.mouseClick(dialog.copy_button, Qt.MouseButton.LeftButton)
    assert QApplication.clipboard().text() == dialog.field.text()
    assert "Copied" in dialog.copied.text()
    dialog.reject()
