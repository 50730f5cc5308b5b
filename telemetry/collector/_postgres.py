"""PostgreSQL storage (placeholder, filled in the storage step)."""

from __future__ import annotations

from telemetry.collector._storage import StorageUnavailable

__all__ = ["PostgresStore"]


def PostgresStore(dsn: str) -> object:
    raise StorageUnavailable("PostgreSQL storage is not available yet")
