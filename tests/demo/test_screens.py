"""Every screen of the demo rendered offscreen to PNG, and checked not to be blank.

The drive list comes from real udev data: the drives fixtures are listed by
``telemetry.drives`` inside ``umockdev-run`` (a child process), and the resulting drives are
fed to the real ``QtDriveWatcher`` through its ``lister``. Set ``DEMO_SCREENSHOT_DIR`` to keep
the PNGs for a look.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from PySide6.QtGui import QImage
from PySide6.QtWidgets import QWidget
from pytestqt.qtbot import QtBot

from demo_app.flasher import Target
from demo_app.targets import ICON_KINDS
from telemetry.drives import Drive

from .conftest import Demo, image_bytes, write_image


def _distinct_colours(image: QImage, step: int = 4) -> int:
    seen = set()
    for y in range(0, image.height(), step):
        for x in range(0, image.width(), step):
            seen.add(image.pixel(x, y))
    return len(seen)


def _shoot(widget: QWidget, folder: Path, name: str) -> Path:
    widget.repaint()
    path = folder / f"{name}.png"
    assert widget.grab().save(str(path), "PNG"), path
    image = QImage(str(path))
    assert not image.isNull() and image.width() > 200 and image.height() > 150, name
    # Not blank: a rendered screen has text, icons and frames, so many colours.
    assert _distinct_colours(image) >= 16, name
    keep = os.environ.get("DEMO_SCREENSHOT_DIR")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        image.save(str(Path(keep) / f"{name}.png"))
    return path


def test_render_every_screen(
    qtbot: QtBot, make_demo: Any, umockdev_drives: list[Drive], tmp_path: Path
) -> None:
    shots = tmp_path / "shots"
    shots.mkdir()
    demo: Demo = make_demo(drives=umockdev_drives)
    window = demo.window
    qtbot.waitUntil(lambda: len(demo.watcher.drives()) == len(umockdev_drives), timeout=10_000)

    # 1. An image chosen: a sparse 10 GB image, so small drives are refused in the list.
    big = tmp_path / "big.img"
    with open(big, "wb") as f:
        f.truncate(10_000_000_000)
    assert window.load_image(big)
    _shoot(window, shots, "1-image-chosen")

    # 2. The drive list.
    dialog = window.open_target_dialog()
    qtbot.waitExposed(dialog)
    rows = dialog.rows()
    devices = {r.drive.device: r for r in rows}
    assert {r.icon for r in rows} >= {"sd-card", "usb-stick", "usb-disk", "card-reader"}
    assert {r.icon for r in rows} <= set(ICON_KINDS)
    assert "/dev/nvme0n1" not in devices  # system drives hidden by default
    assert devices["/dev/sdb"].reason is not None and "Too small" in devices["/dev/sdb"].reason
    assert "Locked" in (devices["/dev/sdh"].reason or "")
    assert "No media" in (devices["/dev/sdd"].reason or "")
    assert any("Large drive" in w for w in devices["/dev/sdc"].warnings)
    assert any("Mounted" in w for w in devices["/dev/sdi"].warnings)
    assert devices["/dev/sdi"].enabled and devices["/dev/sdc"].enabled
    assert not dialog.select_device("/dev/sdb")  # disabled: cannot be chosen
    assert dialog.select_device("/dev/sdi")
    assert dialog.select_button.isEnabled()
    _shoot(dialog, shots, "2-drive-list")

    dialog.show_system.setChecked(True)
    assert dialog.system_warning.isVisible()
    assert "/dev/nvme0n1" in {r.drive.device for r in dialog.rows()}
    assert window.settings.show_system_drives
    _shoot(dialog, shots, "2b-drive-list-system")
    dialog.show_system.setChecked(False)
    dialog.reject()

    # 3. Flashing, then done (a sparse image: quick to make, slow enough to catch a frame).
    flash_image = tmp_path / "flash.img"
    with open(flash_image, "wb") as f:
        f.truncate(256 << 20)
    assert window.load_image(flash_image)
    window.select_target(Target.file(tmp_path / "target.img"))
    assert window.start_flash()
    job = window.job
    with qtbot.waitSignal(job.progress, timeout=60_000):
        pass
    _shoot(window, shots, "3-flashing")
    assert window.progress.isVisible() and window.cancel_button.isVisible()
    qtbot.waitUntil(lambda: window.state != "flashing", timeout=120_000)
    assert window.state == "done"
    _shoot(window, shots, "4-done")

    # 4. Settings and the telemetry data inspector.
    settings = window.open_settings()
    qtbot.waitExposed(settings)
    _shoot(settings, shots, "5-settings")
    settings.close()
    inspector = window.open_inspector()
    qtbot.addWidget(inspector)
    qtbot.waitExposed(inspector)
    _shoot(inspector, shots, "6-inspector")
    assert len(list(shots.glob("*.png"))) == 7


def test_small_image_and_drive_warnings_in_the_target_card(
    qtbot: QtBot, make_demo: Any, umockdev_drives: list[Drive], tmp_path: Path
) -> None:
    demo: Demo = make_demo(drives=umockdev_drives)
    window = demo.window
    qtbot.waitUntil(lambda: len(demo.watcher.drives()) == len(umockdev_drives), timeout=10_000)
    assert window.load_image(write_image(tmp_path, image_bytes(1 << 20), "bz2"))
    assert "size unknown" in window.image_card.detail.text()
    dialog = window.open_target_dialog()
    assert dialog.select_device("/dev/sdb")  # 8 GB: fits a 1 MiB image
    dialog._accept_drive()
    assert window.target is not None and window.target.drive is not None
    assert window.target.drive.device == "/dev/sdb"
    # A mounted drive: the card warns that it will be unmounted.
    dialog = window.open_target_dialog()
    assert dialog.select_device("/dev/sdi")
    dialog._accept_drive()
    assert "unmounted" in window.target_warning.text()
    toggles = [e for e in demo.events() if e["event_type"] == "[Etcher] Toggle drive"]
    assert [t["event_properties"]["previouslySelected"] for t in toggles] == [False, True, False]
    for toggle in toggles:
        props = toggle["event_properties"]
        assert props["targetType"] == "drive"
        assert props["drive.drive_type"] == "usb-flash"
        assert "drive.device" not in props and "/dev/" not in str(props)
