"""The Settings dialog: the telemetry toggle from ``telemetry.qt`` plus the demo's own options."""

from __future__ import annotations

from PySide6.QtCore import Signal, Slot
from PySide6.QtWidgets import (
    QCheckBox,
    QDialog,
    QDialogButtonBox,
    QGroupBox,
    QLabel,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from demo_app.settings import DemoSettings
from demo_app.ui import theme
from telemetry import TelemetryClient
from telemetry.qt import TelemetrySettingsWidget

__all__ = ["SettingsDialog"]


class SettingsDialog(QDialog):
    """Settings. Signals: ``settingToggled(name, previous_value)`` for every change the user
    makes (telemetry included, with Etcher's setting name ``errorReporting``),
    ``showDataRequested()`` from "Telemetry data"."""

    settingToggled = Signal(str, bool)
    showDataRequested = Signal()

    def __init__(
        self, client: TelemetryClient, settings: DemoSettings, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle(self.tr("Settings"))
        self.setObjectName("settingsDialog")
        self.resize(520, 360)
        self._settings = settings

        self.telemetry = TelemetrySettingsWidget(client, self)
        self.telemetry.toggled.connect(self._on_telemetry)
        self.telemetry.showDataRequested.connect(self.showDataRequested)

        self.show_system = QCheckBox(self.tr("Show system drives"), self)
        self.show_system.setObjectName("showSystemDrivesSetting")
        self.show_system.setChecked(settings.show_system_drives)
        self.show_system.toggled.connect(self._on_show_system)
        self.system_warning = QLabel(
            self.tr("⚠ System drives will be listed as targets. Be careful what you flash."),
            self,
        )
        self.system_warning.setStyleSheet(f"color: {theme.current().warning};")
        self.system_warning.setVisible(settings.show_system_drives)

        self.validate = QCheckBox(self.tr("Validate write on success"), self)
        self.validate.setObjectName("validateSetting")
        self.validate.setChecked(settings.validate_after_flash)
        self.validate.toggled.connect(self._on_validate)

        self.data_button = QPushButton(self.tr("Telemetry data…"), self)
        self.data_button.setObjectName("telemetryDataButton")
        self.data_button.clicked.connect(self.showDataRequested)

        privacy = QGroupBox(self.tr("Privacy"), self)
        privacy_layout = QVBoxLayout(privacy)
        privacy_layout.addWidget(self.telemetry)
        privacy_layout.addWidget(self.data_button)
        flashing = QGroupBox(self.tr("Flashing"), self)
        flashing_layout = QVBoxLayout(flashing)
        flashing_layout.addWidget(self.validate)
        flashing_layout.addWidget(self.show_system)
        flashing_layout.addWidget(self.system_warning)

        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close, self)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(privacy)
        layout.addWidget(flashing)
        layout.addStretch(1)
        layout.addWidget(buttons)

    @Slot(bool)
    def _on_telemetry(self, on: bool) -> None:
        self.settingToggled.emit("errorReporting", not on)

    @Slot(bool)
    def _on_show_system(self, on: bool) -> None:
        self.system_warning.setVisible(on)
        self._settings.show_system_drives = on
        self._settings.save()
        self.settingToggled.emit("showSystemDrives", not on)

    @Slot(bool)
    def _on_validate(self, on: bool) -> None:
        self._settings.validate_after_flash = on
        self._settings.save()
        self.settingToggled.emit("validateWriteOnSuccess", not on)
