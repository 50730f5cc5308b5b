"""Fixtures for the core tests: a client on a real SQLite file in a temporary data dir."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

import telemetry


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
def client(data_dir: Path) -> Iterator[telemetry.Client]:
    c = telemetry.create_client(
        "test-project", "test-app", "1.2.3", data_dir=data_dir, upload=False
    )
    yield c
    c.close()


def user_events(client: telemetry.Client) -> list[dict]:
    """Queued events other than the client's own $identify."""
    return [e.as_dict() for e in client.store.iter_events() if e.event_type != "$identify"]
