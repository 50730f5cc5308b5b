"""Fixtures for the packaging tests: the frozen bundle (built once per session, cached by a hash
of the spec and sources), the build module, the .deb built from the bundle and its extracted
tree, and a clean environment to run the bundle in.

These tests set up their own Qt platform: ``uv run pytest tests/packaging`` (or with
``--confcutdir``, without the root conftest) must not need ``QT_QPA_PLATFORM`` from the shell.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

# Before pytest-qt creates the QApplication: no display is needed (the Xvfb test passes its own
# DISPLAY and QT_QPA_PLATFORM=xcb to the bundle it runs).
os.environ["QT_QPA_PLATFORM"] = "offscreen"

ROOT = Path(__file__).resolve().parents[2]
CACHE = ROOT / "build" / "packaging-cache"


def _load_build_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "_packaging_build", ROOT / "packaging" / "build.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def build() -> ModuleType:
    """``packaging/build.py`` as a module."""
    return _load_build_module()


@pytest.fixture(scope="session")
def bundle(build: ModuleType) -> Path:
    """The one-folder bundle's executable, reused from ``build/packaging-cache/<digest>/`` when
    the spec, the entry script, the sources and uv.lock are unchanged."""
    folder: Path = build.cached_bundle(CACHE)
    return folder / build.BUNDLE_NAME


def clean_env(home: Path, **extra: str) -> dict[str, str]:
    """What ``env -i`` leaves plus HOME and a system PATH: no venv, no SSL_CERT_FILE, no XDG_*."""
    return {"HOME": str(home), "PATH": "/usr/bin:/bin", **extra}


@pytest.fixture(scope="session")
def deb(bundle: Path, build: ModuleType, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The .deb built from the bundle: gzip at level 1 (a few seconds; lintian rejects an
    uncompressed one); the release build's xz size is printed by ``packaging/build.py``."""
    out = tmp_path_factory.mktemp("deb")
    path: Path = build.build_deb(
        bundle.parent, out, version=build._version(), compression="gzip", level=1
    )
    return path


@pytest.fixture(scope="session")
def package_root(deb: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The .deb's file tree, extracted with ``dpkg-deb --extract`` (control files in DEBIAN/)."""
    root = tmp_path_factory.mktemp("extracted")
    subprocess.run(["dpkg-deb", "--extract", str(deb), str(root)], check=True)
    subprocess.run(["dpkg-deb", "--control", str(deb), str(root / "DEBIAN")], check=True)
    return root
