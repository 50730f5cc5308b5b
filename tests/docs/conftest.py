"""Fixtures of the documentation tests; prints how many code blocks ran at the end of a run."""

from __future__ import annotations

import pytest

from tests._fixtures import _no_environment_veto

__all__ = ["_no_environment_veto"]

#: Filled by test_code_blocks.py: the blocks that ran and passed, and the ones marked not-run.
BLOCK_COUNTS: dict[str, list[str]] = {"run": [], "not-run": []}


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    ran, marked = BLOCK_COUNTS["run"], BLOCK_COUNTS["not-run"]
    if ran or marked:
        terminalreporter.write_line(
            f"documentation code blocks: {len(ran)} run and passed, "
            f"{len(marked)} marked not-run with a reason"
        )
