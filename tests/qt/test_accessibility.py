"""Every widget: each user-facing string goes through ``tr()``, each control has an accessible
name, mnemonics do not clash, and the widgets render (not blank) at a realistic size."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from PySide6.QtCore import Qt, QTranslator
from PySide6.QtWidgets import (
    QAbstractButton,
    QApplication,
    QComboBox,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QTableView,
    QTabWidget,
    QWidget,
)
from pytestqt.qtbot import QtBot

import telemetry
from telemetry.qt import ConsentNotice, EventInspector, TelemetrySettingsWidget
from tests.qt.conftest import focusable_controls

OPEN, CLOSE = "\u27ea", "\u27eb"


class _MarkingTranslator(QTranslator):
    """Wraps every string it is asked to translate, so untranslated strings stand out."""

    def translate(
        self, context: str, source: str, disambiguation: str | None = None, n: int = -1
    ) -> str:
        return f"{OPEN}{source}{CLOSE}"

    def isEmpty(self) -> bool:
        return False


@pytest.fixture
def marking_translator(qapp: QApplication) -> Iterator[None]:
    translator = _MarkingTranslator()
    assert qapp.installTranslator(translator)
    yield
    qapp.removeTranslator(translator)


def _build(kind: str, client: Any) -> QWidget:
    if kind == "notice":
        return ConsentNotice(client)
    if kind == "settings":
        return TelemetrySettingsWidget(client)
    return EventInspector(client, refresh_interval=0)


KINDS = ["notice", "settings", "inspector"]


def _texts(root: QWidget) -> Iterator[tuple[str, str]]:
    """(where, text) for every user-facing string of ``root`` and its children."""
    if root.windowTitle():
        yield "windowTitle", root.windowTitle()
    for w in [root, *root.findChildren(QWidget)]:
        if not w.isVisibleTo(root) and w is not root:
            continue
        name = type(w).__name__
        if isinstance(w, QLabel) and w.text():
            yield f"{name}.text", w.text()
        if isinstance(w, QAbstractButton) and w.text():
            yield f"{name}.text", w.text()
        if isinstance(w, (QLineEdit, QPlainTextEdit)) and w.placeholderText():
            yield f"{name}.placeholder", w.placeholderText()
        if isinstance(w, QTabWidget):
            for i in range(w.count()):
                yield "tab", w.tabText(i)
        if isinstance(w, QTableView) and w.model() is not None:
            model = w.model()
            for column in range(model.columnCount()):
                yield "header", str(model.headerData(column, Qt.Orientation.Horizontal))
        if isinstance(w, QComboBox) and w.count():
            yield "combo[0]", w.itemText(0)  # the rest are event types from the data
        if w.accessibleName():
            yield f"{name}.accessibleName", w.accessibleName()
        if w.accessibleDescription():
            yield f"{name}.accessibleDescription", w.accessibleDescription()


@pytest.mark.parametrize("kind", KINDS)
def test_every_user_facing_string_goes_through_tr(
    qtbot: QtBot, client: telemetry.Client, marking_translator: None, kind: str
) -> None:
    client.track("Flash", {"driveCount": 1})
    widget = _build(kind, client)
    qtbot.addWidget(widget)
    widget.show()
    texts = list(_texts(widget))
    assert len(texts) >= 5
    for where, text in texts:
        assert OPEN in text and CLOSE in text, (where, text)


@pytest.mark.parametrize("kind", KINDS)
def test_every_control_has_an_accessible_name(
    qtbot: QtBot, client: telemetry.Client, kind: str
) -> None:
    widget = _build(kind, client)
    qtbot.addWidget(widget)
    widget.show()
    controls = focusable_controls(widget)
    assert controls
    for control in controls:
        assert control.accessibleName().strip(), control


@pytest.mark.parametrize("kind", KINDS)
def test_mnemonics_are_unique(qtbot: QtBot, client: telemetry.Client, kind: str) -> None:
    widget = _build(kind, client)
    qtbot.addWidget(widget)
    widget.show()
    keys: list[str] = []
    for w in widget.findChildren(QWidget):
        if not w.isVisibleTo(widget):
            continue
        text = ""
        if isinstance(w, (QAbstractButton, QLabel)):
            text = w.text()
        if isinstance(w, QTabWidget):
            keys += _mnemonics(w.tabText(i) for i in range(w.count()))
        keys += _mnemonics([text])
    assert keys, "no mnemonics at all"
    assert len(keys) == len(set(keys)), sorted(keys)


def _mnemonics(texts: Any) -> list[str]:
    found = []
    for text in texts:
        match = re.search(r"&([^&\s])", text.replace("&&", ""))
        if match:
            found.append(match.group(1).lower())
    return found


@pytest.mark.parametrize("kind", KINDS)
def test_widgets_work_with_the_noop_client(
    qtbot: QtBot, caplog: pytest.LogCaptureFixture, kind: str
) -> None:
    """Builds without a project token use the no-op client; the widgets must still work."""
    client = telemetry.create_noop_client()
    widget = _build(kind, client)
    qtbot.addWidget(widget)
    widget.show()
    qtbot.waitExposed(widget)
    if isinstance(widget, TelemetrySettingsWidget):
        qtbot.mouseClick(widget.checkbox, Qt.MouseButton.LeftButton)
    if isinstance(widget, EventInspector):
        widget.reload()
        assert widget.shown_rows() == []
    assert widget.isVisible() or isinstance(widget, ConsentNotice)
    assert not [r for r in caplog.records if r.levelname in ("ERROR", "CRITICAL")]
