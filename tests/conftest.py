"""Fixtures for every test folder: a client data dir and a client on a real SQLite file there.

None is autouse; folders that need something else under these names define their own.
Fixtures only some folders may use (autouse ones among them) are in ``tests/_fixtures.py``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    import telemetry

# Every folder that creates a QApplication (qt, demo, packaging) runs without a display, also
# when run on its own: set before pytest-qt creates the application.
os.environ["QT_QPA_PLATFORM"] = "offscreen"


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    """Where the test's client keeps its data (created by the client)."""
    return tmp_path / "data"


@pytest.fixture
def client(data_dir: Path) -> Iterator[telemetry.Client]:
    """A client that records to a real SQLite file and does not upload."""
    import telemetry  # here, so suites that never ask for a client do not import it

    c = telemetry.create_client(
        "test-project", "test-app", "1.2.3", data_dir=data_dir, upload=False
    )
    yield c
    c.close()
