"""Opening the storage that the ``--database`` argument names: PostgreSQL or SQLite."""

from __future__ import annotations

from pathlib import Path

from telemetry.collector._sqlite_store import EventStore
from telemetry.collector._storage import Storage

__all__ = ["is_postgres_url", "open_storage"]


def is_postgres_url(database: str | Path) -> bool:
    """Whether ``database`` names a PostgreSQL server rather than a SQLite file."""
    text = str(database)
    return text.startswith(("postgresql://", "postgres://"))


def open_storage(database: str | Path | Storage) -> Storage:
    """Open (and migrate) the storage that ``database`` names: a ``postgresql://`` URL or a
    SQLite file path. An already open :class:`Storage` is returned as is."""
    if isinstance(database, Storage):
        return database
    if is_postgres_url(database):
        from telemetry.collector._postgres_store import PostgresStore

        store: Storage = PostgresStore(str(database))
        return store
    return EventStore(database)
