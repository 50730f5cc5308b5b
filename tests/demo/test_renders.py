"""PNG renders of the main window, the first-run notice, Settings and the inspector (its events
and its error reports), in the dark and the light theme, written to ``tests/demo/renders/``
(git-ignored; the paths are printed) and checked: not blank, as dark or light as the theme,
and drawn in the theme's own colours, so the notice and the dialogs cannot fall back to another
palette.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtGui import QColor, QImage
from PySide6.QtWidgets import QApplication, QWidget
from pytestqt.qtbot import QtBot

from demo_app.flasher import Target
from demo_app.ui import theme as themes

from .conftest import Demo, image_bytes, write_image

RENDERS = Path(__file__).resolve().parent / "renders"


@pytest.fixture(params=["dark", "light"])
def theme(request: pytest.FixtureRequest, qapp: QApplication) -> Iterator[themes.Theme]:
    """The demo's look applied to the application as ``python -m demo_app --theme`` does;
    the application's own look is restored afterwards."""
    saved = (qapp.style().name(), qapp.palette(), qapp.styleSheet(), qapp.property("demoTheme"))
    applied = themes.apply(qapp, str(request.param))
    yield applied
    qapp.setStyleSheet(saved[2])
    qapp.setStyle(saved[0])
    qapp.setPalette(saved[1])
    qapp.setProperty("demoTheme", saved[3])


def _luminance(rgb: int) -> float:
    c = QColor.fromRgb(rgb)
    return 0.2126 * c.redF() + 0.7152 * c.greenF() + 0.0722 * c.blueF()


def _save(widget: QWidget, name: str) -> QImage:
    widget.repaint()
    RENDERS.mkdir(exist_ok=True)
    path = RENDERS / f"{name}.png"
    assert widget.grab().save(str(path), "PNG"), path
    print(f"render: {path}")
    image = QImage(str(path)).convertToFormat(QImage.Format.Format_RGB32)
    assert not image.isNull() and image.width() > 200 and image.height() > 100, name
    return image


def _check(image: QImage, theme: themes.Theme, background: str, name: str) -> None:
    """Not blank, the theme's brightness, and ``background`` (a theme colour) among the two
    colours covering most of the picture."""
    pixels = Counter(
        image.pixel(x, y) for y in range(0, image.height(), 2) for x in range(0, image.width(), 2)
    )
    total = sum(pixels.values())
    assert len(pixels) >= 20, f"{name}: only {len(pixels)} colours: blank"
    assert pixels.most_common(1)[0][1] / total < 0.95, f"{name}: nearly one colour"
    mean = sum(_luminance(rgb) * n for rgb, n in pixels.items()) / total
    if theme.name == "dark":
        assert mean < 0.4, f"{name}: dark theme but mean luminance {mean:.2f}"
    else:
        assert mean > 0.6, f"{name}: light theme but mean luminance {mean:.2f}"
    top = [QColor.fromRgb(rgb).name() for rgb, _n in pixels.most_common(2)]
    assert background in top, f"{name}: mostly {top}, not the theme's {background}"


def test_renders_of_every_window_in_both_themes(
    qtbot: QtBot, make_demo: Any, tmp_path: Path, theme: themes.Theme
) -> None:
    demo: Demo = make_demo()
    window = demo.window
    window.resize(1000, 700)
    assert window.notice is not None and window.notice.isVisible()
    notice = _save(window.notice, f"notice-{theme.name}")
    _check(notice, theme, theme.card, "notice")

    image = write_image(tmp_path, image_bytes(4 << 20), "xz", name="test.img")
    assert window.load_image(image)
    window.select_target(Target.file(tmp_path / "target.img"))
    assert window.start_flash()
    qtbot.waitUntil(lambda: window.state == "done", timeout=120_000)
    main = _save(window, f"main-window-{theme.name}")
    _check(main, theme, theme.window, "main window")

    settings = window.open_settings()
    qtbot.waitExposed(settings)
    _check(_save(settings, f"settings-{theme.name}"), theme, theme.card, "settings")
    settings.close()

    inspector = window.open_inspector()
    qtbot.addWidget(inspector)
    qtbot.waitExposed(inspector)
    qtbot.waitUntil(lambda: bool(inspector.shown_rows()), timeout=10_000)
    _check(_save(inspector, f"inspector-{theme.name}"), theme, theme.card, "inspector")

    try:  # an error the app reports: the Reports tab shows it
        raise OSError(28, "No space left on device")
    except OSError as exc:
        fingerprint = demo.client.capture_exception(exc)
    assert fingerprint is not None
    inspector.reload()
    inspector.set_current_kind("reports")
    qtbot.waitUntil(lambda: bool(inspector.shown_rows()), timeout=10_000)
    inspector.select_row(0)
    assert "No space left on device" in inspector.json_view.toPlainText()
    reports = _save(inspector, f"inspector-reports-{theme.name}")
    _check(reports, theme, theme.card, "inspector reports")
    inspector.close()
