"""The license texts the demo's bundle must ship, collected from this environment.

The dev environment has every distribution the bundle is built from (PyInstaller freezes it),
so the collection here is the collection at build time.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "packaging" / "third_party_licenses.py"


@pytest.fixture(scope="module")
def licenses() -> ModuleType:
    spec = importlib.util.spec_from_file_location("third_party_licenses", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["third_party_licenses"] = module
    spec.loader.exec_module(module)
    return module


def test_the_demo_bundle_closure_has_a_text_for_every_distribution(licenses: ModuleType) -> None:
    shipped = {d.name.lower().replace("_", "-"): d for d in licenses.collect()}
    for name in (
        "desktop-telemetry", "desktop-telemetry-demo", "httpx", "httpcore", "certifi",
        "starlette", "uvicorn", "pyside6-essentials", "shiboken6", "psutil", "platformdirs",
        "pyudev", "sqlite-utils", "pyinstaller",
    ):  # fmt: skip
        assert name in shipped, name
    for excluded in ("psycopg", "psycopg-binary", "pip", "pytest", "mypy", "mkdocs"):
        assert excluded not in shipped, excluded
    assert [name for name, d in shipped.items() if not d.texts] == []
    assert "Apache License" in shipped["desktop-telemetry"].texts["LICENSE"]
    pyside = "\n".join(shipped["pyside6-essentials"].texts.values())
    assert "GNU LESSER GENERAL PUBLIC LICENSE" in pyside
    assert "GNU GENERAL PUBLIC LICENSE" in pyside  # the LGPL-3.0 supplements the GPL-3.0
    assert "Mozilla Public License" in "\n".join(shipped["certifi"].texts.values())


def test_the_notice_file_lists_python_then_every_distribution(
    licenses: ModuleType, tmp_path: Path
) -> None:
    out = tmp_path / "THIRD-PARTY-LICENSES.txt"
    shipped = licenses.write_notices(out)
    text = out.read_text(encoding="utf-8")
    assert "PYTHON SOFTWARE FOUNDATION LICENSE" in text
    for dist in shipped:
        assert f"\n{dist.name} {dist.version} (" in text
    assert text.count("=" * 78) == 2 * (len(shipped) + 1)


def test_a_distribution_without_a_text_fails_the_strict_render(licenses: ModuleType) -> None:
    bare = licenses.DistributionLicense("no-text", "1.0", "Some-Unknown-License", {})
    with pytest.raises(licenses.MissingLicenseText, match="no-text"):
        licenses.render([bare])
    assert "(no license text found)" in licenses.render([bare], strict=False)


def test_the_command_line_writes_the_file(tmp_path: Path) -> None:
    out = tmp_path / "notices.txt"
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "-o", str(out)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    assert "distributions and Python" in done.stdout
    assert "uvicorn" in out.read_text(encoding="utf-8")
