"""The demo's two looks, dark (Etcher's slate, the default) and light: one set of colours for
the main window's style sheet and for the application palette that the library's widgets
(notice, settings toggle, inspector) and the dialogs draw with.

``apply(app, "dark" | "light" | "system")`` sets the Fusion style, the palette and the
application style sheet; ``current()`` says which look is applied (dark when none was).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QGuiApplication, QPalette
from PySide6.QtWidgets import QApplication

__all__ = ["THEMES", "Theme", "apply", "current", "resolve"]

_PROPERTY: Final = "demoTheme"


@dataclass(frozen=True, slots=True)
class Theme:
    """Colours of one look (``#rrggbb``)."""

    name: str
    window: str  # the main window's background
    card: str  # step cards, the notice, dialog backgrounds
    panel: str  # featured-project strip, status bar, progress trough, table base
    raised: str  # buttons, alternate rows
    border: str
    text: str
    muted: str  # step numbers, secondary text
    accent: str  # primary buttons, progress, selection
    on_accent: str  # text on the accent colour
    link: str
    danger: str  # cancel button
    error: str  # error text
    warning: str  # warning text
    disabled_bg: str
    disabled_text: str


THEMES: Final = {
    "dark": Theme(
        name="dark",
        window="#4d5057",
        card="#3b3e45",
        panel="#2f3137",
        raised="#464950",
        border="#5f636b",
        text="#ffffff",
        muted="#b4b9c0",
        accent="#00aeef",
        on_accent="#ffffff",
        link="#5cc8f5",
        danger="#e35b5b",
        error="#ff9c9c",
        warning="#ffd27a",
        disabled_bg="#5f636b",
        disabled_text="#a0a4ab",
    ),
    "light": Theme(
        name="light",
        window="#e9ecf0",
        card="#ffffff",
        panel="#f5f7f9",
        raised="#eef1f4",
        border="#c9d0d8",
        text="#1d232a",
        muted="#57616c",
        accent="#0088cc",
        on_accent="#ffffff",
        link="#0070a8",
        danger="#c93c3c",
        error="#b3261e",
        warning="#8a5300",
        disabled_bg="#d5dade",
        disabled_text="#7a838c",
    ),
}


def resolve(name: str | None) -> Theme:
    """The theme called ``name``; ``"system"`` follows the desktop's colour scheme (dark when
    the desktop does not say), ``None`` is the default dark look."""
    if name == "system":
        scheme = QGuiApplication.styleHints().colorScheme()
        name = "light" if scheme == Qt.ColorScheme.Light else "dark"
    return THEMES.get(name or "dark", THEMES["dark"])


def current() -> Theme:
    """The theme last applied to the application (the dark one when none was)."""
    app = QApplication.instance()
    name = app.property(_PROPERTY) if app is not None else None
    return THEMES.get(str(name), THEMES["dark"])


def palette(theme: Theme) -> QPalette:
    """The application palette of ``theme`` (what dialogs and ``telemetry.qt`` widgets use)."""
    c = QColor
    p = QPalette()
    R = QPalette.ColorRole
    roles = {
        R.Window: theme.card,
        R.WindowText: theme.text,
        R.Base: theme.panel,
        R.AlternateBase: theme.raised,
        R.Text: theme.text,
        R.Button: theme.raised,
        R.ButtonText: theme.text,
        R.BrightText: theme.on_accent,
        R.Highlight: theme.accent,
        R.HighlightedText: theme.on_accent,
        R.Link: theme.link,
        R.LinkVisited: theme.link,
        R.PlaceholderText: theme.muted,
        R.ToolTipBase: theme.panel,
        R.ToolTipText: theme.text,
        R.Light: c(theme.border).lighter(130).name(),
        R.Midlight: theme.border,
        R.Mid: theme.border,
        R.Dark: c(theme.panel).darker(130).name(),
        R.Shadow: c(theme.panel).darker(200).name(),
    }
    for role, colour in roles.items():
        p.setColor(role, c(colour))
    for role in (R.WindowText, R.Text, R.ButtonText):
        p.setColor(QPalette.ColorGroup.Disabled, role, c(theme.disabled_text))
    p.setColor(QPalette.ColorGroup.Disabled, R.Button, c(theme.disabled_bg))
    return p


def app_style_sheet(theme: Theme) -> str:
    """Rules for every window of the app: the first-run notice drawn as a card, tooltips."""
    return f"""
#telemetryConsentNotice {{ background: {theme.card}; border: 1px solid {theme.accent};
                           border-radius: 10px; }}
#telemetryConsentNotice QLabel {{ color: {theme.text}; background: transparent; }}
#telemetryConsentNotice QScrollArea, #telemetryConsentNotice QScrollArea > QWidget > QWidget
    {{ background: transparent; }}
QToolTip {{ background: {theme.panel}; color: {theme.text}; border: 1px solid {theme.border}; }}
"""


def main_window_style_sheet(theme: Theme) -> str:
    """The main window's look: background, step cards, buttons, featured strip, status bar."""
    t = theme
    return f"""
QMainWindow, #central {{ background: {t.window}; }}
#stepCard QLabel, #featured QLabel, #titleLabel {{ color: {t.text}; }}
#stepCard QLabel#stepNumber {{ color: {t.muted}; font-weight: bold; letter-spacing: 1px; }}
#stepCard {{ background: {t.card}; border-radius: 10px; border: 1px solid {t.border}; }}
#stepCard QPushButton {{ background: {t.accent}; color: {t.on_accent}; border: none;
                        border-radius: 15px; padding: 6px 22px; min-height: 18px;
                        font-weight: bold; }}
#stepCard QPushButton:disabled {{ background: {t.disabled_bg}; color: {t.disabled_text}; }}
#stepCard QPushButton#cancelButton {{ background: {t.danger}; }}
#featured {{ background: {t.panel}; border-radius: 10px; }}
#featured QPushButton {{ color: {t.link}; background: transparent; border: 1px solid {t.link};
                        border-radius: 12px; padding: 4px 14px; }}
#headerButton {{ color: {t.text}; background: transparent; border: 1px solid {t.border};
                border-radius: 12px; padding: 4px 12px; }}
#headerButton:disabled {{ color: {t.disabled_text}; }}
#stepCard QLabel#errorLabel {{ color: {t.error}; }}
#stepCard QLabel#warningLabel {{ color: {t.warning}; }}
QProgressBar {{ border: none; background: {t.panel}; border-radius: 6px; color: {t.text};
               text-align: center; min-height: 18px; }}
QProgressBar::chunk {{ background: {t.accent}; border-radius: 6px; }}
QStatusBar {{ background: {t.panel}; color: {t.muted}; }}
QStatusBar QLabel {{ color: {t.muted}; padding: 0 8px; }}
"""


def apply(app: QApplication, name: str | None) -> Theme:
    """Give ``app`` the look ``name`` (``dark``, ``light`` or ``system``); returns it."""
    theme = resolve(name)
    app.setStyle("Fusion")  # draws with the palette everywhere (the native styles may not)
    app.setPalette(palette(theme))
    app.setStyleSheet(app_style_sheet(theme))
    app.setProperty(_PROPERTY, theme.name)
    return theme
