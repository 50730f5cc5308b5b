"""The fallback when no browser opens: the link shown, selectable, with a Copy button."""

from __future__ import annotations

from PySide6.QtCore import Qt, Slot
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

__all__ = ["LinkDialog"]


class LinkDialog(QDialog):
    """ "No browser could be opened": the URL in a read-only, selected field and **Copy**, which
    puts it on the clipboard and says so."""

    def __init__(self, url: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.url = url
        self.setObjectName("linkDialog")
        self.setWindowTitle(self.tr("Open this link in your browser"))
        self.setWindowModality(Qt.WindowModality.WindowModal)
        self.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        self.message = QLabel(
            self.tr("No web browser could be opened. Copy the link and open it yourself:"), self
        )
        self.message.setWordWrap(True)
        self.field = QLineEdit(url, self)
        self.field.setObjectName("linkField")
        self.field.setReadOnly(True)
        self.field.setAccessibleName(self.tr("Link"))
        self.field.setMinimumWidth(self.fontMetrics().horizontalAdvance("m" * 36))
        self.copy_button = QPushButton(self.tr("&Copy"), self)
        self.copy_button.setObjectName("copyLinkButton")
        self.copy_button.setAccessibleName(self.tr("Copy the link"))
        self.copy_button.setDefault(True)
        self.copy_button.clicked.connect(self.copy)
        self.copied = QLabel("", self)
        self.copied.setObjectName("linkCopied")
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close, self)
        buttons.rejected.connect(self.reject)
        row = QHBoxLayout()
        row.addWidget(self.field, 1)
        row.addWidget(self.copy_button)
        layout = QVBoxLayout(self)
        layout.addWidget(self.message)
        layout.addLayout(row)
        layout.addWidget(self.copied)
        layout.addWidget(buttons)
        self.field.selectAll()
        self.field.setFocus()

    @Slot()
    def copy(self) -> None:
        """Put the link on the clipboard (and the X11 selection) and say so."""
        clipboard = QGuiApplication.clipboard()
        clipboard.setText(self.url)
        if clipboard.supportsSelection():
            clipboard.setText(self.url, clipboard.Mode.Selection)
        self.copied.setText(self.tr("Copied. Paste it into your browser's address bar."))
