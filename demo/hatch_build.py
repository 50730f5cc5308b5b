"""Build hook of the demo distribution: puts ``../demo_app`` into a wheel built from the repository.

The demo's sources stay at the repository root (so ``uv run python -m demo_app`` works from a
fresh clone). The sdist maps them in with ``force-include``; a wheel built from that sdist finds
them next to ``pyproject.toml``; a wheel built straight from ``demo/`` gets them from this hook.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface


class DemoSourcesHook(BuildHookInterface):  # type: ignore[misc,type-arg,unused-ignore]
    """Force-include the repository's ``demo_app/`` when it is not already next to this file."""

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        """Map ``../demo_app`` to ``demo_app`` in a standard wheel built from the repository."""
        if version == "editable":
            return
        root = Path(self.root)
        if (root / "demo_app").is_dir():
            return
        build_data["force_include"][str(root.parent / "demo_app")] = "demo_app"
        if not (root / "LICENSE").is_file():
            build_data["extra_metadata"][str(root.parent / "LICENSE")] = "licenses/LICENSE"
