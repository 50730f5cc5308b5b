"""Test helpers that run the collector for real, over sockets on 127.0.0.1 (no pytest import).

Public API (other test suites rely on it; keep it stable):

``CollectorProcess(database: Path | str, *, extra_args: Sequence[str] = (), fd_limit=None)``
    Context manager running ``python -m telemetry.collector --host 127.0.0.1 --port P
    --database DB`` as a real child process (``sys.executable``). ``database`` is a SQLite file
    or a ``postgresql://`` URL; ``extra_args`` go after (e.g. ``--config``); ``fd_limit`` (POSIX)
    sets the child's soft and hard ``RLIMIT_NOFILE`` (like ``ulimit -n``)::

        with CollectorProcess(tmp_path / "collector.db") as collector:
            httpx.post(f"{collector.url}/2/httpapi", json=batch)
            collector.stop()            # collector down (SIGTERM, graceful)
            collector.start()           # up again on the SAME port
            rows = collector.rows()     # list of dicts, one per stored event

    * ``start(timeout=60.0) -> CollectorProcess``: starts the child and waits (bounded by
      ``timeout``) until it accepts connections; the first start uses ``--port 0`` and remembers
      the port, later starts reuse it. Raises ``RuntimeError`` (with the child's stderr) if it
      does not become ready in time. ``__enter__`` calls it.
    * ``stop(timeout=10.0) -> int | None``: SIGTERM, wait (bounded), SIGKILL if still alive;
      returns the exit code (0 after a graceful stop). No-op if not running. ``__exit__`` calls it.
    * ``kill() -> int | None``: SIGKILL (a crash), returns the exit code.
    * ``url`` (``"http://127.0.0.1:PORT"``), ``port`` (int; ``None`` before the first start),
      ``pid``, ``running``, ``returncode``.
    * ``rows() -> list[dict[str, Any]]``: every row of the ``events`` table (ordered by ``id``),
      read with ``sqlite3`` directly from the database file (or with psycopg from PostgreSQL);
      ``event`` is the stored JSON text. ``[]`` if the database or table does not exist yet.
    * ``stdout`` / ``stderr``: everything the child printed so far, across restarts (stderr holds
      the logs; stdout holds one ``listening on URL`` line per start).

``stored_rows(database: Path | str) -> list[dict[str, Any]]``
    What ``CollectorProcess.rows()`` returns, for any collector database (e.g. one served by
    ``start_in_thread``).

``start_in_thread(database, **app_options) -> tuple[str, Callable[[], None]]``
    Runs the collector app with uvicorn inside this process on a background thread (fast tests).
    ``database`` is a path, a ``postgresql://`` URL, or an open ``telemetry.collector.Storage``
    (the caller keeps ownership); ``app_options`` go to ``create_app`` (``config``,
    ``environment``, ``forward_interval``). Returns ``(url, stop)``; ``stop()`` shuts the server
    down (bounded) and is idempotent.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import weakref
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from telemetry.collector import Storage

__all__ = ["CollectorProcess", "start_in_thread", "stored_rows"]

_HOST = "127.0.0.1"
_EXIT_BIND_FAILED = 4  # telemetry.collector._server.EXIT_BIND_FAILED
_POLL_SECONDS = 0.02


class CollectorProcess:
    """The collector as a child process; see the module docstring for the API."""

    def __init__(
        self, database: Path | str, *, extra_args: Sequence[str] = (), fd_limit: int | None = None
    ) -> None:
        self.fd_limit = fd_limit
        self.database: Path | str = (
            database if str(database).startswith("postgresql://") else Path(database)
        )
        self.extra_args = tuple(extra_args)
        self.port: int | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._workdir = Path(tempfile.mkdtemp(prefix="collector-process-"))
        self._cleanup = weakref.finalize(self, shutil.rmtree, self._workdir, True)
        self._stdout_path = self._workdir / "stdout.log"
        self._stderr_path = self._workdir / "stderr.log"
        self._ready_path = self._workdir / "ready"

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self, timeout: float = 60.0) -> CollectorProcess:
        """Start the child and wait until it listens (bounded by ``timeout`` seconds)."""
        if self.running:
            raise RuntimeError("collector process already running")
        deadline = time.monotonic() + timeout
        while True:
            proc = self._proc = self._spawn()
            url = self._wait_ready(proc, deadline)
            if url is not None:
                self.port = int(url.rsplit(":", 1)[1])
                return self
            # The child exited before it was ready. If only the port was briefly unavailable
            # (restart on the same port), try again until the deadline.
            if proc.returncode == _EXIT_BIND_FAILED and time.monotonic() < deadline:
                time.sleep(0.1)
                continue
            if proc.poll() is None:
                _terminate(proc, 5.0)
            raise RuntimeError(
                f"collector did not become ready within {timeout} s "
                f"(exit code {proc.returncode}); stderr:\n{self.stderr}"
            )

    def _spawn(self) -> subprocess.Popen[bytes]:
        self._ready_path.unlink(missing_ok=True)
        args = [
            sys.executable,
            "-m",
            "telemetry.collector",
            "--host",
            _HOST,
            "--port",
            str(self.port if self.port is not None else 0),
            "--database",
            str(self.database),
            "--ready-file",
            str(self._ready_path),
            *self.extra_args,
        ]
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        creationflags = getattr(subprocess, "CREATE_NEW_PROCESS_GROUP", 0)
        with open(self._stdout_path, "ab") as out, open(self._stderr_path, "ab") as err:
            return subprocess.Popen(
                args,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                env=env,
                creationflags=creationflags if sys.platform == "win32" else 0,
                preexec_fn=None if self.fd_limit is None else self._limit_fds,
            )

    def _limit_fds(self) -> None:
        import resource

        assert self.fd_limit is not None
        resource.setrlimit(resource.RLIMIT_NOFILE, (self.fd_limit, self.fd_limit))

    def _wait_ready(self, proc: subprocess.Popen[bytes], deadline: float) -> str | None:
        while time.monotonic() < deadline:
            if self._ready_path.exists():
                text = self._ready_path.read_text(encoding="utf-8").strip()
                if text:
                    return text
            if proc.poll() is not None:
                return None
            time.sleep(_POLL_SECONDS)
        return None

    def stop(self, timeout: float = 10.0) -> int | None:
        """Stop gracefully (SIGTERM), killing after ``timeout`` s; return the exit code."""
        proc = self._proc
        if proc is None:
            return None
        if proc.poll() is None:
            _terminate(proc, timeout)
        return proc.returncode

    def kill(self) -> int | None:
        """Kill the child at once (SIGKILL), as a crash would; return the exit code."""
        proc = self._proc
        if proc is None:
            return None
        if proc.poll() is None:
            proc.kill()
            proc.wait(10.0)
        return proc.returncode

    def __enter__(self) -> CollectorProcess:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- state ---------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT`` (valid once started; stays the same across restarts)."""
        if self.port is None:
            raise RuntimeError("collector process was never started")
        return f"http://{_HOST}:{self.port}"

    @property
    def pid(self) -> int | None:
        """PID of the current (or last) child."""
        return None if self._proc is None else self._proc.pid

    @property
    def running(self) -> bool:
        """Whether the child is alive."""
        return self._proc is not None and self._proc.poll() is None

    @property
    def returncode(self) -> int | None:
        """Exit code of the last child, ``None`` while it runs or before any start."""
        return None if self._proc is None else self._proc.poll()

    @property
    def stdout(self) -> str:
        """Everything the child(ren) wrote to stdout so far."""
        return _read_text(self._stdout_path)

    @property
    def stderr(self) -> str:
        """Everything the child(ren) wrote to stderr (the logs) so far."""
        return _read_text(self._stderr_path)

    def rows(self) -> list[dict[str, Any]]:
        """All stored events, ordered by ``id``, read straight from the database."""
        return stored_rows(self.database)


