"""Running the collector under uvicorn: socket binding, readiness announcement, signals, and
several worker processes on one port.

With ``workers`` > 1 the parent opens (and migrates) the database once, binds the listening
socket, then forks that many workers, each with its own storage connection and uvicorn server
accepting on the shared socket (the kernel hands each connection to one of them). Only worker 0
runs the background tasks (forwarders, retention); the outbox leases in the database keep even
two forwarders from sending one row twice. The parent announces readiness once every worker
accepts connections, turns SIGTERM/SIGINT into SIGTERM for every worker and waits for them
(SIGKILL after a bound); a worker that dies is replaced; a worker whose parent is gone stops by
itself.

Before forking, the parent makes the memory the workers share (``_shared_memory``): the rate
limiters' buckets (a device draws from one bucket whichever worker takes its requests, so the
limits answer as one process would) and the metrics (each worker counts in its own row, a
replacement continues it, and ``/metrics`` from any worker shows the sums). The connection limit
and the log flood limit are divided: each worker gets ``ceil(total / workers)`` (see
``_connections`` and ``_logging``).

The default is ``auto``: one worker per core (:func:`default_workers`); with one core, one
process and no fork.

The log format (JSON lines on stderr, addresses redacted) is ``_logging``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import logging.config
import os
import select
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Generator
from pathlib import Path
from typing import Any, Final, Literal

import uvicorn
from uvicorn.server import HANDLED_SIGNALS

from telemetry.collector._app import build_app, create_app
from telemetry.collector._config import CollectorConfig
from telemetry.collector._connections import (
    HEADER_TIMEOUT_SECONDS,
    ConnectionGuard,
    bounded_protocol,
    connection_limit,
    raise_fd_limit,
)
from telemetry.collector._logging import LOG_CONFIG, share_flood_limit
from telemetry.collector._open_storage import open_storage
from telemetry.collector._shared_memory import SharedMemory, WorkerShare
from telemetry.collector._storage import Storage, StorageUnavailable

__all__ = [
    "DEFAULT_WORKERS",
    "EXIT_BIND_FAILED",
    "EXIT_OK",
    "EXIT_STARTUP_FAILED",
    "EXIT_STORAGE_FAILED",
    "bind_socket",
    "default_workers",
    "serve",
    "socket_url",
    "uvicorn_config",
]

logger = logging.getLogger("telemetry.collector")

EXIT_OK: Final = 0
#: The database could not be opened or migrated.
EXIT_STORAGE_FAILED: Final = 1
#: (2 is argparse's usage error.) The server failed to start.
EXIT_STARTUP_FAILED: Final = 3
#: The address could not be bound (e.g. the port is in use).
EXIT_BIND_FAILED: Final = 4

#: ``--workers`` when not given: one worker per core (:func:`default_workers`).
DEFAULT_WORKERS: Final = "auto"
#: Seconds the workers get to stop after SIGTERM before they are killed.
WORKER_STOP_SECONDS: Final = 15.0
#: Seconds before a worker that died is replaced.
_RESTART_DELAY_SECONDS: Final = 1.0
#: Seconds between a worker's checks that its parent is still alive.
_PARENT_POLL_SECONDS: Final = 0.5


def default_workers() -> int:
    """``--workers auto``: one worker per core this process may run on, at most 16."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    return max(1, min(16, cores))


def bind_socket(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port`` (``port`` 0 picks a free port).

    ``SO_REUSEADDR`` is set (except on Windows) so a restarted collector can take its old port
    back while old connections are in TIME_WAIT.
    """
    family, kind, proto, _, address = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    sock = socket.socket(family, kind, proto)
    try:
        if sys.platform != "win32":
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(2048)
        sock.set_inheritable(False)
    except BaseException:
        sock.close()
        raise
    return sock


def socket_url(sock: socket.socket) -> str:
    """``http://HOST:PORT`` of a bound socket (IPv6 hosts in brackets)."""
    host, port = sock.getsockname()[:2]
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}"


