"""Fixtures for the Qt layer tests: offscreen Qt, palettes, clients, reading the SQLite file.

``data_dir`` and ``client`` (a real client on a real SQLite file) come from ``tests/conftest.py``.

``QT_QPA_PLATFORM=offscreen`` is set here, before pytest-qt creates the ``QApplication``.
"""

from __future__ import annotations

import os

os.environ["QT_QPA_PLATFORM"] = "offscreen"

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QImage, QPalette
from PySide6.QtWidgets import QApplication, QWidget

import telemetry
from tests._fixtures import (  # noqa: F401  (autouse: registered by the import)
    _direct_loopback,
    _no_environment_veto,
)


def dark_palette() -> QPalette:
    """A dark palette built from roles (what a desktop in dark mode hands Qt)."""
    p = QPalette()
    window, base, text = QColor(37, 37, 38), QColor(30, 30, 30), QColor(230, 230, 230)
    roles = {
        QPalette.ColorRole.Window: window,
        QPalette.ColorRole.WindowText: text,
        QPalette.ColorRole.Base: base,
        QPalette.ColorRole.AlternateBase: QColor(45, 45, 48),
        QPalette.ColorRole.Text: text,
        QPalette.ColorRole.Button: QColor(51, 51, 55),
        QPalette.ColorRole.ButtonText: text,
        QPalette.ColorRole.Highlight: QColor(38, 79, 120),
        QPalette.ColorRole.HighlightedText: QColor(255, 255, 255),
        QPalette.ColorRole.Link: QColor(86, 156, 214),
        QPalette.ColorRole.PlaceholderText: QColor(150, 150, 150),
        QPalette.ColorRole.ToolTipBase: window,
        QPalette.ColorRole.ToolTipText: text,
    }
    for role, colour in roles.items():
        p.setColor(role, colour)
    disabled = QColor(127, 127, 127)
    for role in (
        QPalette.ColorRole.WindowText,
        QPalette.ColorRole.Text,
        QPalette.ColorRole.ButtonText,
    ):
        p.setColor(QPalette.ColorGroup.Disabled, role, disabled)
    return p


@pytest.fixture(params=["light", "dark"])
def palette_name(request: pytest.FixtureRequest, qapp: QApplication) -> Iterator[str]:
    """Run a test under the Fusion style's light palette and under a dark one."""
    old_style = qapp.style().name()
    old_palette = qapp.palette()
    qapp.setStyle("Fusion")
    qapp.setPalette(dark_palette() if request.param == "dark" else qapp.style().standardPalette())
    yield str(request.param)
    qapp.setPalette(old_palette)
    qapp.setStyle(old_style)


def luminance(colour: QColor) -> float:
    return 0.2126 * colour.redF() + 0.7152 * colour.greenF() + 0.0722 * colour.blueF()


def render(widget: QWidget, path: Path, width: int = 900, height: int = 600) -> QImage:
    """Render ``widget`` at ``width`` x ``height`` to a PNG file and return the image."""
    widget.resize(width, height)
    image = widget.grab().toImage()
    assert image.save(str(path), "PNG"), path
    assert path.stat().st_size > 0
    return image


def colour_stats(image: QImage, step: int = 2) -> tuple[int, float, float, float]:
    """(distinct colours, mean luminance, min luminance, max luminance) over a pixel grid."""
    colours: set[int] = set()
    total = 0.0
    count = 0
    low, high = 1.0, 0.0
    for y in range(0, image.height(), step):
        for x in range(0, image.width(), step):
            rgb = image.pixel(x, y)
            colours.add(rgb)
            lum = luminance(QColor.fromRgb(rgb))
            total += lum
            count += 1
            low, high = min(low, lum), max(high, lum)
    return len(colours), total / max(count, 1), low, high


def assert_readable(image: QImage, palette: str) -> None:
    """Not blank, and the background/text contrast fits the palette."""
    distinct, mean, low, high = colour_stats(image)
    assert distinct >= 20, f"only {distinct} colours: blank render"
    assert high - low > 0.5, (low, high)
    if palette == "dark":
        assert mean < 0.4, f"dark palette but mean luminance {mean:.2f}"
    else:
        assert mean > 0.6, f"light palette but mean luminance {mean:.2f}"


def user_events(client: telemetry.Client) -> list[Any]:
    """Queued events other than the client's own $identify."""
    return [e for e in client.queued_events() if e.event_type != "$identify"]


def start_uploads(client: Any) -> None:
    """Under the opt-out policy nothing is uploaded before the first-run notice was answered."""
    client.mark_notice_answered()


def focusable_controls(root: QWidget) -> list[QWidget]:
    """Every visible widget under ``root`` that the Tab key can reach."""
    return [
        w
        for w in root.findChildren(QWidget)
        if w.isVisibleTo(root) and (w.focusPolicy() & Qt.FocusPolicy.TabFocus)
    ]


def queued(client: Any, data_dir: Path) -> int:
    """Events waiting to be sent: the client's own count (which first copies any journal lines
    into SQLite), cross-checked against the SQLite file read directly."""
    count = int(client.queue_stats().events)
    on_disk = db_rows(data_dir, "SELECT count(*) FROM events")
    if on_disk:
        assert int(on_disk[0][0]) <= count, (on_disk, count)
    return count


def db_rows(data_dir: Path, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Read the client's real SQLite file directly (not through the store's API)."""
    import sqlite3

    path = data_dir / "telemetry.db"
    if not path.exists():
        return []
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
        return list(conn.execute(sql, params).fetchall())


def db_state(data_dir: Path, key: str) -> Any:
    """A state value as stored in the file (JSON-decoded), or None."""
    import json

    rows = db_rows(data_dir, "SELECT value FROM state WHERE key = ?", (key,))
    return json.loads(rows[0][0]) if rows and rows[0][0] is not None else None


def closed_loopback_url() -> str:
    """``http://127.0.0.1:PORT`` where nothing listens (connections are refused at once)."""
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


@pytest.fixture
def unreachable_client(data_dir: Path) -> Iterator[telemetry.Client]:
    """An uploading client whose collector (on 127.0.0.1) refuses connections: whatever it
    queues for delivery, deletion requests included, stays queued."""
    c = telemetry.create_client(
        "test-project", "test-app", "1.2.3", endpoint=closed_loopback_url(), data_dir=data_dir
    )
    yield c
    c.close()
