"""lintian on the .deb: no error and no warning that ``packaging/linux/lintian-overrides`` does
not override (each override is justified there and in ``packaging/linux/lintian.md``)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.timeout(900)  # may build the bundle; lintian itself takes ~30 s


def test_lintian_finds_no_error_or_warning_that_is_not_overridden(deb: Path) -> None:
    proc = subprocess.run(
        ["lintian", "--no-cfg", "--fail-on", "error,warning", "--display-info",
         "--tag-display-limit", "0", str(deb)],
        capture_output=True,
        text=True,
        timeout=600,
    )  # fmt: skip
    tags = [line for line in proc.stdout.splitlines() if re.match(r"[EWIPX]: ", line)]
    assert tags, proc.stdout + proc.stderr  # lintian ran (it reports info tags too)
    problems = [line for line in tags if line[:2] in {"E:", "W:"}]
    assert problems == [], "\n".join(problems)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # every override matches a tag: one that matches nothing hides nothing and must go
    assert [line for line in tags if "unused-override" in line] == []