def uvicorn_config(
    app: Any, *, log_config: dict[str, Any] | None, workers: int = 1
) -> uvicorn.Config:
    """The uvicorn settings the collector runs with (no access log, no proxy headers), with
    connections bounded by ``_connections`` (timeouts, at most :func:`connection_limit` open:
    the share of one of ``workers`` worker processes)."""
    return uvicorn.Config(
        app,
        http=bounded_protocol(ConnectionGuard(connection_limit(workers))),
        ws="none",
        lifespan="on",
        access_log=False,
        proxy_headers=False,
        server_header=False,
        log_config=log_config,
        timeout_graceful_shutdown=5,
        timeout_keep_alive=int(HEADER_TIMEOUT_SECONDS),
    )


class CollectorServer(uvicorn.Server):
    """A uvicorn server that calls ``on_started`` once it accepts connections, and that turns
    SIGINT/SIGTERM into a graceful stop without re-raising the signal afterwards."""

    def __init__(self, config: uvicorn.Config, on_started: Callable[[], None] | None = None):
        super().__init__(config)
        self._on_started = on_started

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        if self.started and self._on_started is not None:
            self._on_started()

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        original = {sig: signal.signal(sig, self.handle_exit) for sig in HANDLED_SIGNALS}
        try:
            yield
        finally:
            for sig, handler in original.items():
                signal.signal(sig, handler)


