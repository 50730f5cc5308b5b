"""The PostgreSQL backend's connections: a small pool (autocommit, explicit transactions) serving
the thread pool the ASGI app calls storage from, and the mapping of driver errors to
:class:`StorageUnavailable`."""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import psycopg

from telemetry.collector._storage import StorageUnavailable

__all__ = ["ConnectionPool"]

logger = logging.getLogger("telemetry.collector")

_T = TypeVar("_T")


class ConnectionPool:
    """Up to ``size`` connections to ``dsn``, opened on demand and reused (last in, first out)."""

    def __init__(self, dsn: str, *, size: int, connect_timeout: float) -> None:
        self._dsn = dsn
        self._connect_timeout = connect_timeout
        self._idle: queue.LifoQueue[psycopg.Connection[Any]] = queue.LifoQueue()
        self._slots = threading.BoundedSemaphore(size)
        self._all: list[psycopg.Connection[Any]] = []
        self._all_lock = threading.Lock()
        self._closed = False

    def _connect(self) -> psycopg.Connection[Any]:
        conn = psycopg.connect(
            self._dsn,
            autocommit=True,
            connect_timeout=max(1, int(self._connect_timeout)),
            application_name="telemetry-collector",
        )
        with self._all_lock:
            self._all.append(conn)
        return conn

    @contextmanager
    def _connection(self) -> Iterator[psycopg.Connection[Any]]:
        if self._closed:
            raise StorageUnavailable("the PostgreSQL store is closed")
        self._slots.acquire()
        conn: psycopg.Connection[Any] | None = None
        try:
            try:
                conn = self._idle.get_nowait()
            except queue.Empty:
                conn = self._connect()
            yield conn
        finally:
            if conn is not None:
                if conn.closed or conn.broken:
                    with self._all_lock:
                        if conn in self._all:
                            self._all.remove(conn)
                else:
                    self._idle.put(conn)
            self._slots.release()

    def run(self, what: str, work: Callable[[psycopg.Connection[Any]], _T]) -> _T:
        """Run ``work(conn)`` in one transaction; map driver errors to StorageUnavailable."""
        try:
            with self._connection() as conn, conn.transaction():
                return work(conn)
        except psycopg.Error as exc:
            # psycopg messages carry no password (and never event data of ours).
            message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise StorageUnavailable(f"{what} failed: {message}") from exc

    def close(self) -> None:
        """Close every connection; later uses raise :class:`StorageUnavailable` (idempotent)."""
        self._closed = True
        with self._all_lock:
            connections, self._all = self._all, []
        for conn in connections:
            try:
                conn.close()
            except psycopg.Error:
                logger.warning("closing a PostgreSQL connection failed", exc_info=True)
