"""Drive, step and application icons, drawn with QPainter (no image files to ship or lose).

The application icon is the one in ``packaging/linux/icons/<id>.svg`` (an SD card being flashed,
with a small usage chart), drawn here so the window shows it without the packaged files.
"""

from __future__ import annotations

from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import (
    QColor,
    QIcon,
    QLinearGradient,
    QPainter,
    QPainterPath,
    QPen,
    QPixmap,
    QPolygonF,
)

__all__ = ["app_icon", "app_pixmap", "drive_icon", "step_icon"]

_INK = QColor("#2a506f")
_ACCENT = QColor("#00aeef")
_METAL = QColor("#b8c2cc")


def _canvas(size: int) -> tuple[QPixmap, QPainter]:
    pix = QPixmap(size, size)
    pix.fill(Qt.GlobalColor.transparent)
    painter = QPainter(pix)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    painter.scale(size / 48.0, size / 48.0)
    return pix, painter


def _sd_card(p: QPainter) -> None:
    path = QPainterPath()
    path.moveTo(14, 6)
    path.lineTo(36, 6)
    path.lineTo(40, 10)
    path.lineTo(40, 42)
    path.lineTo(8, 42)
    path.lineTo(8, 12)
    path.closeSubpath()
    p.setPen(QPen(_INK, 2))
    p.setBrush(_ACCENT)
    p.drawPath(path)
    p.setBrush(QColor("#f4d35e"))
    p.setPen(Qt.PenStyle.NoPen)
    for i in range(5):
        p.drawRect(QRectF(14 + i * 5, 9, 3, 8))
    p.setBrush(QColor("white"))
    p.drawRoundedRect(QRectF(13, 24, 22, 12), 2, 2)


def _usb_stick(p: QPainter) -> None:
    p.setPen(QPen(_INK, 2))
    p.setBrush(_METAL)
    p.drawRect(QRectF(18, 4, 12, 12))
    p.setBrush(_INK)
    p.drawRect(QRectF(21, 7, 2, 3))
    p.drawRect(QRectF(25, 7, 2, 3))
    p.setBrush(_ACCENT)
    p.drawRoundedRect(QRectF(14, 16, 20, 28), 4, 4)


def _usb_disk(p: QPainter) -> None:
    p.setPen(QPen(_INK, 2))
    p.setBrush(QColor("#5c7080"))
    p.drawRoundedRect(QRectF(6, 10, 36, 28), 5, 5)
    p.setBrush(_ACCENT)
    p.drawEllipse(QPointF(34, 31), 3, 3)
    p.setPen(QPen(QColor("white"), 2))
    p.drawLine(QPointF(12, 18), QPointF(26, 18))
    # USB trident mark
    p.drawLine(QPointF(14, 28), QPointF(24, 28))
    p.drawLine(QPointF(18, 28), QPointF(21, 24))
    p.drawLine(QPointF(20, 28), QPointF(23, 32))


def _card_reader(p: QPainter) -> None:
    p.setPen(QPen(_INK, 2))
    p.setBrush(_METAL)
    p.drawRoundedRect(QRectF(6, 16, 36, 24), 4, 4)
    p.setBrush(_INK)
    p.drawRect(QRectF(12, 22, 24, 3))
    p.setBrush(_ACCENT)
    p.drawRect(QRectF(20, 6, 8, 10))
    p.setBrush(QColor("#2ecc71"))
    p.setPen(Qt.PenStyle.NoPen)
    p.drawEllipse(QPointF(36, 34), 2, 2)


def _disk(p: QPainter) -> None:
    p.setPen(QPen(_INK, 2))
    p.setBrush(QColor("#8a9ba8"))
    p.drawRoundedRect(QRectF(6, 8, 36, 32), 4, 4)
    p.setBrush(QColor("#dfe6ec"))
    p.drawEllipse(QPointF(24, 24), 11, 11)
    p.setBrush(_INK)
    p.drawEllipse(QPointF(24, 24), 2.5, 2.5)


def _file(p: QPainter) -> None:
    p.setPen(QPen(_INK, 2))
    p.setBrush(QColor("white"))
    p.drawPolygon(QPolygonF([QPointF(10, 4), QPointF(30, 4), QPointF(38, 12), QPointF(38, 44),
                             QPointF(10, 44)]))  # fmt: skip
    p.setBrush(_ACCENT)
    p.drawRect(QRectF(15, 22, 18, 14))


