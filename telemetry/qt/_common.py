"""Small shared pieces of the Qt layer: a link-styled button and accessible-name helpers."""

from __future__ import annotations

from PySide6.QtCore import QEvent, Qt
from PySide6.QtGui import QPalette
from PySide6.QtWidgets import QPushButton, QWidget

__all__ = ["LinkButton", "name_widget"]


class LinkButton(QPushButton):
    """A flat push button drawn like a hyperlink (the palette's Link colour, underlined).

    A real button rather than a rich-text link: it takes keyboard focus, has a mnemonic and
    is announced as a button by screen readers.
    """

    def __init__(self, text: str, parent: QWidget | None = None) -> None:
        super().__init__(text, parent)
        self.setFlat(True)
        self.setCursor(Qt.CursorShape.PointingHandCursor)
        font = self.font()
        font.setUnderline(True)
        self.setFont(font)
        self._apply_link_colour()

    def changeEvent(self, event: QEvent) -> None:
        if event.type() == QEvent.Type.PaletteChange and not getattr(self, "_updating", False):
            self._apply_link_colour()
        super().changeEvent(event)

    def _apply_link_colour(self) -> None:
        self._updating = True
        try:
            palette = self.palette()
            link = palette.color(QPalette.ColorRole.Link)
            for group in (QPalette.ColorGroup.Active, QPalette.ColorGroup.Inactive):
                palette.setColor(group, QPalette.ColorRole.ButtonText, link)
            self.setPalette(palette)
        finally:
            self._updating = False


def name_widget(widget: QWidget, name: str, description: str | None = None) -> None:
    """Set the accessible name (and description) screen readers announce for ``widget``."""
    widget.setAccessibleName(name)
    if description:
        widget.setAccessibleDescription(description)
