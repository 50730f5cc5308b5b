"""``ConsentNotice``: the first-run banner saying, in plain words, what is collected.

It lists what every event carries and, from the app's declared event catalogue, each event the
app may send and each detail it may carry, so the words cannot promise less than is sent. It
offers "Turn off" one click (or one key) away and a "Show me the data" link to the event
inspector. Showing it tells the client (``mark_notice_shown()``), which allows nothing by
itself; OK, Escape or closing it answers it (``mark_notice_answered()``), and only then may
uploads start under the opt-out policy. "Turn off" is an answer too: ``set_consent(False)``
purges the queue unsent before anything could be uploaded.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from html import escape

from PySide6.QtCore import Qt, Signal, Slot
from PySide6.QtGui import QCloseEvent, QKeyEvent, QPalette, QShowEvent
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QScrollArea,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from telemetry._protocol import TelemetryClient
from telemetry.consent import ConsentPolicy, ConsentState
from telemetry.qt._bridge import ClientWatcher
from telemetry.qt._common import LinkButton, name_widget
from telemetry.qt._disclosure import Disclosure, disclosure

__all__ = ["ConsentNotice"]

log = logging.getLogger(__name__)


def _asks_first(client: TelemetryClient) -> bool:
    """Opt-in policy and no choice yet: the notice asks instead of informing."""
    return (
        client.consent_policy is ConsentPolicy.OPT_IN
        and client.consent_state is ConsentState.UNKNOWN
    )


def _html(text: str) -> str:
    # quote=False: no &quot; or &#x27; entities, which read as mnemonics to accessibility tools.
    return escape(text, quote=False)


class ConsentNotice(QFrame):
    """A banner shown until the user answers it.

    Signals: ``dismissed()`` (OK, Escape, or closing it as a window), ``turnedOff()``
    (telemetry was turned off from here), ``turnedOn()`` (opt-in policy: the user allowed
    it), ``showDataRequested()`` (the "Show me the data" link). The banner hides itself once
    answered, here or elsewhere (Settings).
    """

    dismissed = Signal()
    turnedOff = Signal()
    turnedOn = Signal()
    showDataRequested = Signal()

    @staticmethod
    def should_show(client: TelemetryClient) -> bool:
        """True while the notice is unanswered, the environment does not block telemetry and
        the user has not already turned it off."""
        try:
            return (
                not client.notice_answered
                and client.disabled_by_environment is None
                and client.consent_state is not ConsentState.DENIED
            )
        except Exception:  # telemetry never breaks the app
            log.exception("cannot read the consent state")
            return False

    def __init__(self, client: TelemetryClient, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._client = client
        self._marked = False
        self._ask = _asks_first(client)
        self._declared: Disclosure | None = None
        if client.catalogue is not None:
            self._declared = disclosure(client.catalogue)
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
        layout = QVBoxLayout(self)
        self._build_text(layout)
        layout.addLayout(self._build_buttons())
        layout.addStretch(1)  # taller than needed: keep the text and buttons together on top
        self.show_data_button.clicked.connect(self.showDataRequested)
        self.turn_off_button.clicked.connect(self._turn_off)
        self.ok_button.clicked.connect(self._ok)
        self._watcher = ClientWatcher(client, self)
        self._watcher.changed.connect(self._on_client_changed)

    # ------------------------------------------------------------------ building

    def _build_text(self, layout: QVBoxLayout) -> None:
        self.title = QLabel(self._title_text(), self)
        font = self.title.font()
        font.setBold(True)
        font.setPointSizeF(font.pointSizeF() * 1.15)
        self.title.setFont(font)
        self.title.setWordWrap(True)
        name_widget(self.title, self.title.text())
        self.body = self._rich_label("".join(f"<p>{_html(p)}</p>" for p in self._paragraphs()))
        name_widget(self.body, self.tr("What is sent"), "\n\n".join(self._paragraphs()))
        # Never squeezed below the height its wrapped text needs: no sentence may be cut off.
        self.body.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Minimum)
        layout.addWidget(self.title)
        layout.addWidget(self.body)
        self.details: QScrollArea | None = None
        self.details_label: QLabel | None = None
        if self._declared is not None:
            self.details_label = self._rich_label(self._declared_html(self._declared))
            name_widget(
                self.details_label,
                self.tr("The events and details this app may send"),
                "\n".join(self._declared_lines(self._declared)),
            )
            self.details = QScrollArea(self)
            self.details.setWidget(self.details_label)
            self.details.setWidgetResizable(True)
            self.details.setFrameShape(QFrame.Shape.NoFrame)
            lines = self.fontMetrics().lineSpacing()
            self.details.setMinimumHeight(lines * 5)
            self.details.setMaximumHeight(lines * 9)
            self.details.setFocusPolicy(Qt.FocusPolicy.StrongFocus)  # scrolled with the keys
            name_widget(self.details, self.tr("The events and details this app may send"))
            layout.addWidget(self.details)

    def _rich_label(self, html: str) -> QLabel:
        label = QLabel(html, self)
        label.setTextFormat(Qt.TextFormat.RichText)
        label.setWordWrap(True)
        label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        label.setForegroundRole(QPalette.ColorRole.Text)
        return label

    def _build_buttons(self) -> QHBoxLayout:
        self.show_data_button = LinkButton(self.tr("&Show me the data"), self)
        name_widget(
            self.show_data_button,
            self.tr("Show me the data"),
            self.tr("Open the list of events kept on this computer and sent"),
        )
        if self._ask:
            off_text, ok_text = self.tr("&Don't allow"), self.tr("&Allow")
            off_name, ok_name = self.tr("Don't allow"), self.tr("Allow")
            ok_hint = self.tr("Send usage statistics as described")
        else:
            off_text, ok_text = self.tr("Turn &off"), self.tr("O&K")
            off_name, ok_name = self.tr("Turn off"), self.tr("OK")
            ok_hint = self.tr("Close this notice; usage statistics stay on")
        self.turn_off_button = QPushButton(off_text, self)
        name_widget(
            self.turn_off_button,
            off_name,
            self.tr("Stop sending usage statistics and delete what was kept"),
        )
        self.ok_button = QPushButton(ok_text, self)
        name_widget(self.ok_button, ok_name, ok_hint)
        buttons = QHBoxLayout()
        buttons.addWidget(self.show_data_button)
        buttons.addStretch(1)
        buttons.addWidget(self.turn_off_button)
        buttons.addWidget(self.ok_button)
        QWidget.setTabOrder(self.show_data_button, self.turn_off_button)
        QWidget.setTabOrder(self.turn_off_button, self.ok_button)
        return buttons

    # ------------------------------------------------------------------ text

    def _title_text(self) -> str:
        if self._ask:
            return self.tr("May this app send anonymous usage statistics?")
        return self.tr("This app sends anonymous usage statistics")

    def _paragraphs(self) -> list[str]:
        if self._ask:
            intro = self.tr(
                "Nothing is recorded or sent unless you allow it. If you do, the app sends "
                "facts about how it is used, to show its makers which features matter and "
                "where things go wrong. You can change your mind at any time in Settings."
            )
        else:
            intro = self.tr(
                "To show its makers which features are used and where things go wrong, this "
                "app records facts about how it is used. Nothing is sent before you answer "
                "this notice. You can turn this off now, or at any time in Settings; what was "
                "kept is then deleted."
            )
        every = self.tr(
            "Every event carries its name and time, the app version, your operating system "
            "and its version, your language setting, the version of the telemetry library, "
            "and a random device ID and session number made up for this app only."
        )
        if self._declared is None:
            what = self.tr(
                "Which events and details are sent is up to this app: “Show me the data” "
                "shows each one exactly as it is kept and as it was sent."
            )
        else:
            what = self.tr(
                "The events this app may send and the details they may carry are listed "
                "below. Nothing else can be recorded: an event or detail not listed is refused "
                "before it is stored. “Show me the data” shows each event exactly as sent."
            )
        return [intro, every, what]

    def _declared_lines(self, declared: Disclosure) -> list[str]:
        lines = [self.tr("Events:")]
        lines += [f"• {name}: {text}" for name, text in declared.events]
        if declared.properties:
            lines.append(self.tr("Details sent with these events:"))
            lines += [f"• {name}: {text}" for name, text in declared.properties]
        return lines

    def _declared_html(self, declared: Disclosure) -> str:
        def items(pairs: tuple[tuple[str, str], ...]) -> str:
            rows = "".join(f"<li><b>{_html(n)}</b>: {_html(t)}</li>" for n, t in pairs)
            return f"<ul>{rows}</ul>"

        html = f"<p><b>{_html(self.tr('Events:'))}</b></p>{items(declared.events)}"
        if declared.properties:
            heading = _html(self.tr("Details sent with these events:"))
            html += f"<p><b>{heading}</b></p>{items(declared.properties)}"
        return html

    def plain_text(self) -> str:
        """The notice's words without markup: title, paragraphs and the declared lists."""
        parts = [self._title_text(), *self._paragraphs()]
        if self._declared is not None:
            parts.append("\n".join(self._declared_lines(self._declared)))
        return "\n\n".join(parts)

    # ------------------------------------------------------------------ events

    def showEvent(self, event: QShowEvent) -> None:
        super().showEvent(event)
        if not self._marked:
            self._marked = True
            self._call(self._client.mark_notice_shown)

    def keyPressEvent(self, event: QKeyEvent) -> None:
        if event.key() == Qt.Key.Key_Escape:
            event.accept()
            self._dismiss()
            return
        super().keyPressEvent(event)

    def closeEvent(self, event: QCloseEvent) -> None:
        # Shown as a window and closed by the user (not by the app tearing it down): an answer.
        if self.isWindow() and event.spontaneous() and self.isVisible():
            self._call(self._client.mark_notice_answered)
            self.dismissed.emit()
        super().closeEvent(event)

    @Slot()
    def _on_client_changed(self) -> None:
        # Answered or turned off elsewhere (Settings, another window): nothing left to offer.
        try:
            answered = self._client.notice_answered
            denied = self._client.consent_state is ConsentState.DENIED
        except Exception:  # telemetry never breaks the app
            log.exception("cannot read the consent state")
            return
        if answered or denied:
            self.hide()

    def _dismiss(self) -> None:
        self._call(self._client.mark_notice_answered)
        self.hide()
        self.dismissed.emit()

    @Slot()
    def _turn_off(self) -> None:
        # set_consent(False) is itself the answer: answering first would allow an upload.
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
        self._dismiss()

    def _apply(self, granted: bool) -> None:
        try:
            self._client.set_consent(granted)
        except Exception:  # telemetry never breaks the app
            log.exception("set_consent(%s) failed", granted)

    @staticmethod
    def _call(method: Callable[[], None]) -> None:
        try:
            method()
        except Exception:  # telemetry never breaks the app
            log.exception("%s failed", getattr(method, "__name__", "a client call"))
