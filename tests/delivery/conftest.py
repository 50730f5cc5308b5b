"""Fixtures for the delivery tests: a collector on 127.0.0.1 and a fault server in front of it."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.collector_process import start_in_thread
from tests.delivery.fault_server import FaultServer

_PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY")


@pytest.fixture(autouse=True)
def _direct_loopback(monkeypatch: pytest.MonkeyPatch) -> None:
    """Requests to 127.0.0.1 never go through a proxy set in the environment."""
    for name in _PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")


@dataclass(frozen=True)
class Collector:
    url: str
    database: Path


@pytest.fixture
def collector(tmp_path: Path) -> Iterator[Collector]:
    """The real collector app, served by uvicorn on a thread of this process."""
    database = tmp_path / "collector.db"
    url, stop = start_in_thread(database)
    try:
        yield Collector(url=url, database=database)
    finally:
        stop()


@pytest.fixture
def server(collector: Collector) -> Iterator[FaultServer]:
    """A fault server forwarding to :func:`collector` unless scripted otherwise."""
    with FaultServer(collector.url) as fault_server:
        yield fault_server


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "client"
