"""The collector uses only public names of the client side: it is deployed on its own, so it may
import ``telemetry.errors``, ``telemetry.transport``, ``telemetry.wire`` and other public
modules, never a private ``telemetry._*`` module (whose contents may change with any release)."""

from __future__ import annotations

import ast
from pathlib import Path

import telemetry.collector

COLLECTOR = Path(telemetry.collector.__file__).parent


def _imported_modules(path: Path) -> set[str]:
    modules: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            modules.add(node.module)
            if node.module == "telemetry":
                modules.update(f"telemetry.{alias.name}" for alias in node.names)
    return modules


def test_the_collector_imports_no_private_client_module() -> None:
    offending = {
        f"{path.name}: {module}"
        for path in sorted(COLLECTOR.rglob("*.py"))
        for module in _imported_modules(path)
        if module.startswith("telemetry.")
        and not module.startswith("telemetry.collector")
        and any(part.startswith("_") for part in module.split(".")[1:])
    }
    assert offending == set()