def _write_ready_file(path: Path, url: str) -> None:
    """Write ``url`` + newline to ``path`` atomically, so a poller never reads half a line."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(url + "\n", encoding="utf-8")
    os.replace(tmp, path)


def serve(
    host: str,
    port: int,
    database: str | Path,
    *,
    ready_file: Path | None = None,
    config: CollectorConfig | None = None,
    environment: str = "production",
    forward_interval: float = 1.0,
    workers: int | Literal["auto"] = DEFAULT_WORKERS,
) -> int:
    """Run the collector until SIGINT/SIGTERM; return the process exit code.

    ``workers``: ``auto`` (the default) is :func:`default_workers`, one per core. More than 1
    (POSIX): that many worker processes share the port (see the module docstring); the exit
    code is the parent's. 1: this process serves.

    Opens (and migrates) ``database`` (a SQLite path or a ``postgresql://`` URL), binds
    ``host:port`` (``port`` 0 picks a free port), then, once connections are accepted, prints
    exactly one line ``listening on http://HOST:PORT`` to stdout (flushed) and writes that URL
    to ``ready_file`` if given. ``config`` and ``environment``: see :func:`create_app`. Exit
    codes: 0 after a graceful stop, 1 if the database cannot be opened, 3 if the server fails
    to start, 4 if the address cannot be bound.
    """
    logging.config.dictConfig(LOG_CONFIG)
    raise_fd_limit()
    try:
        store: Storage = open_storage(database)
    except StorageUnavailable as exc:
        logger.error("%s", exc)
        return EXIT_STORAGE_FAILED
    count = default_workers() if workers == "auto" else workers
    if count > 1 and hasattr(os, "fork"):
        options = _WorkerOptions(database, config, environment, forward_interval)
        return _serve_workers(host, port, store, options, count, ready_file)
    try:
        try:
            sock = bind_socket(host, port)
        except OSError as exc:
            logger.error("cannot listen on port %d: %s", port, exc)
            return EXIT_BIND_FAILED
        with sock:
            app = create_app(
                store, config=config, environment=environment, forward_interval=forward_interval
            )
            announce = _announcer(store, socket_url(sock), ready_file, environment)
            return _run_until_stopped(app, sock, announce)
    finally:
        store.close()


def _announcer(
    store: Storage, url: str, ready_file: Path | None, environment: str
) -> Callable[[], None]:
    """What to do once connections are accepted: write the ready file, print the URL, log."""

    def announce() -> None:
        # The ready file first: whoever waits for the stdout line may read it at once.
        if ready_file is not None:
            _write_ready_file(Path(ready_file), url)
        print(f"listening on {url}", flush=True)
        logger.info(
            "collector ready (%s database, schema version %d, environment %s)",
            store.kind,
            store.schema_version,
            environment,
        )

    return announce


def _run_until_stopped(app: Any, sock: socket.socket, announce: Callable[[], None]) -> int:
    """Serve ``app`` on ``sock`` until SIGINT/SIGTERM; return the exit code."""
    server = CollectorServer(uvicorn_config(app, log_config=None), on_started=announce)
    try:
        server.run(sockets=[sock])
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else EXIT_STARTUP_FAILED
        return code or EXIT_STARTUP_FAILED
    if not server.started:
        return EXIT_STARTUP_FAILED
    logger.info("collector stopped")
    return EXIT_OK


@dataclasses.dataclass(frozen=True)
class _WorkerOptions:
    """What each worker process opens and serves."""

    database: str | Path
    config: CollectorConfig | None
    environment: str
    forward_interval: float


def _serve_workers(
    host: str,
    port: int,
    store: Storage,
    options: _WorkerOptions,
    workers: int,
    ready_file: Path | None,
) -> int:
    """Bind, make the shared memory, fork ``workers`` workers (``store`` was opened to migrate,
    and is closed before), announce once all accept connections, and supervise them until
    SIGTERM/SIGINT."""
    kind, version = store.kind, store.schema_version
    store.close()
    try:
        sock = bind_socket(host, port)
    except OSError as exc:
        logger.error("cannot listen on port %d: %s", port, exc)
        return EXIT_BIND_FAILED
    share_flood_limit(workers)
    memory = SharedMemory()
    try:
        with sock:
            return _Supervisor(sock, options, workers, memory).run(
                lambda url: _announce(url, ready_file, kind, version, options.environment, workers)
            )
    finally:
        memory.close()


def _announce(
    url: str, ready_file: Path | None, kind: str, version: int, environment: str, workers: int
) -> None:
    if ready_file is not None:
        _write_ready_file(Path(ready_file), url)
    print(f"listening on {url}", flush=True)
    logger.info(
        "collector ready (%s database, schema version %d, environment %s, %d workers)",
        kind,
        version,
        environment,
        workers,
    )


class _Supervisor:
    """The parent of the worker processes (see the module docstring)."""

    def __init__(
        self, sock: socket.socket, options: _WorkerOptions, workers: int, memory: SharedMemory
    ) -> None:
        self._sock = sock
        self._options = options
        self._count = workers
        self._memory = memory
        self._pids: dict[int, int] = {}  # pid -> worker index
        self._stopping = False
        self._ready_read, self._ready_write = os.pipe()

    def run(self, announce: Callable[[str], None]) -> int:
        original = {sig: signal.signal(sig, self._on_signal) for sig in HANDLED_SIGNALS}
        try:
            for index in range(self._count):
                self._fork(index)
            if not self._wait_ready():
                self._stop_all()
                self._reap_all()
                if self._stopping:  # SIGTERM/SIGINT before every worker was ready: asked for
                    logger.info("collector stopped before it was ready")
                    return EXIT_OK
                return EXIT_STARTUP_FAILED
            announce(socket_url(self._sock))
            self._supervise()
            logger.info("collector stopped")
            return EXIT_OK
        finally:
            self._stop_all()
            self._reap_all()
            for sig, handler in original.items():
                signal.signal(sig, handler)
            os.close(self._ready_read)
            os.close(self._ready_write)

    def _fork(self, index: int) -> None:
        parent = os.getpid()
        pid = os.fork()
        if pid == 0:  # the worker: never returns
            self._pids = {}  # a signal before the worker's own handlers must not reach siblings
            code = EXIT_STARTUP_FAILED
            try:
                os.close(self._ready_read)
                share = WorkerShare(self._memory, index, self._count)
                code = _run_worker(self._sock, self._options, share, parent, self._ready_write)
            except BaseException:
                logger.exception("collector worker %d failed", index)
            finally:
                logging.shutdown()
                os._exit(code)
        self._pids[pid] = index

    def _wait_ready(self) -> bool:
        """Whether every worker said it accepts connections (False: one exited before)."""
        ready = 0
        while ready < self._count:
            readable, _, _ = select.select([self._ready_read], [], [], 0.1)
            if readable:
                ready += len(os.read(self._ready_read, self._count))
            if self._stopping or self._reaped_any():
                return False
        return True

    def _reaped_any(self) -> bool:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return True
        if pid:
            self._pids.pop(pid, None)
            return True
        return False

    def _supervise(self) -> None:
        """Wait for the workers; replace one that dies, until a stop is asked for."""
        while self._pids:
            try:
                pid, status = os.wait()
            except ChildProcessError:
                return
            index = self._pids.pop(pid, None)
            if index is None or self._stopping:
                continue
            logger.error(
                "collector worker %d exited (status %d); starting a new one", index, status
            )
            time.sleep(_RESTART_DELAY_SECONDS)  # a worker failing at once must not spin
            if not self._stopping:
                self._fork(index)

    def _on_signal(self, signum: int, frame: object) -> None:
        self._stopping = True
        self._stop_all()

    def _stop_all(self) -> None:
        for pid in list(self._pids):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)

    def _reap_all(self) -> None:
        """Wait for every worker, killing those still alive after :data:`WORKER_STOP_SECONDS`."""
        deadline = time.monotonic() + WORKER_STOP_SECONDS
        while self._pids:
            for pid in list(self._pids):
                try:
                    done, _ = os.waitpid(pid, os.WNOHANG)
                except ChildProcessError:
                    done = pid
                if done:
                    self._pids.pop(pid, None)
            if self._pids and time.monotonic() > deadline:
                for pid in list(self._pids):
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
                deadline = time.monotonic() + WORKER_STOP_SECONDS
            if self._pids:
                time.sleep(0.05)


def _run_worker(
    sock: socket.socket, options: _WorkerOptions, share: WorkerShare, parent: int, ready_fd: int
) -> int:
    """One worker process: its own storage and server on the shared socket, the rate limits and
    metrics of ``share``; the background tasks only in worker 0. Stops when SIGTERM/SIGINT
    arrives or its parent is gone."""
    for sig in HANDLED_SIGNALS:  # until uvicorn installs its own: stop at once
        signal.signal(sig, signal.SIG_DFL)
    try:
        store = open_storage(options.database)
    except StorageUnavailable as exc:
        logger.error("%s", exc)
        return EXIT_STORAGE_FAILED
    try:
        app = build_app(
            store,
            config=options.config,
            environment=options.environment,
            forward_interval=options.forward_interval,
            background=share.worker == 0,
            share=share,
        )

        def started() -> None:
            os.write(ready_fd, b"r")
            os.close(ready_fd)

        config = uvicorn_config(app, log_config=None, workers=share.workers)
        server = CollectorServer(config, on_started=started)
        watch = threading.Thread(
            target=_stop_when_orphaned, args=(server, parent), daemon=True, name="parent watch"
        )
        watch.start()
        try:
            server.run(sockets=[sock])
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else EXIT_STARTUP_FAILED
            return code or EXIT_STARTUP_FAILED
        return EXIT_OK if server.started else EXIT_STARTUP_FAILED
    finally:
        store.close()


def _stop_when_orphaned(server: uvicorn.Server, parent: int) -> None:
    """Ask ``server`` to stop once the process's parent is no longer ``parent``."""
    while not server.should_exit:
        if os.getppid() != parent:
            logger.warning("collector parent process gone: worker stopping")
            server.should_exit = True
            return
        time.sleep(_PARENT_POLL_SECONDS)