def _flash(p: QPainter) -> None:
    p.setPen(QPen(_INK, 2))
    p.setBrush(QColor("#f4d35e"))
    p.drawPolygon(QPolygonF([QPointF(28, 2), QPointF(10, 28), QPointF(22, 28), QPointF(18, 46),
                             QPointF(38, 18), QPointF(26, 18)]))  # fmt: skip


_DRAW = {
    "sd-card": _sd_card,
    "usb-stick": _usb_stick,
    "usb-disk": _usb_disk,
    "card-reader": _card_reader,
    "disk": _disk,
    "file": _file,
    "flash": _flash,
}


def _pixmap(kind: str, size: int) -> QPixmap:
    pix, painter = _canvas(size)
    try:
        _DRAW.get(kind, _disk)(painter)
    finally:
        painter.end()
    return pix


def drive_icon(kind: str, size: int = 48) -> QIcon:
    """The icon of a drive kind (``targets.ICON_KINDS``), or ``"file"``."""
    return QIcon(_pixmap(kind, size))


def step_icon(kind: str, size: int = 64) -> QPixmap:
    """A large picture for a step card: ``"file"``, ``"usb-stick"``, ``"flash"``..."""
    return _pixmap(kind, size)


def _gradient(x1: float, y1: float, x2: float, y2: float, top: str, bottom: str) -> QLinearGradient:
    gradient = QLinearGradient(QPointF(x1, y1), QPointF(x2, y2))
    gradient.setColorAt(0, QColor(top))
    gradient.setColorAt(1, QColor(bottom))
    return gradient


def _draw_app_icon(p: QPainter) -> None:
    """The packaged SVG's shapes, in its 128 x 128 coordinates."""
    p.setPen(Qt.PenStyle.NoPen)
    p.setBrush(_gradient(6, 6, 122, 122, "#2bb3a3", "#1f5fa8"))
    p.drawRoundedRect(QRectF(6, 6, 116, 116), 26, 26)
    shine = QColor("#ffffff")
    shine.setAlphaF(0.08)
    p.setBrush(shine)
    p.drawRoundedRect(QRectF(6, 6, 116, 58), 26, 26)
    card = QPainterPath()
    card.moveTo(38, 22)
    card.lineTo(80, 22)
    card.lineTo(94, 36)
    card.lineTo(94, 104)
    card.quadTo(94, 110, 88, 110)
    card.lineTo(38, 110)
    card.quadTo(32, 110, 32, 104)
    card.lineTo(32, 28)
    card.quadTo(32, 22, 38, 22)
    card.closeSubpath()
    pen = QPen(QColor("#163f6e"), 3)
    pen.setJoinStyle(Qt.PenJoinStyle.RoundJoin)
    p.setPen(pen)
    p.setBrush(_gradient(0, 22, 0, 110, "#ffffff", "#dfe7f1"))
    p.drawPath(card)
    p.setPen(Qt.PenStyle.NoPen)
    p.setBrush(QColor("#1f5fa8"))
    for x in (42, 52, 62, 72):
        p.drawRoundedRect(QRectF(x, 30, 6, 14), 1.5, 1.5)
    p.setBrush(QColor("#2bb3a3"))
    for x, y, h in ((42, 90, 12), (52, 84, 18), (62, 78, 24)):
        p.drawRoundedRect(QRectF(x, y, 7, h), 1.5, 1.5)
    bolt = QPolygonF([QPointF(84, 52), QPointF(66, 80), QPointF(79, 80), QPointF(72, 104),
                      QPointF(96, 70), QPointF(82, 70), QPointF(90, 52)])  # fmt: skip
    pen = QPen(QColor("#7a3d00"), 2.5)
    pen.setJoinStyle(Qt.PenJoinStyle.RoundJoin)
    p.setPen(pen)
    p.setBrush(_gradient(0, 52, 0, 104, "#ffd54a", "#ff9f1c"))
    p.drawPolygon(bolt)


def app_pixmap(size: int) -> QPixmap:
    """The application icon at ``size`` x ``size`` pixels."""
    pix = QPixmap(size, size)
    pix.fill(Qt.GlobalColor.transparent)
    painter = QPainter(pix)
    try:
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.scale(size / 128.0, size / 128.0)
        _draw_app_icon(painter)
    finally:
        painter.end()
    return pix


def app_icon() -> QIcon:
    """The application icon (window, taskbar, about box), at the sizes desktops ask for."""
    icon = QIcon()
    for size in (16, 24, 32, 48, 64, 128, 256):
        icon.addPixmap(app_pixmap(size))
    return icon
