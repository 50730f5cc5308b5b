"""Helpers for the core tests; ``data_dir`` and ``client`` (a client on a real SQLite file in a
temporary data dir) come from ``tests/conftest.py``."""

from __future__ import annotations

import telemetry


def user_events(client: telemetry.Client) -> list[dict]:
    """Queued events other than the client's own $identify."""
    return [e.as_dict() for e in client._store.iter_events() if e.event_type != "$identify"]
