"""The library as an app developer gets it: the built wheel in a fresh virtualenv.

The wheel and sdist are built with ``uv build`` into a temporary dir (the wheel from the sdist,
so both build). The wheel must hold the library only (no ``demo_app``, no ``demo-app``
script) and the license. A new virtualenv gets the wheel with its ``collector`` extra (``uv pip
install``, from uv's cache or PyPI); from a directory outside the repository, it then imports
``telemetry`` from the venv, runs ``telemetry --help``, and starts the collector on a free port
of 127.0.0.1, waits for ``/healthz`` and stops it with SIGTERM (exit 0).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
import zipfile
from pathlib import Path

import pytest

from tests.docs._blocks import REPO

_TIMEOUT = 600.0
_POLL = 0.05


def _uv() -> str:
    """The uv that runs this suite (``uv run`` exports it as ``UV``), else the one on PATH."""
    found = os.environ.get("UV") or shutil.which("uv")
    assert found, "uv is required (the README's test command is `uv run pytest`)"
    return found


def _clean_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    env["XDG_DATA_HOME"] = str(tmp_path / "xdg-data")
    env["NO_PROXY"] = "127.0.0.1,localhost"
    return env


def _run(args: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        args, cwd=cwd, env=env, capture_output=True, text=True, timeout=_TIMEOUT, check=False
    )
    assert done.returncode == 0, f"{args}: exit {done.returncode}\n{done.stdout}\n{done.stderr}"
    return done


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The library's sdist and wheel, built from this checkout."""
    out = tmp_path_factory.mktemp("dist")
    env = _clean_env(out)
    _run([_uv(), "build", "--package", "desktop-telemetry", "--out-dir", str(out)], REPO, env)
    return out


def _wheel(built: Path) -> Path:
    (wheel,) = built.glob("desktop_telemetry-*.whl")
    return wheel


def test_the_wheel_holds_the_library_only(built: Path) -> None:
    with zipfile.ZipFile(_wheel(built)) as wheel:
        names = wheel.namelist()
        (entry_points,) = (n for n in names if n.endswith(".dist-info/entry_points.txt"))
        scripts = wheel.read(entry_points).decode()
        (metadata,) = (n for n in names if n.endswith(".dist-info/METADATA"))
        meta = wheel.read(metadata).decode()
    assert [n for n in names if "demo" in n.lower()] == []
    assert {n.split("/")[0] for n in names} == {"telemetry", _wheel_dist_info(names)}
    assert "telemetry = telemetry.cli:main" in scripts
    assert "demo-app" not in scripts
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)
    assert "License-Expression: Apache-2.0" in meta
    assert "Provides-Extra: collector" in meta
    assert "Provides-Extra: qt" in meta
    (sdist,) = built.glob("desktop_telemetry-*.tar.gz")
    assert sdist.stat().st_size > 0


def _wheel_dist_info(names: list[str]) -> str:
    (dist_info,) = {n.split("/")[0] for n in names if ".dist-info/" in n}
    return dist_info


def test_a_fresh_venv_imports_it_runs_the_command_and_the_collector(
    built: Path, tmp_path: Path
) -> None:
    env = _clean_env(tmp_path)
    venv = tmp_path / "venv"
    _run([_uv(), "venv", "--python", sys.executable, str(venv)], tmp_path, env)
    python = venv / "bin" / "python"
    wheel = _wheel(built)
    _run(
        [_uv(), "pip", "install", "--python", str(python), f"{wheel}[collector]"],
        tmp_path,
        env,
    )
    elsewhere = tmp_path / "elsewhere"  # not the checkout: the venv's telemetry is imported
    elsewhere.mkdir()

    found = _run(
        [
            str(python),
            "-c",
            "import json, telemetry; "
            "print(json.dumps([telemetry.__file__, telemetry.__version__]))",
        ],
        elsewhere,
        env,
    )
    where, version = json.loads(found.stdout)
    assert Path(where).is_relative_to(venv)
    assert version == _version()

    no_demo = subprocess.run(
        [str(python), "-c", "import demo_app"], cwd=elsewhere, env=env, capture_output=True
    )
    assert no_demo.returncode != 0
    assert not (venv / "bin" / "demo-app").exists()

    helped = _run([str(venv / "bin" / "telemetry"), "--help"], elsewhere, env)
    assert helped.stdout.startswith("usage: telemetry")

    _start_and_stop_collector(python, elsewhere, env)


def _version() -> str:
    scope: dict[str, str] = {}
    exec((REPO / "telemetry" / "_version.py").read_text(encoding="utf-8"), scope)
    return scope["__version__"]


def _start_and_stop_collector(python: Path, cwd: Path, env: dict[str, str]) -> None:
    ready = cwd / "ready"
    proc = subprocess.Popen(
        [
            str(python),
            "-m",
            "telemetry.collector",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--database",
            str(cwd / "collector.db"),
            "--ready-file",
            str(ready),
        ],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not (ready.exists() and ready.read_text().strip()):
            assert proc.poll() is None, f"the collector exited {proc.returncode}"
            assert time.monotonic() < deadline, "the collector never wrote its ready file"
            time.sleep(_POLL)
        url = ready.read_text().strip()
        direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback only
        with direct.open(f"{url}/healthz", timeout=10) as answer:
            assert json.load(answer) == {"status": "ok"}
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        output, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, output
