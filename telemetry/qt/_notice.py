"""``ConsentNotice``: the first-run banner saying, in plain words, what is collected.

It lists the fields sent and those never sent, offers "Turn off" one click (or one key) away
and a "Show me the data" link to the event inspector. Showing it for the first time tells the
client (``client.mark_notice_shown()``), which, under the opt-out policy, is what allows the
first upload (consent.md P-2). Turning telemetry off from here purges the queue unsent.
"""

from __future__ import annotations

import logging
from typing import Any

from PySide6.QtCore import Qt, Signal, Slot
from PySide6.QtGui import QKeyEvent, QPalette, QShowEvent
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from telemetry.qt._bridge import ClientWatcher
from telemetry.qt._common import LinkButton, name_widget

__all__ = ["ConsentNotice"]

log = logging.getLogger(__name__)


def _policy_is_opt_in(client: Any) -> bool:
    return str(getattr(client, "consent_policy", "opt_out")) == "opt_in"


def _state(client: Any) -> str:
    return str(getattr(client, "consent_state", "unknown"))


class ConsentNotice(QFrame):
    """A dismissible banner shown on first run.

    Signals: ``dismissed()`` (OK, or Escape), ``turnedOff()`` (telemetry was turned off from
    here), ``turnedOn()`` (opt-in policy: the user allowed it), ``showDataRequested()`` (the
    "Show me the data" link). The banner hides itself after OK, Turn off or Allow.
    """

    dismissed = Signal()
    turnedOff = Signal()
    turnedOn = Signal()
    showDataRequested = Signal()

    @staticmethod
    def should_show(client: Any) -> bool:
        """True when the notice was not shown yet, the environment does not block telemetry
        and the user has not already turned it off."""
        try:
            return (
                not bool(client.notice_shown)
                and client.disabled_by_environment is None
                and _state(client) != "denied"
            )
        except Exception:  # telemetry never breaks the app
            log.exception("cannot read the consent state")
            return False

    def __init__(self, client: Any, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._client = client
        self._marked = False
        self._ask = _policy_is_opt_in(client) and _state(client) == "unknown"
        self.setObjectName("telemetryConsentNotice")
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.setAutoFillBackground(True)
        self.setBackgroundRole(QPalette.ColorRole.AlternateBase)
        self.setForegroundRole(QPalette.ColorRole.Text)
        self.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Maximum)
        name_widget(
            self,
            self.tr("Usage statistics notice"),
            self.tr("What this app reports about its use, and how to turn it off"),
        )

        self.title = QLabel(self._title_text(), self)
        font = self.title.font()
        font.setBold(True)
        font.setPointSizeF(font.pointSizeF() * 1.15)
        self.title.setFont(font)
        self.title.setWordWrap(True)
        name_widget(self.title, self.title.text())

        self.body = QLabel(self._body_html(), self)
        self.body.setTextFormat(Qt.TextFormat.RichText)
        self.body.setWordWrap(True)
        self.body.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        name_widget(self.body, self.tr("What is sent and what is never sent"), self.plain_text())
        for label in (self.title, self.body):
            label.setForegroundRole(QPalette.ColorRole.Text)

        self.show_data_button = LinkButton(self.tr("&Show me the data"), self)
        name_widget(
            self.show_data_button,
            self.tr("Show me the data"),
            self.tr("Open the list of events kept on this computer and sent"),
        )
        if self._ask:
            off_text, ok_text = self.tr("&Don't allow"), self.tr("&Allow")
            off_name, ok_name = self.tr("Don't allow"), self.tr("Allow")
        else:
            off_text, ok_text = self.tr("Turn &off"), self.tr("O&K")
            off_name, ok_name = self.tr("Turn off"), self.tr("OK")
        self.turn_off_button = QPushButton(off_text, self)
        name_widget(
            self.turn_off_button,
            off_name,
            self.tr("Stop sending usage statistics and delete what was kept"),
        )
        self.ok_button = QPushButton(ok_text, self)
        name_widget(
            self.ok_button,
            ok_name,
            self.tr("Send usage statistics as described")
            if self._ask
            else self.tr("Close this notice; usage statistics stay on"),
        )

        buttons = QHBoxLayout()
        buttons.addWidget(self.show_data_button)
        buttons.addStretch(1)
        buttons.addWidget(self.turn_off_button)
        buttons.addWidget(self.ok_button)
        layout = QVBoxLayout(self)
        layout.addWidget(self.title)
        layout.addWidget(self.body)
        layout.addLayout(buttons)
        layout.addStretch(1)  # taller than needed: keep the text and buttons together on top
        QWidget.setTabOrder(self.show_data_button, self.turn_off_button)
        QWidget.setTabOrder(self.turn_off_button, self.ok_button)

        self.show_data_button.clicked.connect(self.showDataRequested)
        self.turn_off_button.clicked.connect(self._turn_off)
        self.ok_button.clicked.connect(self._ok)
        self._watcher = ClientWatcher(client, self)
        self._watcher.changed.connect(self._on_client_changed)

    # ------------------------------------------------------------------ text

    def _title_text(self) -> str:
        if self._ask:
            return self.tr("May this app send anonymous usage statistics?")
        return self.tr("This app sends anonymous usage statistics")

    def _paragraphs(self) -> list[str]:
        if self._ask:
            intro = self.tr(
                "Nothing is recorded or sent unless you allow it. If you do, the app sends a "
                "few facts about how it is used, to show its makers which features matter and "
                "where things go wrong. You can change your mind at any time in Settings."
            )
        else:
            intro = self.tr(
                "To show its makers which features are used and where things go wrong, this "
                "app sends a few facts about how it is used. You can turn this off now, or at "
                "any time in Settings; what was kept is then deleted."
            )
        sent = self.tr(
            "What is sent: the names of the actions you take (such as “Flash” or “Select "
            "drive”), the app version, your operating system and its version, your language "
            "setting, a random device ID made up for this app only, and the types of drives "
            "you use (such as “USB flash drive” or “SD card”) with their rough size."
        )
        never = self.tr(
            "Never sent: file names, folder paths, your user name, drive serial numbers. "
            "Your IP address is not stored."
        )
        return [intro, sent, never]

    def _body_html(self) -> str:
        from html import escape

        return "".join(f"<p>{escape(p)}</p>" for p in self._paragraphs())

    def plain_text(self) -> str:
        """The notice's words without markup (title and paragraphs)."""
        return "\n\n".join([self._title_text(), *self._paragraphs()])

    # ------------------------------------------------------------------ events

    def showEvent(self, event: QShowEvent) -> None:
        super().showEvent(event)
        if not self._marked:
            self._marked = True
            try:
                self._client.mark_notice_shown()
            except Exception:  # telemetry never breaks the app
                log.exception("mark_notice_shown failed")

    def keyPressEvent(self, event: QKeyEvent) -> None:
        if event.key() == Qt.Key.Key_Escape:
            self.hide()
            self.dismissed.emit()
            event.accept()
            return
        super().keyPressEvent(event)

    @Slot()
    def _on_client_changed(self) -> None:
        # Turned off elsewhere (Settings, or the environment): the notice has nothing to offer.
        if _state(self._client) == "denied":
            self.hide()

    @Slot()
    def _turn_off(self) -> None:
        self._apply(False)
        self.hide()
        self.turnedOff.emit()

    @Slot()
    def _ok(self) -> None:
        if self._ask:
            self._apply(True)
            self.hide()
            self.turnedOn.emit()
            return
        self.hide()
        self.dismissed.emit()

    def _apply(self, granted: bool) -> None:
        try:
            self._client.set_consent(granted)
        except Exception:  # telemetry never breaks the app
            log.exception("set_consent(%s) failed", granted)
