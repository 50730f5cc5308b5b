"""The main window: Etcher's three steps (image, target, flash), notice, featured project, status.

Every slow thing runs elsewhere: flashing on a QThread (:class:`~demo_app.ui.worker.FlashJob`),
uploads on the telemetry client's own thread, drive scanning in ``QtDriveWatcher``. The GUI
thread only reads the client's local status (SQLite) once a second and on its notifications.
"""

from __future__ import annotations

import datetime as _dt
import logging
import re
from collections.abc import Callable
from html import escape
from pathlib import Path
from typing import Any, Final

from PySide6.QtCore import QCoreApplication, QEvent, Qt, QTimer, QUrl, Signal, Slot
from PySide6.QtGui import QCloseEvent, QDesktopServices
from PySide6.QtWidgets import (
    QFileDialog,
    QFrame,
    QHBoxLayout,
    QLabel,
    QMainWindow,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from demo_app.analytics import FlashAnalytics
from demo_app.flasher import (
    FILE_DIALOG_FILTERS,
    FlashError,
    FlashProgress,
    FlashResult,
    ImageSource,
    Target,
    open_image,
)
from demo_app.settings import DemoSettings
from demo_app.targets import format_size, holds_image, icon_kind, image_location
from demo_app.ui import theme
from demo_app.ui.icons import app_icon, step_icon
from demo_app.ui.link_dialog import LinkDialog
from demo_app.ui.rich_text import literal
from demo_app.ui.settings_dialog import SettingsDialog
from demo_app.ui.target_dialog import TargetDialog
from demo_app.ui.worker import FlashJob
from telemetry import TelemetryClient
from telemetry.drives import Drive
from telemetry.qt import ConsentNotice, EventInspector, QtConnectivity, QtDriveWatcher
from telemetry.url_params import AnalyticsUrlParams

__all__ = ["APP_NAME", "FEATURED_PROJECT_URL", "MainWindow", "keep_figures_together"]

log = logging.getLogger("demo_app")

#: Etcher's featured-project panel points at balena's EFP; ours at a project we like.
FEATURED_PROJECT_URL: Final = "https://www.balena.io/os"

#: The window title and the application's display name (the desktop file's ``Name``).
APP_NAME: Final = "Telemetry Demo Flasher"

_NBSP: Final = "\u00a0"
#: A slash followed by a word joiner: Qt's line breaker may otherwise break after ``MB/``.
_SLASH: Final = "/\u2060"


def keep_figures_together(text: str) -> str:
    """``text`` with non-breaking spaces inside figures (``29.6 MB/s``, ``8.4 MB``, ``2.1 s``)
    and a word joiner after the unit's slash, so a wrapped line never splits a figure."""
    return _FIGURE.sub(lambda m: m.group(1) + _NBSP + m.group(2).replace("/", _SLASH), text)


_FIGURE: Final = re.compile(r"(\d) ((?:[kMGT]?B|[kMG]B/s|MB/s|s|%)(?![\w/]))")


def _eta(seconds: float | None) -> str:
    if seconds is None:
        return "--:--"
    seconds = round(seconds)
    return f"{seconds // 60}:{seconds % 60:02d}"


class _StepCard(QFrame):
    def __init__(self, number: int, icon: str, button_text: str, parent: QWidget) -> None:
        super().__init__(parent)
        self.setObjectName("stepCard")
        self.setMinimumWidth(230)
        # The row of cards is as tall as the tallest card's content (the window's spare
        # height goes above and below the row), never stretched to the window's height.
        self.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Preferred)
        self.icon = QLabel(self)
        self.icon.setPixmap(step_icon(icon, 72))
        self.icon.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.step = QLabel(f"STEP {number}", self)
        self.step.setObjectName("stepNumber")
        self.step.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.button = QPushButton(button_text, self)
        self.title = QLabel("", self)
        self.title.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.title.setWordWrap(True)
        self.detail = QLabel("", self)
        self.detail.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.detail.setWordWrap(True)
        self.layout_ = QVBoxLayout(self)
        self.layout_.setContentsMargins(18, 18, 18, 18)
        self.layout_.addWidget(self.step)
        self.layout_.addWidget(self.icon)
        self.layout_.addWidget(self.button, 0, Qt.AlignmentFlag.AlignHCenter)
        self.layout_.addWidget(self.title)
        self.layout_.addWidget(self.detail)


