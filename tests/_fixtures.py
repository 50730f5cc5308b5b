"""Fixtures that several test folders share but that must not apply everywhere.

A folder's ``conftest.py`` imports the ones it wants (an imported fixture is registered in that
conftest's scope, autouse ones included), so e.g. the proxy variables are cleared for the
loopback-HTTP suites without touching the packaging or demo suites' environment. Fixtures that
are harmless everywhere (not autouse) live in ``tests/conftest.py`` instead.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.collector_process import start_in_thread

_PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY")


@pytest.fixture(autouse=True)
def _direct_loopback(monkeypatch: pytest.MonkeyPatch) -> None:
    """Requests to 127.0.0.1 never go through a proxy set in the environment."""
    for name in _PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")


@pytest.fixture(autouse=True)
def _no_environment_veto(monkeypatch: pytest.MonkeyPatch) -> None:
    """The developer's DO_NOT_TRACK or TELEMETRY_DISABLED must not leak into the tests: a
    test about the veto sets it itself."""
    monkeypatch.delenv("DO_NOT_TRACK", raising=False)
    monkeypatch.delenv("TELEMETRY_DISABLED", raising=False)


@dataclass(frozen=True)
class RunningCollector:
    """Where the :func:`collector` fixture listens and the SQLite file it stores into."""

    url: str
    database: Path


@pytest.fixture
def collector(tmp_path: Path) -> Iterator[RunningCollector]:
    """The real collector app, served by uvicorn on a thread of this process."""
    database = tmp_path / "collector.db"
    url, stop = start_in_thread(database)
    try:
        yield RunningCollector(url=url, database=database)
    finally:
        stop()
