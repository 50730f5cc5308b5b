"""The demo's command line, run as real processes: self-test, screenshot, catalogue, collector
child (the frozen bundle's path), ``--endpoint`` and ``--no-collector``."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import httpx
import pytest
from PySide6.QtGui import QImage

import demo_app.app as demo_main
import telemetry
from tests.collector_process import CollectorProcess
from tests.delivery._support import read_line

REPO = Path(__file__).resolve().parents[2]


def _run(*args: str, timeout: float = 180, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {**os.environ, "PYTHONPATH": str(REPO), **env}
    environ.pop("DO_NOT_TRACK", None)
    return subprocess.run(
        [sys.executable, "-m", "demo_app", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO,
        env=environ,
        check=False,
    )


def _processes_mentioning(text: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if text in cmdline:
            found.append(int(entry.name))
    return found


def test_catalogue_flag_prints_the_declared_events() -> None:
    proc = _run("--telemetry-catalogue", timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == demo_main.CATALOGUE_PATH.read_text(encoding="utf-8")
    parsed = tomllib.loads(proc.stdout)
    catalogue = telemetry.EventCatalogue.from_file(demo_main.CATALOGUE_PATH)
    names = set(parsed["events"])
    for name in ("Application start", "Select image", "Toggle drive", "Flash", "Done", "Cancel",
                 "Drive unplugged", "Validation error", "Write failed", "Toggle setting",
                 "Open external link"):  # fmt: skip
        assert f"[Etcher] {name}" in names
    assert catalogue is not None


def test_self_test_flashes_validates_and_delivers(tmp_path: Path) -> None:
    data = tmp_path / "data"
    env = {k: v for k, v in os.environ.items() if k != "QT_QPA_PLATFORM"}
    proc = subprocess.run(
        [sys.executable, "-m", "demo_app", "--self-test", "--data-dir", str(data)],
        capture_output=True,
        text=True,
        timeout=240,
        cwd=REPO,
        env={**env, "PYTHONPATH": str(REPO)},
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "self-test: OK" in proc.stdout
    assert "validation passed" in proc.stdout
    db = data / "collector" / "collector.db"
    rows = CollectorProcess(db).rows()
    names = {r["event_type"] for r in rows}
    assert set(demo_main.SELF_TEST_EVENTS) <= names
    # The collector child is gone once the demo exited.
    assert _processes_mentioning(str(db)) == []
    # The demo's DIR is the CLI's DIR: the client's database is there, delivered.
    status = _telemetry("--data-dir", str(data), "status", "--json")
    assert status.returncode == 0, status.stderr
    info = json.loads(status.stdout)
    assert info["component_name"] == "demo-app" and info["counters"]["sent_events"] >= 5


def test_quick_start_command_without_a_display_runs_the_self_test(tmp_path: Path) -> None:
    """The README's first command, on a machine without a display (CI, a container)."""
    dropped = ("QT_QPA_PLATFORM", "DISPLAY", "WAYLAND_DISPLAY", "DO_NOT_TRACK")
    env = {k: v for k, v in os.environ.items() if k not in dropped}
    proc = subprocess.run(
        [sys.executable, "-m", "demo_app", "--data-dir", str(tmp_path / "d")],
        capture_output=True, text=True, timeout=240, cwd=REPO,
        env={**env, "PYTHONPATH": str(REPO)}, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "no display found" in proc.stdout and "self-test: OK" in proc.stdout
    assert "propagateSizeHints" not in proc.stderr


def _user_env(tmp_path: Path) -> dict[str, str]:
    """A user of their own: HOME and the XDG data dir under ``tmp_path``."""
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    return {"HOME": str(home), "XDG_DATA_HOME": str(home / ".local" / "share")}


def _assert_png(shot: Path) -> None:
    image = QImage(str(shot))
    assert not image.isNull() and image.width() >= 600
    colours = {image.pixel(x, y) for x in range(0, image.width(), 5)
               for y in range(0, image.height(), 5)}  # fmt: skip
    assert len(colours) > 16


def _telemetry(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """``python -m telemetry ARGS`` in a child process."""
    environ = {**os.environ, **env}
    environ.pop("DO_NOT_TRACK", None)
    return subprocess.run(
        [sys.executable, "-m", "telemetry", *args],
        capture_output=True, text=True, timeout=60, cwd=REPO, env=environ, check=False,
    )  # fmt: skip


def test_screenshot_touches_nothing_of_the_users(tmp_path: Path) -> None:
    """No collector, nothing written to the user's data dir, nothing sent (even with
    --endpoint): the window is shot on a throwaway data dir."""
    user = _user_env(tmp_path)
    shot = tmp_path / "window.png"
    with CollectorProcess(tmp_path / "elsewhere.db") as collector:
        proc = _run("--screenshot", str(shot), **user)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        _assert_png(shot)
        again = _run("--screenshot", str(shot), "--endpoint", collector.url, **user)
        assert again.returncode == 0, again.stdout + again.stderr
        assert collector.rows() == []
    assert "collector" not in proc.stdout + again.stdout
    data = Path(user["XDG_DATA_HOME"])
    assert not data.exists() or sorted(data.rglob("*")) == [], "it wrote to the user's data dir"


def test_screenshot_with_a_data_dir_records_there_for_the_cli(tmp_path: Path) -> None:
    """`--data-dir DIR` means what `telemetry --data-dir DIR` means: the telemetry data dir."""
    shot = tmp_path / "window.png"
    data = tmp_path / "data"
    proc = _run("--data-dir", str(data), "--screenshot", str(shot))
    assert proc.returncode == 0, proc.stderr
    _assert_png(shot)
    status = _telemetry("--data-dir", str(data), "status", "--json")
    assert status.returncode == 0, status.stderr
    info = json.loads(status.stdout)
    assert info["component_name"] == demo_main.COMPONENT
    assert info["queue"]["events"] >= 2  # $identify, Application start, Close application
    assert (data / "telemetry.db").exists() and not (data / "collector").exists()


def _run_until_window_opens(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """The demo with its window open (offscreen), ended by SIGTERM as a desktop session does."""
    environ = {**os.environ, "PYTHONPATH": str(REPO), "QT_QPA_PLATFORM": "offscreen", **env}
    environ.pop("DO_NOT_TRACK", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "demo_app", *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO, env=environ,
    )  # fmt: skip
    lines = []
    try:
        while not (lines and lines[-1].startswith("demo: window open")):
            lines.append(read_line(proc, 120))
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    return subprocess.CompletedProcess(proc.args, proc.returncode, "\n".join(lines) + out, err)


def test_one_name_for_the_demo_and_its_data_dir(tmp_path: Path) -> None:
    """`telemetry --app demo-app` finds what the demo recorded in its default data dir."""
    user = _user_env(tmp_path)
    proc = _run_until_window_opens("--no-collector", **user)
    assert proc.returncode == 128 + signal.SIGTERM, proc.stdout + proc.stderr
    status = _telemetry("--app", demo_main.COMPONENT, "status", "--json", **user)
    assert status.returncode == 0, status.stderr
    info = json.loads(status.stdout)
    expected = Path(user["XDG_DATA_HOME"]) / demo_main.COMPONENT / "telemetry"
    assert Path(info["data_dir"]) == expected
    assert (info["project_name"], info["component_name"]) == (demo_main.PROJECT, "demo-app")
    assert info["queue"]["events"] >= 2
    assert not (Path(user["XDG_DATA_HOME"]) / "etcher-demo").exists()


def test_the_old_data_dir_is_moved_to_the_new_name(tmp_path: Path) -> None:
    user = _user_env(tmp_path)
    old = Path(user["XDG_DATA_HOME"]) / "etcher-demo"
    with telemetry.create_client(
        demo_main.PROJECT, demo_main.COMPONENT, data_dir=old / "telemetry", upload=False
    ) as before:
        kept = before.track("[Etcher] Application start", {})
    (old / "settings.json").write_text('{"show_system_drives": true}\n')
    proc = _run_until_window_opens("--no-collector", **user)
    assert proc.returncode == 128 + signal.SIGTERM, proc.stdout + proc.stderr
    new = Path(user["XDG_DATA_HOME"]) / "demo-app"
    assert f"moved the demo's data from {old} to {new}" in proc.stdout
    assert not old.exists()
    assert json.loads((new / "settings.json").read_text())["show_system_drives"] is True
    events = _telemetry("--app", "demo-app", "events", "--json", **user)
    assert kept in {json.loads(line)["insert_id"] for line in events.stdout.splitlines()}


def test_default_root_is_the_component_s_data_dir(monkeypatch: pytest.MonkeyPatch, tmp_path):
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    root, data = demo_main.data_dirs(None)
    assert root == tmp_path / "demo-app"
    assert data == telemetry.default_data_dir(demo_main.COMPONENT)
    assert demo_main.data_dirs(tmp_path / "d") == (tmp_path / "d", tmp_path / "d")


def test_endpoint_flag_sends_to_that_collector(tmp_path: Path) -> None:
    with CollectorProcess(tmp_path / "elsewhere.db") as collector:
        proc = _run("--self-test", "--endpoint", collector.url, "--data-dir", str(tmp_path / "d"))
        assert proc.returncode == 0, proc.stdout + proc.stderr
        names = {r["event_type"] for r in collector.rows()}
    assert {"[Etcher] Flash", "[Etcher] Done"} <= names
    assert not (tmp_path / "d" / "collector").exists()


def test_collector_child_flag_runs_the_collector(tmp_path: Path) -> None:
    """What the frozen bundle does: its own executable started with ``--collector-child``."""
    ready = tmp_path / "ready"
    environ = {**os.environ, "PYTHONPATH": str(REPO)}
    child = subprocess.Popen(
        [sys.executable, "-m", "demo_app", "--collector-child", "--host", "127.0.0.1",
         "--port", "0", "--database", str(tmp_path / "c.db"), "--ready-file", str(ready)],
        cwd=REPO, env=environ, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while not (ready.exists() and ready.read_text().strip()) and time.monotonic() < deadline:
            assert child.poll() is None, child.stderr.read() if child.stderr else ""
            time.sleep(0.05)
        url = ready.read_text().strip()
        assert url.startswith("http://127.0.0.1:")
        assert httpx.get(f"{url}/healthz", timeout=10).status_code == 200
    finally:
        child.terminate()
        child.wait(15)
    assert child.returncode == 0


def test_frozen_bundle_starts_the_collector_from_its_own_executable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    assert demo_main.collector_command(["--port", "0"]) == [
        sys.executable,
        "--collector-child",
        "--port",
        "0",
    ]
    monkeypatch.delattr(sys, "frozen")
    assert demo_main.collector_command(["--port", "0"])[:4] == [
        sys.executable,
        "-m",
        "demo_app",
        "--collector-child",
    ]


def test_demo_app_script_is_installed() -> None:
    script = Path(sys.executable).parent / "demo-app"
    assert script.exists()
    proc = subprocess.run(
        [str(script), "--version"], capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.returncode == 0 and proc.stdout.startswith("demo-app ")
