"""Fixtures for the collector tests: an in-thread collector on 127.0.0.1, a real PostgreSQL.

``collector`` (and its ``RunningCollector``) come from ``tests/_fixtures.py``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from telemetry.collector import EventStore, Storage
from telemetry.collector._postgres_store import PostgresStore
from tests._fixtures import collector  # noqa: F401  (fixture: registered by the import)

from ._postgres_server import NoPostgres, fresh_database, postgres_server


@pytest.fixture(scope="session")
def postgres_admin_dsn() -> Iterator[str]:
    """A running PostgreSQL server (``$TELEMETRY_TEST_POSTGRES_DSN`` or a throwaway cluster).

    Never skips: without a server the tests that need one fail with the reason.
    """
    try:
        with postgres_server() as dsn:
            yield dsn
    except NoPostgres as exc:
        pytest.fail(str(exc), pytrace=False)


@pytest.fixture
def postgres_dsn(postgres_admin_dsn: str) -> Iterator[str]:
    """The DSN of a new, empty database (dropped after the test)."""
    with fresh_database(postgres_admin_dsn) as dsn:
        yield dsn


@pytest.fixture(params=["sqlite", "postgresql"])
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Storage]:
    """An open store of each backend, closed after the test."""
    store: Storage
    if request.param == "sqlite":
        store = EventStore(tmp_path / "c.db")
        try:
            yield store
        finally:
            store.close()
    else:
        dsn = request.getfixturevalue("postgres_dsn")
        store = PostgresStore(dsn)
        try:
            yield store
        finally:
            store.close()
