"""lintian on the .deb: no error and no warning that ``packaging/linux/lintian-overrides`` does
not override (each override is justified there and in ``packaging/linux/lintian.md``)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from types import ModuleType

import pytest

pytestmark = pytest.mark.timeout(900)  # may build the bundle; lintian itself takes ~30 s


def _lintian(deb: Path) -> tuple[int, list[str]]:
    proc = subprocess.run(
        [
            "lintian",
            "--no-cfg",
            "--fail-on",
            "error,warning",
            "--tag-display-limit",
            "0",
            "--show-overrides",
            str(deb),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    return proc.returncode, proc.stdout.splitlines()


def test_lintian_finds_no_error_or_warning_that_is_not_overridden(
    deb: Path, build: ModuleType
) -> None:
    returncode, lines = _lintian(deb)
    tags = [line for line in lines if re.match(r"[EWIPXO]: ", line)]
    assert tags, lines  # lintian ran and reported (at least the overridden tags)
    problems = [line for line in tags if line[:2] in {"E:", "W:"}]
    assert problems == [], "\n".join(problems)
    assert returncode == 0, lines
    # every override is used: an override that matches nothing hides nothing and must go
    overridden = {line.split()[2] for line in tags if line.startswith("O: ")}
    listed = {
        line.split()[1]
        for line in (build.LINUX / "lintian-overrides").read_text().splitlines()
        if line.startswith(f"{build.PACKAGE}: ")
    }
    assert overridden == listed
    assert not [
        line for line in lines if "unused-override" in line or "mismatched-override" in line
    ]
