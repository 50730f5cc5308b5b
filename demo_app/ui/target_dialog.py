"""The "Select target" dialog: the live drive list, system drives on request, a file target."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QSize, Qt, Signal, Slot
from PySide6.QtWidgets import (
    QCheckBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from demo_app.flasher import Target
from demo_app.targets import DriveRow, drive_rows, image_location
from demo_app.ui import theme
from demo_app.ui.icons import drive_icon
from demo_app.ui.rich_text import literal

if TYPE_CHECKING:
    from telemetry.qt import QtDriveWatcher

__all__ = ["TargetDialog"]

_ROW_ROLE = Qt.ItemDataRole.UserRole + 1


class TargetDialog(QDialog):
    """Lists drives from a ``QtDriveWatcher`` (live), returns the chosen :class:`Target`.

    ``watcher`` needs ``drives()`` and a ``drivesChanged`` signal; ``image_path`` (the picked
    image) disables the drive that holds it. ``show_system`` starts the
    "Show system drives" box; ``showSystemToggled(bool)`` reports changes to it.
    """

    showSystemToggled = Signal(bool)

    def __init__(
        self,
        watcher: QtDriveWatcher,
        *,
        image_size: int | None,
        show_system: bool,
        image_path: Path | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle(self.tr("Select target"))
        self.setObjectName("targetDialog")
        self.resize(620, 440)
        self._watcher = watcher
        self._image_size = image_size
        # The drive holding the image is listed disabled ("Source drive"), as in Etcher.
        self._image = image_location(image_path) if image_path is not None else None
        self.chosen: Target | None = None

        self.list = QListWidget(self)
        self.list.setObjectName("driveList")
        self.list.setIconSize(QSize(40, 40))
        self.list.setAlternatingRowColors(True)
        self.list.setAccessibleName(self.tr("Drives"))
        self.list.itemSelectionChanged.connect(self._update_buttons)
        self.list.itemDoubleClicked.connect(lambda _item: self._accept_drive())

        self.empty = QLabel(self.tr("Plug in an SD card or a USB drive, or use a file target."))
        self.empty.setObjectName("noDrives")
        self.empty.setAlignment(Qt.AlignmentFlag.AlignCenter)

        self.show_system = QCheckBox(self.tr("Show system drives"), self)
        self.show_system.setObjectName("showSystemDrives")
        self.show_system.setChecked(show_system)
        self.show_system.toggled.connect(self._on_show_system)
        self.system_warning = QLabel(
            self.tr(
                "⚠ System drives are listed. Flashing one erases your operating system or "
                "your data: double-check the target."
            ),
            self,
        )
        self.system_warning.setObjectName("systemWarning")
        self.system_warning.setWordWrap(True)
        self.system_warning.setStyleSheet(f"color: {theme.current().warning}; font-weight: bold;")
        self.system_warning.setVisible(show_system)

        self.file_button = QPushButton(self.tr("Use a file target…"), self)
        self.file_button.setObjectName("fileTargetButton")
        self.file_button.setIcon(drive_icon("file", 24))
        self.file_button.clicked.connect(self._choose_file)

        self.buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel, self
        )
        self.select_button = self.buttons.button(QDialogButtonBox.StandardButton.Ok)
        self.select_button.setText(self.tr("Select"))
        self.buttons.accepted.connect(self._accept_drive)
        self.buttons.rejected.connect(self.reject)

        layout = QVBoxLayout(self)
        layout.addWidget(QLabel(self.tr("<b>Select a target</b>"), self))
        layout.addWidget(self.list, 1)
        layout.addWidget(self.empty)
        layout.addWidget(self.show_system)
        layout.addWidget(self.system_warning)
        bottom = QHBoxLayout()
        bottom.addWidget(self.file_button)
        bottom.addStretch(1)
        bottom.addWidget(self.buttons)
        layout.addLayout(bottom)

        watcher.drivesChanged.connect(self._refresh)
        self._refresh()

    # ------------------------------------------------------------------ content

    def rows(self) -> list[DriveRow]:
        """The rows currently listed (in order)."""
        return [self.list.item(i).data(_ROW_ROLE) for i in range(self.list.count())]

    @Slot()
    def _refresh(self, *_args: object) -> None:
        selected = self._selected_row()
        self.list.clear()
        rows = drive_rows(
            list(self._watcher.drives()),
            image_size=self._image_size,
            show_system=self.show_system.isChecked(),
            image=self._image,
        )
        for row in rows:
            lines = [row.title, row.description]
            if row.reason:
                lines.append(f"✖ {row.reason}")
            lines.extend(f"⚠ {w}" for w in row.warnings)
            item = QListWidgetItem(drive_icon(row.icon), "\n".join(lines))
            item.setData(_ROW_ROLE, row)
            item.setToolTip(literal(row.reason or "\n".join(row.warnings) or row.description))
            if not row.enabled:
                item.setFlags(item.flags() & ~Qt.ItemFlag.ItemIsEnabled)
            self.list.addItem(item)
            if selected is not None and row.enabled and row.drive.device == selected.drive.device:
                item.setSelected(True)
        self.empty.setVisible(not rows)
        self._update_buttons()

    def _selected_row(self) -> DriveRow | None:
        items = self.list.selectedItems()
        return items[0].data(_ROW_ROLE) if items else None

    @Slot(bool)
    def _on_show_system(self, on: bool) -> None:
        self.system_warning.setVisible(on)
        self.showSystemToggled.emit(on)
        self._refresh()

    @Slot()
    def _update_buttons(self) -> None:
        row = self._selected_row()
        self.select_button.setEnabled(row is not None and row.enabled)

    # ------------------------------------------------------------------ choosing

    def select_device(self, device: str) -> bool:
        """Select the listed drive ``device`` (keyboard-free selection for tests and tools)."""
        for i in range(self.list.count()):
            item = self.list.item(i)
            row: DriveRow = item.data(_ROW_ROLE)
            if row.drive.device == device and row.enabled:
                self.list.setCurrentItem(item)
                item.setSelected(True)
                return True
        return False

    @Slot()
    def _accept_drive(self) -> None:
        row = self._selected_row()
        if row is None or not row.enabled:
            return
        self.chosen = Target.for_drive(row.drive)
        self.accept()

    @Slot()
    def _choose_file(self) -> None:
        path, _filter = QFileDialog.getSaveFileName(
            self,
            self.tr("Write the image to a file"),
            str(Path.home() / "flashed.img"),
            self.tr("Disk images (*.img *.raw *.bin);;All files (*)"),
        )
        if path:
            self.choose_file(path)

    def choose_file(self, path: str | Path) -> None:
        """Use the disk-image file ``path`` as the target and close the dialog."""
        self.chosen = Target.file(path)
        self.accept()

    def done(self, result: int) -> None:
        """Disconnect from the watcher when closing."""
        with contextlib.suppress(RuntimeError, TypeError):
            self._watcher.drivesChanged.disconnect(self._refresh)
        super().done(result)
