"""Fixtures for the delivery tests: a collector on 127.0.0.1 and a fault server in front of it.

``collector`` (in-thread, on 127.0.0.1) and the autouse ``_direct_loopback`` come from
``tests/_fixtures.py``; ``data_dir`` from ``tests/conftest.py``.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests._fixtures import (  # noqa: F401  (fixtures: registered by the import)
    RunningCollector,
    _direct_loopback,
    _no_environment_veto,
    collector,
)
from tests.delivery.fault_server import FaultServer


@pytest.fixture
def server(collector: RunningCollector) -> Iterator[FaultServer]:  # noqa: F811
    """A fault server forwarding to :func:`collector` unless scripted otherwise."""
    with FaultServer(collector.url) as fault_server:
        yield fault_server