def stored_rows(database: Path | str) -> list[dict[str, Any]]:
    """Every row of a collector's ``events`` table, ordered by ``id``, read straight from the
    SQLite file (or PostgreSQL for a ``postgresql://`` URL); ``[]`` before the table exists."""
    if isinstance(database, str) and database.startswith("postgresql://"):
        return _postgres_rows(database)
    database = Path(database)
    if not database.exists():
        return []
    conn = sqlite3.connect(f"{database.resolve().as_uri()}?mode=ro", uri=True, timeout=10)
    try:
        conn.row_factory = sqlite3.Row
        exists = conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'events'"
        ).fetchone()
        if exists is None:
            return []
        return [dict(row) for row in conn.execute("SELECT * FROM events ORDER BY id")]
    finally:
        conn.close()


def _postgres_rows(dsn: str) -> list[dict[str, Any]]:
    import psycopg
    from psycopg.rows import dict_row

    with psycopg.connect(dsn, row_factory=dict_row, connect_timeout=10) as conn:
        exists = conn.execute("SELECT to_regclass('events') IS NOT NULL AS e").fetchone()
        if not exists or not exists["e"]:
            return []
        return list(conn.execute("SELECT * FROM events ORDER BY id").fetchall())


def _terminate(proc: subprocess.Popen[bytes], timeout: float) -> None:
    if sys.platform == "win32":
        proc.send_signal(signal.CTRL_BREAK_EVENT)  # handled like SIGTERM (uvicorn's SIGBREAK)
    else:
        proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10.0)


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return ""


def start_in_thread(
    database: str | Path | Storage, *, apps: list[Any] | None = None, **app_options: Any
) -> tuple[str, Callable[[], None]]:
    """Run the collector in this process on a thread; return ``(url, stop)``.

    ``database`` is a ``str``/``Path`` or an open ``telemetry.collector.EventStore``; the app is
    appended to ``apps`` when given. Waits at most 60 s for the server to start.
    """
    from telemetry.collector import create_app
    from telemetry.collector._server import CollectorServer, bind_socket, socket_url, uvicorn_config

    class _QuickStopServer(CollectorServer):
        """Notices ``should_exit`` within 20 ms instead of uvicorn's 100 ms tick (many short
        test servers)."""

        async def main_loop(self) -> None:
            counter = 0
            while not await self.on_tick(counter):
                counter = (counter + 1) % 864000
                await asyncio.sleep(0.02)

    app = create_app(database, **app_options)
    if apps is not None:
        apps.append(app)
    sock = bind_socket(_HOST, 0)
    url = socket_url(sock)
    started = threading.Event()
    server = _QuickStopServer(uvicorn_config(app, log_config=None), on_started=started.set)
    failure: list[BaseException] = []

    def run() -> None:
        try:
            server.run(sockets=[sock])
        except BaseException as exc:  # reported to the caller by the bounded wait below
            failure.append(exc)
        finally:
            started.set()

    thread = threading.Thread(target=run, name=f"collector {url}", daemon=True)
    thread.start()
    lock = threading.Lock()

    def stop() -> None:
        with lock:
            server.should_exit = True
            thread.join(15.0)
            sock.close()
            if thread.is_alive():
                raise RuntimeError("in-thread collector did not stop within 15 s")

    if not started.wait(60.0) or failure or not server.started:
        stop()
        raise RuntimeError(f"in-thread collector did not start: {failure!r}")
    return url, stop