class MainWindow(QMainWindow):
    """The flasher window. ``watcher`` lists the drives (``drives()``, ``drivesChanged``).

    ``state`` is ``"idle"``, ``"flashing"``, ``"done"``, ``"cancelled"`` or ``"failed"``;
    ``stateChanged(str)`` follows it.
    """

    stateChanged = Signal(str)
    _clientChanged = Signal()

    def __init__(
        self,
        client: TelemetryClient,
        *,
        watcher: QtDriveWatcher,
        settings: DemoSettings,
        analytics: FlashAnalytics,
        connectivity: QtConnectivity | None = None,
        featured_url: str = FEATURED_PROJECT_URL,
        version: str = "",
    ) -> None:
        super().__init__()
        self.client = client
        self.watcher = watcher
        self.settings = settings
        self.analytics = analytics
        self.connectivity = connectivity
        self.featured_url = featured_url
        self.source: ImageSource | None = None
        self.target: Target | None = None
        self.job: FlashJob | None = None
        self.last_result: FlashResult | None = None
        self.last_error: FlashError | None = None
        self.state = "idle"
        self.settings_dialog: SettingsDialog | None = None
        self.inspector: EventInspector | None = None
        self.target_dialog: TargetDialog | None = None
        self._url_params: AnalyticsUrlParams | None = None
        #: Stops what the window's owner started for it (drive watcher, connectivity).
        self.stop_helpers: Callable[[], None] = lambda: None

        # The title alone: Qt appends the application display name (the same words) only
        # to a title that does not already end with it.
        self.setWindowTitle(APP_NAME)
        self.setWindowIcon(app_icon())
        self.setObjectName("mainWindow")
        self.theme = theme.current()
        self.setStyleSheet(theme.main_window_style_sheet(self.theme))
        #: Where "Learn more" goes when no browser could be opened (the copy-the-link dialog).
        self.link_dialog: LinkDialog | None = None
        self.resize(900, 560)
        central = QWidget(self)
        central.setObjectName("central")
        self.setCentralWidget(central)
        root = QVBoxLayout(central)
        root.setContentsMargins(20, 12, 20, 12)

        header = QHBoxLayout()
        title = QLabel(
            f"<span style='font-size:20px; font-weight:bold'>⚡ {APP_NAME}</span>"
            + (f" <span style='color:{self.theme.muted}'>{version}</span>" if version else ""),
            self,
        )
        title.setObjectName("titleLabel")
        header.addWidget(title)
        header.addStretch(1)
        self.data_button = QPushButton(self.tr("Telemetry data"), self)
        self.data_button.setObjectName("headerButton")
        self.data_button.clicked.connect(self.open_inspector)
        self.settings_button = QPushButton(self.tr("⚙ Settings"), self)
        self.settings_button.setObjectName("headerButton")
        self.settings_button.clicked.connect(self.open_settings)
        header.addWidget(self.data_button)
        header.addWidget(self.settings_button)
        root.addLayout(header)

        self.notice: ConsentNotice | None = None
        if ConsentNotice.should_show(client):
            self.notice = ConsentNotice(client, self)
            self.notice.showDataRequested.connect(self.open_inspector)
            self.notice.dismissed.connect(self.refresh_status)
            self.notice.turnedOff.connect(self._on_notice_turned_off)
            root.addWidget(self.notice)

        steps = QHBoxLayout()
        steps.setSpacing(16)
        self.image_card = _StepCard(1, "file", self.tr("Flash from file"), self)
        self.image_card.button.setObjectName("imageButton")
        self.image_card.button.clicked.connect(self.choose_image)
        self.target_card = _StepCard(2, "usb-stick", self.tr("Select target"), self)
        self.target_card.button.setObjectName("targetButton")
        self.target_card.button.clicked.connect(self.choose_target)
        self.flash_card = _StepCard(3, "flash", self.tr("Flash!"), self)
        self.flash_card.button.setObjectName("flashButton")
        self.flash_card.button.clicked.connect(self.start_flash)
        self.image_error = QLabel("", self)
        self.image_error.setObjectName("errorLabel")
        self.image_error.setWordWrap(True)
        self.image_card.layout_.addWidget(self.image_error)
        self.target_warning = QLabel("", self)
        self.target_warning.setObjectName("warningLabel")
        self.target_warning.setWordWrap(True)
        self.target_card.layout_.addWidget(self.target_warning)
        self.progress = QProgressBar(self)
        self.progress.setRange(0, 1000)
        self.progress.setVisible(False)
        self.flash_card.layout_.addWidget(self.progress)
        self.flash_status = QLabel("", self)
        self.flash_status.setObjectName("flashStatus")
        self.flash_status.setWordWrap(True)
        self.flash_status.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.flash_card.layout_.addWidget(self.flash_status)
        self.cancel_button = QPushButton(self.tr("Cancel"), self)
        self.cancel_button.setObjectName("cancelButton")
        self.cancel_button.clicked.connect(self.cancel_flash)
        self.cancel_button.setVisible(False)
        self.flash_card.layout_.addWidget(self.cancel_button, 0, Qt.AlignmentFlag.AlignHCenter)
        self.again_button = QPushButton(self.tr("Flash another"), self)
        self.again_button.setObjectName("againButton")
        self.again_button.clicked.connect(self.flash_another)
        self.again_button.setVisible(False)
        self.flash_card.layout_.addWidget(self.again_button, 0, Qt.AlignmentFlag.AlignHCenter)
        for card in (self.image_card, self.target_card, self.flash_card):
            steps.addWidget(card, 1)
        # The cards keep the height of their content; the free space goes above and below.
        root.addStretch(1)
        root.addLayout(steps)
        root.addStretch(1)

        featured = QFrame(self)
        featured.setObjectName("featured")
        row = QHBoxLayout(featured)
        row.addWidget(
            QLabel(
                self.tr(
                    "<b>Featured project:</b> balenaOS, a minimal Linux for running containers "
                    "on the boards you flash."
                ),
                featured,
            ),
            1,
        )
        self.featured_button = QPushButton(self.tr("Learn more ↗"), featured)
        self.featured_button.setObjectName("featuredButton")
        self.featured_button.clicked.connect(self.open_featured)
        row.addWidget(self.featured_button)
        root.addWidget(featured)

        bar = self.statusBar()
        self.online_label = QLabel("", self)
        self.queued_label = QLabel("", self)
        self.upload_label = QLabel("", self)
        self.consent_label = QLabel("", self)
        for label in (self.online_label, self.queued_label, self.upload_label):
            bar.addWidget(label)
        bar.addPermanentWidget(self.consent_label)
        self._status_timer = QTimer(self)
        self._status_timer.setInterval(1000)
        self._status_timer.timeout.connect(self.refresh_status)
        self._status_timer.start()
        self._clientChanged.connect(self.refresh_status, Qt.ConnectionType.QueuedConnection)
        self._unlisten = client.add_listener(self._clientChanged.emit)
        if connectivity is not None:
            connectivity.onlineChanged.connect(lambda _on: self.refresh_status())

        watcher.drivesChanged.connect(self._on_drives_changed)
        self._update_steps()
        self.refresh_status()
        analytics.application_start()

    # ------------------------------------------------------------------ status bar

    @Slot()
    def refresh_status(self) -> None:
        """Sending state, events queued and the last upload, from the client's status."""
        try:
            status = self.client.status()
            sending = self._sending_text(status)
        except Exception:  # telemetry must never break the window
            log.exception("telemetry status unavailable")
            return
        self.online_label.setText(sending)
        self.queued_label.setText(self.tr("Events queued: %n", "", int(status.get("queued") or 0)))
        self.upload_label.setText(self._last_upload_text(status.get("last_upload")))
        if status.get("disabled_by_environment"):
            consent = f"Telemetry off ({status['disabled_by_environment']})"
        else:
            consent = "Telemetry on" if status.get("enabled") else "Telemetry off"
        self.consent_label.setText(consent)

    def _sending_text(self, status: dict[str, Any]) -> str:
        if not self.client.upload_status():  # no uploader: no endpoint was given
            return "○ Not sending (no collector)"
        if not self.client.uploading:
            if not status.get("enabled"):
                return "○ Not sending (telemetry off)"
            return "○ Not sending until the notice is answered"
        online = status.get("online")
        if online is None and self.connectivity is not None:
            online = self.connectivity.online
        if online is None:
            return "◌ Connectivity unknown"
        return "● Online" if online else "○ Offline"

    @staticmethod
    def _last_upload_text(last: object) -> str:
        if isinstance(last, (int, float)) and last > 0:
            when = _dt.datetime.fromtimestamp(last / 1000 if last > 1e11 else last)
            return f"Last upload: {when:%H:%M:%S}"
        if isinstance(last, str) and last:
            return f"Last upload: {last}"
        return "Last upload: never"

    # ------------------------------------------------------------------ step 1: image

    @Slot()
    def choose_image(self) -> None:
        """Open the file dialog (Etcher's "Flash from file")."""
        self.analytics.open_image_selector()
        path, _filter = QFileDialog.getOpenFileName(
            self, self.tr("Select image"), str(Path.home()), ";;".join(FILE_DIALOG_FILTERS)
        )
        if not path:
            self.analytics.image_selector_closed()
            return
        self.load_image(path)

    def load_image(self, path: str | Path) -> bool:
        """Use the image at ``path``; shows the reason and returns False when it is unusable."""
        try:
            source = open_image(path)
        except FlashError as exc:
            self.image_error.setText(str(exc))
            self.analytics.image_error(exc)
            return False
        self.image_error.setText("")
        self.source = source
        self.analytics.select_image(source)
        if self.target is not None and not self._target_fits(self.target):
            self._set_target(None)
        self._update_steps()
        return True

    # ------------------------------------------------------------------ step 2: target

    def _target_fits(self, target: Target) -> bool:
        size = self.source.size if self.source else None
        source = self.source
        if target.drive and source and holds_image(target.drive, image_location(source.path)):
            return False  # the new image lives on the selected drive
        return not (target.capacity and size and size > target.capacity)

    @Slot()
    def choose_target(self) -> None:
        """Open the target selector (modal); the choice is applied when it closes."""
        self._target_dialog().exec()

    def open_target_dialog(self) -> TargetDialog:
        """Create and show the target selector without blocking (tools, tests); returns it."""
        dialog = self._target_dialog()
        dialog.show()
        return dialog

    def _target_dialog(self) -> TargetDialog:
        self.analytics.open_drive_selector()
        dialog = TargetDialog(
            self.watcher,
            image_size=self.source.size if self.source else None,
            show_system=self.settings.show_system_drives,
            image_path=self.source.path if self.source else None,
            parent=self,
        )
        dialog.showSystemToggled.connect(self._on_dialog_show_system)
        dialog.accepted.connect(lambda: self._set_target(dialog.chosen))
        self.target_dialog = dialog
        return dialog

    @Slot(bool)
    def _on_dialog_show_system(self, on: bool) -> None:
        self.analytics.toggle_setting("showSystemDrives", not on)
        self.settings.show_system_drives = on
        self.settings.save()

    @Slot(list)
    def _on_drives_changed(self, drives: list[Drive]) -> None:
        """A selected drive that was unplugged (or lost its card) is deselected; during a
        flash the flasher itself notices and reports ``Drive unplugged``."""
        target = self.target
        if target is None or target.drive is None or self.state == "flashing":
            return
        current = {d.device: d for d in drives}.get(target.drive.device)
        if current is None or not current.has_media:
            self._set_target(None)
            self.target_warning.setText(self.tr("The selected drive was removed."))
        elif current != target.drive:
            self.target = Target.for_drive(current)
            self._update_steps()

    def select_target(self, target: Target) -> None:
        """Use ``target`` (what the dialog does on "Select")."""
        self._set_target(target)

    def _set_target(self, target: Target | None) -> None:
        previous = self.target
        if previous is not None and (target is None or previous.path != target.path):
            self.analytics.toggle_drive(previous, previously_selected=True)
        if target is not None and (previous is None or previous.path != target.path):
            self.analytics.toggle_drive(target, previously_selected=False)
        self.target = target
        self._update_steps()

    # ------------------------------------------------------------------ step 3: flash

    @Slot()
    def start_flash(self) -> bool:
        """Start writing; False when an image or a target is missing or a flash is running."""
        if self.source is None or self.target is None or self.job is not None:
            return False
        if self.target.drive is not None and not self._confirm_drive(self.target):
            return False
        validate = self.settings.validate_after_flash
        self.analytics.flash(self.source, self.target, validate=validate)
        self.job = FlashJob(self.source, self.target, validate=validate, parent=self)
        self.job.progress.connect(self._on_progress)
        self.job.finished.connect(self._on_finished)
        self.job.failed.connect(self._on_failed)
        self.last_result = None
        self.last_error = None
        self._set_state("flashing")
        self.flash_status.setText(self.tr("Starting…"))
        self.progress.setValue(0)
        self.job.start()
        return True

    def _confirm_drive(self, target: Target) -> bool:
        drive = target.drive
        if drive is None or not (drive.is_system or drive.size > 128_000_000_000):
            return True
        answer = QMessageBox.warning(
            self,
            self.tr("Flash this drive?"),
            literal(
                self.tr("%1 is a system or large drive. Everything on it will be erased.").replace(
                    "%1", drive.display_name
                )
            ),
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.Cancel,
            QMessageBox.StandardButton.Cancel,
        )
        return answer == QMessageBox.StandardButton.Yes

    @Slot()
    def cancel_flash(self) -> None:
        """Stop the running flash (it ends as cancelled)."""
        if self.job is not None:
            self.flash_status.setText(self.tr("Cancelling…"))
            self.job.cancel()

    @Slot(object)
    def _on_progress(self, progress: FlashProgress) -> None:
        self.progress.setValue(int(progress.fraction * 1000))
        verb = "Flashing" if progress.phase == "flashing" else "Validating"
        self.progress.setFormat(f"{verb} {progress.percent:.0f}%")
        self.flash_status.setText(
            keep_figures_together(
                f"{verb}… {progress.percent:.0f}% · {progress.mb_per_s:.1f} MB/s · "
                f"ETA {_eta(progress.eta)}"
            )
        )

    @Slot(object)
    def _on_finished(self, result: FlashResult) -> None:
        self.job = None
        self.last_result = result
        if result.status == "cancelled":
            self.analytics.cancel(result)
            self.flash_status.setText(
                self.tr("Cancelled. The partly written target file was removed.")
                if result.target_removed
                else self.tr("Cancelled. The target is only partly written.")
            )
            self._set_state("cancelled")
            return
        self.analytics.done(result)
        check = "validated ✓" if result.validation == "passed" else "not validated"
        self.flash_status.setText(
            keep_figures_together(
                f"Flash complete! {format_size(result.bytes_written)} in "
                f"{result.duration:.1f} s ({result.mb_per_s:.1f} MB/s), {check}."
            )
        )
        self.progress.setValue(1000)
        self.progress.setFormat("Done")
        self._set_state("done")

    @Slot(object, float, int)
    def _on_failed(self, error: FlashError, seconds: float, written: int) -> None:
        self.job = None
        self.last_error = error
        self.analytics.failed(error, duration=seconds, bytes_written=written)
        self.flash_status.setText(f"Failed: {error}")
        self._set_state("failed")

    @Slot()
    def flash_another(self) -> None:
        """Back to step 1 with a new workflow (Etcher's "Flash another")."""
        self.analytics.restart()
        self.last_result = None
        self.last_error = None
        self.flash_status.setText("")
        self._set_state("idle")

    def _set_state(self, state: str) -> None:
        self.state = state
        self._update_steps()
        self.stateChanged.emit(state)

    def _update_steps(self) -> None:
        flashing = self.state == "flashing"
        ended = self.state in ("done", "cancelled", "failed")
        src = self.source
        if src is not None:
            # The file the user picked, by its full name (``raspios.img.xz``, not ``raspios.img``).
            self.image_card.title.setText(f"<b>{escape(src.path.name)}</b>")
            self.image_card.title.setToolTip(literal(str(src.path)))
            sizes = format_size(src.size) if src.size is not None else "size unknown"
            if src.size_is_estimate:
                sizes = f"~{sizes}"
            if src.compressed_size is not None:
                sizes += f" ({format_size(src.compressed_size)} {src.compression})"
            if src.member is not None:
                sizes = f"{src.member} · {sizes}"
            self.image_card.detail.setText(keep_figures_together(sizes))
            self.image_card.button.setText(self.tr("Change"))
        tgt = self.target
        if tgt is not None:
            if tgt.drive is not None:
                d = tgt.drive
                self.target_card.icon.setPixmap(step_icon(icon_kind(d), 72))
                self.target_card.title.setText(f"<b>{escape(d.display_name)}</b>")
                self.target_card.detail.setText(
                    keep_figures_together(f"{d.description} — {format_size(d.size)}")
                )
                warnings = []
                if d.mountpoints:
                    warnings.append("⚠ mounted: it will be unmounted")
                if d.size > 128_000_000_000:
                    warnings.append("⚠ large drive")
                if d.is_system:
                    warnings.append("⚠ system drive")
                self.target_warning.setText("\n".join(warnings))
            else:
                self.target_card.icon.setPixmap(step_icon("file", 72))
                self.target_card.title.setText(f"<b>{escape(tgt.path.name)}</b>")
                self.target_card.detail.setText(self.tr("Disk-image file"))
                self.target_warning.setText("")
            self.target_card.button.setText(self.tr("Change"))
        else:
            self.target_card.icon.setPixmap(step_icon("usb-stick", 72))
            self.target_card.title.setText("")
            self.target_card.detail.setText("")
            self.target_warning.setText("")
            self.target_card.button.setText(self.tr("Select target"))
        self.image_card.button.setEnabled(not flashing)
        self.target_card.button.setEnabled(src is not None and not flashing)
        self.flash_card.button.setEnabled(src is not None and tgt is not None and not flashing)
        self.flash_card.button.setVisible(not flashing and not ended)
        self.progress.setVisible(flashing or self.state == "done")
        self.cancel_button.setVisible(flashing)
        self.again_button.setVisible(ended)
        self.settings_button.setEnabled(not flashing)

    # ------------------------------------------------------------------ settings, data, links

    @Slot()
    def open_settings(self) -> SettingsDialog:
        """Show the Settings dialog (window-modal, non-blocking); returns it."""
        dialog = SettingsDialog(self.client, self.settings, self)
        dialog.settingToggled.connect(self.analytics.toggle_setting)
        dialog.showDataRequested.connect(self.open_inspector)
        dialog.finished.connect(lambda _r: self.refresh_status())
        self.settings_dialog = dialog
        dialog.open()
        return dialog

    @Slot()
    def open_inspector(self) -> EventInspector:
        """Show the telemetry data inspector window; returns it."""
        if self.inspector is None:
            self.inspector = EventInspector(self.client)
            self.inspector.setWindowTitle(self.tr("Telemetry data"))
            self.inspector.setWindowIcon(app_icon())
            self.inspector.resize(900, 560)
        self.inspector.show()
        self.inspector.raise_()
        return self.inspector

    @Slot()
    def _on_notice_turned_off(self) -> None:
        self.refresh_status()

    def featured_link(self) -> str:
        """The featured-project URL as opened: ``d_id``/``s_id`` appended while telemetry is
        on, ``optOutAnalytics=true`` when it is off."""
        url = self.featured_url
        try:
            if self.client.enabled:
                if self._url_params is None:
                    self._url_params = AnalyticsUrlParams(self.client)
                return self._url_params.decorate(url)
        except Exception:
            log.exception("could not add the device link to the URL")
            return url
        separator = "&" if "?" in url else "?"
        return f"{url}{separator}optOutAnalytics=true"

    @Slot()
    def open_featured(self) -> str:
        """Open the featured project in the browser; returns the URL opened. When no browser
        can be opened, the link is shown with a Copy button instead (:attr:`link_dialog`)."""
        url = self.featured_link()
        self.analytics.open_external_link(url)
        if not QDesktopServices.openUrl(QUrl(url)):
            log.warning("no browser could open %s; showing the link to copy", self.featured_url)
            self.show_link(url)
        return url

    def show_link(self, url: str) -> LinkDialog:
        """Show ``url`` in a small dialog with a Copy button (non-blocking); returns it."""
        if self.link_dialog is not None:
            self.link_dialog.close()
        self.link_dialog = LinkDialog(url, self)
        self.link_dialog.open()
        return self.link_dialog

    # ------------------------------------------------------------------ lifecycle

    def changeEvent(self, event: QEvent) -> None:
        """Keep the status fresh when the window comes back to the front."""
        if event.type() == QEvent.Type.ActivationChange and self.isActiveWindow():
            self.refresh_status()
        super().changeEvent(event)

    def closeEvent(self, event: QCloseEvent) -> None:
        """Cancel a running flash (after asking), then record ``Close application``."""
        if self.job is not None:
            answer = QMessageBox.question(
                self,
                self.tr("Flashing"),
                self.tr("A flash is running. Cancel it and quit?"),
            )
            if answer != QMessageBox.StandardButton.Yes:
                event.ignore()
                return
            job = self.job
            job.cancel()
            job.wait(30_000)
            # Deliver the job's last signals now: the cancelled flash is recorded as Cancel.
            QCoreApplication.processEvents()
        self.shutdown()
        super().closeEvent(event)

    def shutdown(self) -> None:
        """Stop timers and listeners; record ``Close application`` (idempotent)."""
        if not self._status_timer.isActive():
            return
        self._status_timer.stop()
        self.analytics.close_application(is_flashing=self.job is not None)
        try:
            self._unlisten()
        except Exception:
            log.exception("could not remove the telemetry listener")
        if self.inspector is not None:
            self.inspector.close()
