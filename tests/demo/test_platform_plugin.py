"""A fresh desktop: the demo under a real X server (Xvfb) with Qt's real xcb plugin.

* An unloadable xcb plugin (a copy whose ``libqxcb.so`` needs a library no system has, made
  with ``patchelf``, found first through ``QT_PLUGIN_PATH`` exactly as Qt finds plugins):
  the demo names the missing library and how to install it, exits with 3 (no abort, no
  traceback) and leaves no process behind. Qt itself aborts on that copy (checked too, so the
  test cannot pass because the broken copy was never used).
* The healthy plugin: the window's WM_CLASS is the desktop file id, its title is the app's
  name once (read back with ``xprop``), and it carries an icon.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from PySide6.QtCore import QLibraryInfo

from demo_app import _qt_platform
from demo_app.app import DESKTOP_FILE_ID, EXIT_NO_QT_PLATFORM
from demo_app.ui.main_window import APP_NAME

REPO = Path(__file__).resolve().parents[2]
MISSING = "libxcb-icccm-gone.so.4"  # what the broken copy needs instead of libxcb-icccm.so.4


@pytest.fixture(scope="module")
def display(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """An Xvfb server on a free display number (``-displayfd``)."""
    log = tmp_path_factory.mktemp("xvfb") / "xvfb.log"
    read_fd, write_fd = os.pipe()
    server = subprocess.Popen(
        ["Xvfb", "-displayfd", str(write_fd), "-screen", "0", "1280x1024x24", "-nolisten",
         "tcp", "-noreset"],
        pass_fds=(write_fd,), stdout=subprocess.DEVNULL, stderr=log.open("wb"),
    )  # fmt: skip
    os.close(write_fd)
    with os.fdopen(read_fd) as pipe:
        number = pipe.readline().strip()
    if not number:
        server.kill()
        pytest.fail(f"Xvfb did not start: {log.read_text()}")
    try:
        yield f":{number}"
    finally:
        server.terminate()
        server.wait(10)


def _env(display: str, home: Path, **extra: str) -> dict[str, str]:
    dropped = ("QT_QPA_PLATFORM", "WAYLAND_DISPLAY", "XDG_SESSION_TYPE", "QT_PLUGIN_PATH",
               "QT_QPA_PLATFORM_PLUGIN_PATH", "DO_NOT_TRACK", "TELEMETRY_DISABLED")  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k not in dropped}
    home.mkdir(parents=True, exist_ok=True)
    return {**env, "DISPLAY": display, "HOME": str(home), "XDG_DATA_HOME": str(home / "data"),
            "PYTHONPATH": str(REPO), **extra}  # fmt: skip


def _processes_mentioning(text: str) -> list[str]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if text in cmdline:
            found.append(f"{entry.name}: {cmdline}")
    return found


@pytest.fixture
def broken_plugins(tmp_path: Path) -> Path:
    """A Qt plugin folder whose ``platforms/libqxcb.so`` needs :data:`MISSING`. The copy sits
    at the same depth as the original next to a link to Qt's ``lib``, so its RUNPATH
    (``$ORIGIN/../../lib``) still finds every Qt library."""
    plugins = Path(QLibraryInfo.path(QLibraryInfo.LibraryPath.PluginsPath))
    qt = tmp_path / "Qt"
    (qt / "plugins" / "platforms").mkdir(parents=True)
    (qt / "lib").symlink_to(plugins.parent / "lib")
    copy = qt / "plugins" / "platforms" / "libqxcb.so"
    shutil.copy2(plugins / "platforms" / "libqxcb.so", copy)
    subprocess.run(
        ["patchelf", "--replace-needed", "libxcb-icccm.so.4", MISSING, str(copy)], check=True
    )
    return qt / "plugins"


def test_unloadable_xcb_plugin_names_the_missing_library_and_leaves_nothing_running(
    display: str, broken_plugins: Path, tmp_path: Path
) -> None:
    data = tmp_path / "demo-data"
    env = _env(display, tmp_path / "home", QT_PLUGIN_PATH=str(broken_plugins))
    # Without the check, Qt itself cannot start on this plugin: it aborts.
    qt_alone = subprocess.run(
        [sys.executable, "-c", "from PySide6.QtWidgets import QApplication; QApplication([])"],
        env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert qt_alone.returncode == -signal.SIGABRT, qt_alone.stderr

    proc = subprocess.run(
        [sys.executable, "-m", "demo_app", "--data-dir", str(data)],
        env=env, capture_output=True, text=True, timeout=120, cwd=REPO, check=False,
    )  # fmt: skip
    assert proc.returncode == EXIT_NO_QT_PLATFORM, (proc.returncode, proc.stdout, proc.stderr)
    assert MISSING in proc.stderr, proc.stderr
    assert str(broken_plugins / "platforms" / "libqxcb.so") in proc.stderr
    assert "apt-file search" in proc.stderr and "dnf provides" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert "xcb-cursor0" not in proc.stderr  # not Qt's generic hint: Qt never started
    # Nothing was started: no collector child, no process with this test's data folder.
    assert _processes_mentioning(str(data)) == []
    assert not (data / "collector").exists()


def test_the_message_maps_known_libraries_to_debian_and_fedora_packages() -> None:
    problem = _qt_platform.PluginProblem(
        Path("/x/libqxcb.so"), ("libxcb-icccm.so.4", "libxcb-keysyms.so.1"), "cannot open"
    )
    text = problem.message()
    assert "  libxcb-icccm.so.4\n  libxcb-keysyms.so.1\n" in text
    assert "Debian/Ubuntu: sudo apt install libxcb-icccm4 libxcb-keysyms1" in text
    assert "Fedora:        sudo dnf install xcb-util-wm xcb-util-keysyms" in text
    assert "apt-file" not in text  # every library has a known package


def test_every_library_the_real_plugin_needs_has_packages_and_the_readme_names_the_xcb_ones() -> (
    None
):
    """Each library the installed ``libqxcb.so`` links directly (its DT_NEEDED entries, fixed
    by the PySide6 wheel) is in the package map, except the C/C++ runtime and Qt's own; the
    README's Debian and Fedora commands install every xcb/xkb/GL one."""
    plugins = Path(QLibraryInfo.path(QLibraryInfo.LibraryPath.PluginsPath))
    out = subprocess.run(
        ["patchelf", "--print-needed", str(plugins / "platforms" / "libqxcb.so")],
        capture_output=True, text=True, check=True, timeout=60,
    ).stdout  # fmt: skip
    names = set(out.split())
    assert "libxcb-icccm.so.4" in names
    runtime = re.compile(r"^(libQt6|libicu|libc\.|libm\.|libstdc|libgcc_s|libdl|libpthread|ld-)")
    unmapped = sorted(n for n in names if not runtime.match(n) and n not in _qt_platform.PACKAGES)
    assert unmapped == []
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    apt = re.search(r"^sudo apt install (.+)$", readme, re.MULTILINE)
    dnf = re.search(r"^sudo dnf install (.+)$", readme, re.MULTILINE)
    assert apt and dnf
    direct = [n for n in names if re.match(r"^lib(xcb-|xkbcommon|X11-xcb|GL|EGL)", n)]
    for name in direct:
        debian, fedora = _qt_platform.PACKAGES[name]
        if debian in ("libxcb1", "libglx0", "libglvnd0") or fedora == "libxcb":
            continue  # part of every X11 desktop (libxcb itself, GL dispatch)
        assert debian in apt.group(1).split(), name
        assert fedora in dnf.group(1).split(), name


