"""Fixtures for the packaging tests: the frozen bundle (built once per session, cached by a hash
of the spec and sources), the build module, and a clean environment to run the bundle in."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

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
