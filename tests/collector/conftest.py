"""Fixtures for the collector tests: an in-thread collector on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.collector_process import start_in_thread


@dataclass(frozen=True)
class RunningCollector:
    url: str
    database: Path


@pytest.fixture
def collector(tmp_path: Path) -> Iterator[RunningCollector]:
    database = tmp_path / "collector.db"
    url, stop = start_in_thread(database)
    try:
        yield RunningCollector(url=url, database=database)
    finally:
        stop()