def _window_ids(display: str) -> dict[str, str]:
    """Top-level X windows: id -> the rest of ``xwininfo``'s line (title, WM_CLASS, size)."""
    out = subprocess.run(
        ["xwininfo", "-root", "-tree"], env={**os.environ, "DISPLAY": display},
        capture_output=True, text=True, check=True, timeout=30,
    ).stdout  # fmt: skip
    return {
        m.group(1): m.group(2) for m in re.finditer(r"^\s+(0x[0-9a-f]+) (.*)$", out, re.MULTILINE)
    }


def test_window_names_itself_by_the_desktop_file_id_with_one_title_and_an_icon(
    display: str, tmp_path: Path
) -> None:
    data = tmp_path / "demo-data"
    demo = subprocess.Popen(
        [sys.executable, "-m", "demo_app", "--no-collector", "--data-dir", str(data)],
        env=_env(display, tmp_path / "home"), cwd=REPO, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert demo.stdout is not None
        for line in demo.stdout:
            if "window open" in line:
                break
        else:
            pytest.fail(f"the demo did not open its window: {demo.communicate()}")
        window = next(
            (wid for wid, rest in _window_ids(display).items() if DESKTOP_FILE_ID in rest), None
        )
        assert window is not None, _window_ids(display)
        props = subprocess.run(
            ["xprop", "-id", window, "WM_CLASS", "_NET_WM_NAME", "_NET_WM_ICON"],
            env={**os.environ, "DISPLAY": display}, capture_output=True, text=True,
            check=True, timeout=30,
        ).stdout  # fmt: skip
        assert f'WM_CLASS(STRING) = "{DESKTOP_FILE_ID}", "{DESKTOP_FILE_ID}"' in props
        assert f'_NET_WM_NAME(UTF8_STRING) = "{APP_NAME}"\n' in props
        assert "Icon (48 x 48)" in props and "Icon (128 x 128)" in props
    finally:
        demo.send_signal(signal.SIGTERM)
        code = demo.wait(60)
    assert code == 128 + signal.SIGTERM
    deadline = time.monotonic() + 10
    while _processes_mentioning(str(data)) and time.monotonic() < deadline:
        time.sleep(0.1)  # waiting for a state (the process table), not for time
    assert _processes_mentioning(str(data)) == []


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({"DISPLAY": ":0"}, True),
        ({"DISPLAY": ":0", "QT_QPA_PLATFORM": "xcb"}, True),
        ({"DISPLAY": ":0", "QT_QPA_PLATFORM": "xcb;wayland"}, True),
        ({"DISPLAY": ":0", "QT_QPA_PLATFORM": "offscreen"}, False),
        ({"DISPLAY": ":0", "WAYLAND_DISPLAY": "wayland-0"}, False),  # Qt tries wayland first
        ({"DISPLAY": ":0", "XDG_SESSION_TYPE": "wayland"}, False),
        ({"WAYLAND_DISPLAY": "wayland-0", "QT_QPA_PLATFORM": "xcb"}, True),
        ({}, False),
    ],
)
def test_the_check_runs_only_where_qt_starts_on_x11(
    environ: dict[str, str], expected: bool
) -> None:
    assert _qt_platform.uses_xcb(environ) is expected
