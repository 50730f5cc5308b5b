"""The demo's own settings ("Show system drives", "Validate after flash"), kept as JSON.

Telemetry consent is not here: it belongs to the telemetry client (``client.set_consent``).
A settings file that cannot be read gives the defaults; one that cannot be written keeps the
value for this run only (logged), as Etcher reverts nothing the user can see.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import asdict, dataclass
from pathlib import Path

__all__ = ["DemoSettings"]

log = logging.getLogger("demo_app")


@dataclass
class DemoSettings:
    """``show_system_drives`` (default off) and ``validate_after_flash`` (default on)."""

    show_system_drives: bool = False
    validate_after_flash: bool = True
    path: Path | None = None

    @classmethod
    def load(cls, path: Path | None) -> DemoSettings:
        """Read ``path`` (2-space JSON, like Etcher's ``config.json``); defaults if absent."""
        settings = cls(path=path)
        if path is None:
            return settings
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return settings
        if isinstance(data, dict):
            for key in ("show_system_drives", "validate_after_flash"):
                if isinstance(data.get(key), bool):
                    setattr(settings, key, data[key])
        return settings

    def save(self) -> None:
        """Write the file atomically (temp file + rename)."""
        if self.path is None:
            return
        data = {k: v for k, v in asdict(self).items() if k != "path"}
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_suffix(".tmp")
            tmp.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
            os.replace(tmp, self.path)
        except OSError as exc:
            log.warning("demo settings not saved: %s", exc)
