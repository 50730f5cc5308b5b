"""``TelemetrySettingsWidget``: the one toggle that turns telemetry on or off, without a restart.

Unchecking it calls ``client.set_consent(False)``: recording stops, the queue, counters, sent
log and device id are deleted, and a deletion request is queued for a device id whose events
may have left the machine. Checking it again starts over with a new random device id, so the
old and new data cannot be linked. Either is also an answer to the first-run notice. When
``DO_NOT_TRACK`` (or ``TELEMETRY_DISABLED``) blocks telemetry, the box is disabled and says so;
the stored choice is kept for when the variable is gone.
"""

from __future__ import annotations

import logging

from PySide6.QtCore import Signal, Slot
from PySide6.QtWidgets import QCheckBox, QHBoxLayout, QLabel, QVBoxLayout, QWidget

from telemetry._protocol import TelemetryClient
from telemetry.consent import ConsentPolicy, ConsentState
from telemetry.qt._bridge import ClientWatcher
from telemetry.qt._common import LinkButton, name_widget

__all__ = ["TelemetrySettingsWidget"]

log = logging.getLogger(__name__)


class TelemetrySettingsWidget(QWidget):
    """The "Anonymously report errors and usage statistics" checkbox and its explanation.

    Signals: ``toggled(bool)`` after the user's choice was applied with
    ``client.set_consent()``; ``showDataRequested()`` from the "Show me the data" link.
    The widget follows changes made elsewhere (the notice's "Turn off") through the client's
    listener.
    """

    toggled = Signal(bool)
    showDataRequested = Signal()

    def __init__(self, client: TelemetryClient, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._client = client
        self.setObjectName("telemetrySettings")
        name_widget(self, self.tr("Usage statistics settings"))

        self.checkbox = QCheckBox(self.tr("&Anonymously report errors and usage statistics"), self)
        name_widget(
            self.checkbox,
            self.tr("Anonymously report errors and usage statistics"),
            self.tr("When off, nothing is recorded or sent and the data kept is deleted"),
        )
        self.explanation = QLabel(
            self.tr(
                "Sends the events the first-run notice lists, each with the app and system "
                "versions, your language setting and a random device ID; “Show me the data” "
                "shows each one exactly as sent. Turning this off deletes what is kept on this "
                "computer and asks the server to delete what it received."
            ),
            self,
        )
        self.explanation.setWordWrap(True)
        name_widget(self.explanation, self.tr("What is reported"), self.explanation.text())
        self.environment_label = QLabel(self)
        self.environment_label.setWordWrap(True)
        font = self.environment_label.font()
        font.setBold(True)
        self.environment_label.setFont(font)
        name_widget(self.environment_label, self.tr("Disabled by environment"))
        self.status_label = QLabel(self)
        self.status_label.setWordWrap(True)
        name_widget(self.status_label, self.tr("Current state"))
        self.show_data_button = LinkButton(self.tr("Show me the &data"), self)
        name_widget(
            self.show_data_button,
            self.tr("Show me the data"),
            self.tr("Open the list of events kept on this computer and sent"),
        )

        layout = QVBoxLayout(self)
        layout.addWidget(self.checkbox)
        layout.addWidget(self.explanation)
        layout.addWidget(self.environment_label)
        row = QHBoxLayout()
        row.addWidget(self.status_label, 1)
        row.addWidget(self.show_data_button)
        layout.addLayout(row)
        layout.addStretch(1)
        QWidget.setTabOrder(self.checkbox, self.show_data_button)

        self.checkbox.clicked.connect(self._on_clicked)
        self.show_data_button.clicked.connect(self.showDataRequested)
        self._watcher = ClientWatcher(client, self)
        self._watcher.changed.connect(self.refresh)
        self.refresh()

    # ------------------------------------------------------------------ state

    def blocked_by(self) -> str | None:
        """The environment variable that turns telemetry off, if any."""
        try:
            value = self._client.disabled_by_environment
        except Exception:
            log.exception("cannot read disabled_by_environment")
            return None
        return None if value is None else str(value)

    def _reporting(self) -> bool:
        """Whether the stored choice and policy mean "on"."""
        state = self._client.consent_state
        if state is ConsentState.UNKNOWN:
            return self._client.consent_policy is not ConsentPolicy.OPT_IN
        return state is ConsentState.GRANTED

    def _status_text(self, on: bool) -> str:
        if not on:
            return self.tr("Usage statistics are off. Nothing is recorded or sent.")
        if self._client.uploading or self._client.notice_answered:
            return self.tr("Usage statistics are on.")
        return self.tr(
            "Usage statistics are on. Nothing is sent before the first-run notice is answered."
        )

    @Slot()
    def refresh(self) -> None:
        """Show the client's current choice (also called on every client change)."""
        blocked = self.blocked_by()
        try:
            on = self._reporting()
        except Exception:
            log.exception("cannot read the consent state")
            on = False
        self.checkbox.setChecked(on and blocked is None)
        self.checkbox.setEnabled(blocked is None)
        if blocked is not None:
            self.environment_label.setText(
                self.tr("Disabled by environment ({0}): nothing is recorded or sent.").format(
                    blocked
                )
            )
            self.environment_label.setVisible(True)
            self.status_label.setText(
                self.tr("Unset {0} and restart the app to choose here.").format(blocked)
            )
        else:
            self.environment_label.setText("")
            self.environment_label.setVisible(False)
            try:
                status = self._status_text(on)
            except Exception:
                log.exception("cannot read the upload state")
                status = ""
            self.status_label.setText(status)
        self.status_label.setAccessibleDescription(self.status_label.text())

    @Slot(bool)
    def _on_clicked(self, checked: bool) -> None:
        try:
            self._client.set_consent(checked)
        except Exception:  # telemetry never breaks the app
            log.exception("set_consent(%s) failed", checked)
        self.refresh()
        self.toggled.emit(checked)
