"""The dashboard's own way into the collector's database: read queries and write transactions
in either dialect (SQLite: two connections of its own to the file, so a long read never waits
behind ingest's lock; PostgreSQL: the store's connection pool), written once with ``?``
placeholders, and the few SQL fragments that differ between the dialects."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Final, Literal, Protocol, TypeVar

from telemetry.collector._storage import Storage, StorageUnavailable

__all__ = ["DashboardDB", "Executor", "open_dashboard_db"]

_T = TypeVar("_T")

Dialect = Literal["sqlite", "postgresql"]


class Executor(Protocol):
    """Runs one statement inside a write transaction."""

    def __call__(self, sql: str, params: Sequence[object] = ()) -> list[tuple[Any, ...]]: ...


class DashboardDB:
    """Reads and writes of the dashboard on one collector database."""

    dialect: Dialect

    def read(self, sql: str, params: Sequence[object] = ()) -> list[tuple[Any, ...]]:
        """The rows of one query (``?`` placeholders)."""
        raise NotImplementedError

    def write(self, work: Callable[[Executor], _T]) -> _T:
        """Run ``work`` in one write transaction; :class:`StorageUnavailable` on failure."""
        raise NotImplementedError

    def close(self) -> None:
        """Release what this object opened (idempotent)."""

    # ---------------------------------------------------------------- dialect fragments

    def json_text(self, column: str, *path: str | int) -> str:
        """SQL for the text at ``path`` in the JSON of ``column`` (NULL when absent)."""
        if self.dialect == "sqlite":
            steps = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path)
            return f"CAST(json_extract({column}, '${steps}') AS TEXT)"
        return f"({column} #>> '{{{','.join(str(p) for p in path)}}}')"

    def json_number(self, column: str, *path: str | int) -> str:
        """SQL for the number at ``path`` in the JSON of ``column`` (NULL when absent or not a
        number)."""
        if self.dialect == "sqlite":
            steps = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path)
            return (
                f"CASE WHEN json_type({column}, '${steps}') IN ('integer', 'real') "
                f"THEN json_extract({column}, '${steps}') END"
            )
        where = ",".join(str(p) for p in path)
        return (
            f"CASE WHEN jsonb_typeof({column} #> '{{{where}}}') = 'number' "
            f"THEN ({column} #>> '{{{where}}}')::double precision END"
        )

    def month(self, day_column: str) -> str:
        """SQL for ``YYYY-MM`` of a day number (days since 1970-01-01, UTC)."""
        if self.dialect == "sqlite":
            return f"strftime('%Y-%m', {day_column} * 86400, 'unixepoch')"
        return f"to_char(to_timestamp({day_column} * 86400) AT TIME ZONE 'UTC', 'YYYY-MM')"

    def least(self, a: str, b: str) -> str:
        """SQL for the smaller of two values."""
        return f"min({a}, {b})" if self.dialect == "sqlite" else f"least({a}, {b})"

    def table_exists(self, name: str) -> bool:
        """Whether the database has a table called ``name``."""
        if self.dialect == "sqlite":
            sql = "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?"
        else:
            sql = (
                "SELECT count(*) FROM pg_tables "
                "WHERE schemaname = current_schema() AND tablename = ?"
            )
        return bool(self.read(sql, (name,))[0][0])


class _SqliteDB(DashboardDB):
    dialect: Dialect = "sqlite"

    def __init__(self, path: Path) -> None:
        self._path = path
        self._read_lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._reader = self._connect()
        self._writer = self._connect()

    def _connect(self) -> sqlite3.Connection:
        try:
            conn = sqlite3.connect(
                self._path, isolation_level=None, check_same_thread=False, timeout=0
            )
            conn.execute("PRAGMA busy_timeout = 5000")
        except sqlite3.Error as exc:
            raise StorageUnavailable(f"cannot open database {self._path}: {exc}") from exc
        return conn

    def read(self, sql: str, params: Sequence[object] = ()) -> list[tuple[Any, ...]]:
        with self._read_lock:
            try:
                return list(self._reader.execute(sql, tuple(params)).fetchall())
            except sqlite3.Error as exc:
                raise StorageUnavailable(f"reading failed: {exc}") from exc

    def write(self, work: Callable[[Executor], _T]) -> _T:
        with self._write_lock:
            conn = self._writer

            def execute(sql: str, params: Sequence[object] = ()) -> list[tuple[Any, ...]]:
                return list(conn.execute(sql, tuple(params)).fetchall())

            try:
                conn.execute("BEGIN IMMEDIATE")
                result = work(execute)
                conn.execute("COMMIT")
            except sqlite3.Error as exc:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise StorageUnavailable(f"updating the dashboard failed: {exc}") from exc
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
            return result

    def close(self) -> None:
        with self._read_lock, self._write_lock:
            self._reader.close()
            self._writer.close()


#: Advisory lock key serialising the summaries' write transactions on PostgreSQL.
_SUMMARY_LOCK: Final = 0x7E1E_DA5B


def _pg_sql(sql: str) -> str:
    return sql.replace("%", "%%").replace("?", "%s")


class _PostgresDB(DashboardDB):
    dialect: Dialect = "postgresql"

    def __init__(self, pool: Any) -> None:
        self._pool = pool

    def read(self, sql: str, params: Sequence[object] = ()) -> list[tuple[Any, ...]]:
        def work(conn: Any) -> list[tuple[Any, ...]]:
            return list(conn.execute(_pg_sql(sql), tuple(params)).fetchall())

        result: list[tuple[Any, ...]] = self._pool.run("reading the dashboard", work)
        return result

    def write(self, work: Callable[[Executor], _T]) -> _T:
        def run(conn: Any) -> _T:
            # Collectors sharing the database update the summaries one at a time; a statement
            # after the lock sees what the previous holder committed.
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_SUMMARY_LOCK,))

            def execute(sql: str, params: Sequence[object] = ()) -> list[tuple[Any, ...]]:
                cursor = conn.execute(_pg_sql(sql), tuple(params))
                return list(cursor.fetchall()) if cursor.description is not None else []

            return work(execute)

        result: _T = self._pool.run("updating the dashboard", run)
        return result


def open_dashboard_db(store: Storage) -> DashboardDB:
    """The dashboard's access to ``store``'s database (a SQLite file or a PostgreSQL server)."""
    if store.kind == "sqlite":
        path = getattr(store, "path", None)
        if not isinstance(path, Path):
            raise StorageUnavailable("the SQLite store does not say where its file is")
        return _SqliteDB(path)
    # The PostgreSQL store's pool: psycopg stays in the store's own modules.
    pool = store.__dict__.get("_pool")
    if pool is None:
        raise StorageUnavailable("the PostgreSQL store has no connection pool")
    return _PostgresDB(pool)
