"""The frozen one-folder bundle works outside the dev environment.

``--self-test`` runs in a clean environment (``env -i`` with only HOME, a system PATH and the
offscreen Qt platform): no venv, no SSL_CERT_FILE, a fresh HOME. While it runs, the test watches
the app's child processes in /proc to see the collector child start from the bundle's own
executable. A screenshot of the main window is taken under a real X server (Xvfb, xcb plugin).
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections import Counter
from pathlib import Path
from types import ModuleType

import pytest
from PySide6.QtGui import QImage

from tests.packaging.conftest import clean_env

pytestmark = pytest.mark.timeout(900)  # the first test may build the bundle (~25-60 s)


def _children(pid: int) -> list[int]:
    try:
        tasks = Path(f"/proc/{pid}/task").iterdir()
        found: list[int] = []
        for task in tasks:
            found += [int(c) for c in (task / "children").read_text().split()]
        return found
    except OSError:
        return []


def _exe_and_argv(pid: int) -> tuple[str, list[str]] | None:
    try:
        exe = os.readlink(f"/proc/{pid}/exe")
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return None
    return exe, [a.decode(errors="replace") for a in argv if a]


def _run_watching_children(
    cmd: list[str], env: dict[str, str], timeout: float
) -> tuple[subprocess.CompletedProcess[str], dict[int, tuple[str, list[str]]]]:
    """Run ``cmd``; also return every child process seen (pid -> (exe, argv)) while it ran."""
    seen: dict[int, tuple[str, list[str]]] = {}
    with subprocess.Popen(
        cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as proc:
        deadline = time.monotonic() + timeout
        while proc.poll() is None and time.monotonic() < deadline:
            for child in _children(proc.pid):
                # Read again at every poll: a child caught between fork and exec still shows
                # the parent's argv; the last look (after its exec) is the one kept.
                if (info := _exe_and_argv(child)) is not None:
                    seen[child] = info
            time.sleep(0.02)
        if proc.poll() is None:
            proc.kill()
        out, err = proc.communicate()
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err), seen


def test_frozen_self_test_in_a_clean_environment(bundle: Path, tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    env = clean_env(home, QT_QPA_PLATFORM="offscreen")
    proc, children = _run_watching_children([str(bundle), "--self-test"], env, timeout=240)
    report = f"rc={proc.returncode}\n--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}"
    assert proc.returncode == 0, report
    assert "self-test: OK" in proc.stdout, report

    # the collector child is the bundle's own executable, not a Python from PATH
    collectors = [(exe, argv) for exe, argv in children.values() if "--collector-child" in argv]
    assert collectors, f"no --collector-child process seen; children: {children}\n{report}"
    assert all(Path(exe) == bundle.resolve() for exe, _ in collectors), collectors


def test_frozen_bundle_check_finds_certificates_libudev_drives_and_data_dir(
    bundle: Path, tmp_path: Path
) -> None:
    env = clean_env(tmp_path, QT_QPA_PLATFORM="offscreen")
    proc = subprocess.run(
        [str(bundle), "--bundle-check"], env=env, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    check = json.loads(proc.stdout)
    assert check["problems"] == []
    assert check["frozen"] is True
    assert Path(check["executable"]) == bundle.resolve()
    # certifi's CA bundle inside the bundle, loaded into a TLS context (no SSL_CERT_FILE here)
    assert check["cafile_in_bundle"] is True
    assert Path(check["cafile"]).is_relative_to(bundle.parent)
    assert check["tls_ca_certs"] > 100
    # libudev from the system (ctypes), listing this machine's block devices
    assert check["libudev"] and not Path(check["libudev"]).is_relative_to(bundle.parent)
    if any(Path("/sys/class/block").iterdir()):
        assert check["udev_block_devices"] > 0
    assert check["drives"] >= 0
    # the user's data dir follows HOME
    assert Path(check["user_data_dir"]) == tmp_path / ".local" / "share" / "demo-app"
    assert {"libqxcb.so", "libqoffscreen.so", "libqwayland.so"} <= set(check["qt_platforms"])
    assert not {"libqeglfs.so", "libqvnc.so", "libqlinuxfb.so"} & set(check["qt_platforms"])


def test_bundle_stays_within_its_size_target(bundle: Path, build: ModuleType) -> None:
    size = build.tree_size(bundle.parent)
    assert 50e6 < size <= 130e6, f"{size / 1e6:.1f} MB unpacked"  # Qt is in, the extras are not
    internal = bundle.parent / "_internal"
    assert not list(internal.rglob("translations"))
    assert not list(internal.rglob("libqgtk3.so"))
    assert not list(internal.rglob("libstdc++.so*"))  # from the system (Mesa needs the newest)


def test_every_bundled_library_is_needed_by_a_kept_binary(bundle: Path, build: ModuleType) -> None:
    """The bundle holds the ``DT_NEEDED`` closure of what Python and Qt load by path (extension
    modules, Qt plugins, libpython) and nothing more: a build host with GTK3 and the X libraries
    installed must not add libraries that only a dropped plugin (the GTK3 platform theme) used."""
    internal = bundle.parent / "_internal"
    elves = [p for p in internal.rglob("*") if build.is_elf(p)]
    dynamic = build.elf_dynamic(elves)
    by_name: dict[str, list[Path]] = {}
    for path in internal.rglob("*"):  # the files, and PyInstaller's top-level symlinks to them
        if path.is_file():
            by_name.setdefault(path.name, []).append(path.resolve())
    roots = [
        p
        for p in elves
        if ".cpython-" in p.name
        or (p.name.endswith(".abi3.so") and not p.name.startswith("lib"))
        or "plugins" in p.relative_to(internal).parts
        or p.name.startswith("libpython")
    ]
    assert len(roots) > 40
    reached: set[Path] = set()
    todo = [p.resolve() for p in roots]
    while todo:
        path = todo.pop()
        if path not in reached:
            reached.add(path)
            for soname in dynamic[path].needed if path in dynamic else ():
                todo += by_name.get(soname, [])
    unneeded = sorted(str(p.relative_to(internal)) for p in elves if p.resolve() not in reached)
    assert unneeded == [], f"bundled, but no kept binary needs them: {unneeded}"


def test_bundle_carries_certifi_and_not_libudev(bundle: Path) -> None:
    internal = bundle.parent / "_internal"
    pem = internal / "certifi" / "cacert.pem"
    assert pem.read_text().count("BEGIN CERTIFICATE") > 100
    assert not list(bundle.parent.rglob("libudev.so*"))  # loaded from the system by pyudev
    assert list(internal.glob("desktop_telemetry-*.dist-info/METADATA"))  # the library version


def _xvfb(tmp_path: Path, width: int, height: int) -> tuple[subprocess.Popen[bytes], str]:
    """An Xvfb server on a free display (``-displayfd``); returns it and its DISPLAY."""
    read_fd, write_fd = os.pipe()
    server = subprocess.Popen(
        ["Xvfb", "-displayfd", str(write_fd), "-screen", "0", f"{width}x{height}x24",
         "-nolisten", "tcp", "-noreset"],
        pass_fds=(write_fd,),
        stdout=subprocess.DEVNULL,
        stderr=(tmp_path / "xvfb.log").open("wb"),
    )  # fmt: skip
    os.close(write_fd)
    with os.fdopen(read_fd) as pipe:
        number = pipe.readline().strip()
    if not number:
        server.kill()
        pytest.fail(f"Xvfb did not start: {(tmp_path / 'xvfb.log').read_text()}")
    return server, f":{number}"


def test_frozen_main_window_screenshot_under_xvfb(bundle: Path, tmp_path: Path) -> None:
    screen = (1280, 1024)
    server, display = _xvfb(tmp_path, *screen)
    try:
        home = tmp_path / "home"
        home.mkdir()
        shot = tmp_path / "main-window.png"
        env = clean_env(home, DISPLAY=display, QT_QPA_PLATFORM="xcb")
        proc = subprocess.run(
            [str(bundle), "--screenshot", str(shot)],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
    finally:
        server.terminate()
        server.wait(10)
    assert proc.returncode == 0, f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    # a screenshot touches nothing of the user's: it ran on a throwaway data dir
    assert not (home / ".local" / "share" / "demo-app").exists(), sorted(home.rglob("*"))
    image = QImage(str(shot))
    assert not image.isNull(), f"{shot} is not a readable image"
    # a real main window: not a stub, not larger than the screen it was shown on
    assert 640 <= image.width() <= screen[0] and 400 <= image.height() <= screen[1]
    image = image.convertToFormat(QImage.Format.Format_RGB32)
    pixels = Counter(
        image.pixel(x, y) for y in range(0, image.height(), 2) for x in range(0, image.width(), 2)
    )
    total = sum(pixels.values())
    assert len(pixels) >= 200, f"only {len(pixels)} colours: blank or text not rendered"
    assert pixels.most_common(1)[0][1] / total < 0.9, "one colour covers 90% of the window"
