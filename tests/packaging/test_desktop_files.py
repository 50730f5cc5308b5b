"""The desktop entry, AppStream metainfo and icons: they validate and agree with each other."""

from __future__ import annotations

import configparser
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path
from types import ModuleType

import pytest
from PySide6.QtGui import QImage

from tests.packaging.conftest import ROOT

LINUX = ROOT / "packaging" / "linux"


def _desktop(build: ModuleType) -> Path:
    return LINUX / f"{build.APP_ID}.desktop"


def _metainfo(build: ModuleType) -> Path:
    return LINUX / f"{build.APP_ID}.metainfo.xml"


def test_desktop_file_validates_without_any_remark(build: ModuleType) -> None:
    proc = subprocess.run(
        ["desktop-file-validate", str(_desktop(build))], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.strip() == "", proc.stdout  # not even a hint


def test_metainfo_validates(build: ModuleType) -> None:
    proc = subprocess.run(
        ["appstreamcli", "validate", "--no-net", str(_metainfo(build))],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Validation was successful" in proc.stdout, proc.stdout
    issues = [line for line in proc.stdout.splitlines() if line[:2] in {"E:", "W:"}]
    assert issues == []


def test_desktop_file_metainfo_and_package_agree(build: ModuleType) -> None:
    entry = configparser.ConfigParser(interpolation=None)
    entry.optionxform = str  # type: ignore[assignment,method-assign]
    entry.read(_desktop(build), encoding="utf-8")
    desktop = entry["Desktop Entry"]
    assert desktop["Exec"].split()[0] == desktop["TryExec"] == build.PACKAGE  # the launcher
    assert desktop["Icon"] == build.APP_ID
    assert desktop["StartupWMClass"] == build.APP_ID  # the app sets its WM_CLASS to the id

    component = ET.parse(_metainfo(build)).getroot()
    assert component.get("type") == "desktop-application"
    assert component.findtext("id") == build.APP_ID
    assert component.findtext("launchable[@type='desktop-id']") == _desktop(build).name
    assert component.findtext("provides/binary") == build.PACKAGE
    assert component.findtext("name") == desktop["Name"]
    releases = [r.get("version") for r in component.iterfind("releases/release")]
    assert build._version() in releases  # the package version has a release entry


def test_scalable_icon_is_an_svg(build: ModuleType) -> None:
    svg = ET.parse(LINUX / "icons" / f"{build.APP_ID}.svg").getroot()
    assert svg.tag == "{http://www.w3.org/2000/svg}svg"
    assert svg.get("viewBox") == "0 0 128 128"


@pytest.mark.parametrize("size", [16, 24, 32, 48, 64, 128, 256, 512])
def test_png_icon_has_its_size_and_a_shape(build: ModuleType, size: int) -> None:
    assert size in build.ICON_SIZES
    image = QImage(str(LINUX / "icons" / str(size) / f"{build.APP_ID}.png"))
    assert (image.width(), image.height()) == (size, size)
    assert image.hasAlphaChannel()
    assert image.pixelColor(0, 0).alpha() == 0  # rounded corner: transparent
    assert image.pixelColor(size // 2, size // 2).alpha() == 255  # body: opaque
    colours = {image.pixel(x, y) for x in range(size) for y in range(size)}
    assert len(colours) >= min(64, size * 2)  # drawn, not a flat square


def test_the_running_app_names_its_desktop_file(qapp: object) -> None:
    """Wayland ties the window to its .desktop entry (icon, name) by the app's desktop file
    name: it must be the id the package installs."""
    from PySide6.QtGui import QGuiApplication

    from demo_app import app as demo

    demo._qapp(offscreen=True)
    desktop_id = QGuiApplication.desktopFileName()
    assert (LINUX / f"{desktop_id}.desktop").is_file()
    assert (LINUX / f"{desktop_id}.metainfo.xml").is_file()
