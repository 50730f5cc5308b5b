"""Running the collector under uvicorn: socket binding, readiness announcement, signals.

The log format (JSON lines on stderr, addresses redacted) is ``_logging``.
"""

from __future__ import annotations

import contextlib
import logging
import logging.config
import os
import signal
import socket
import sys
import threading
from collections.abc import Callable, Generator
from pathlib import Path
from typing import Any, Final

import uvicorn
from uvicorn.server import HANDLED_SIGNALS

from telemetry.collector._app import create_app
from telemetry.collector._config import CollectorConfig
from telemetry.collector._connections import (
    HEADER_TIMEOUT_SECONDS,
    ConnectionGuard,
    bounded_protocol,
    connection_limit,
    raise_fd_limit,
)
from telemetry.collector._logging import LOG_CONFIG
from telemetry.collector._open_storage import open_storage
from telemetry.collector._storage import Storage, StorageUnavailable

__all__ = [
    "EXIT_BIND_FAILED",
    "EXIT_OK",
    "EXIT_STARTUP_FAILED",
    "EXIT_STORAGE_FAILED",
    "bind_socket",
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


def uvicorn_config(app: Any, *, log_config: dict[str, Any] | None) -> uvicorn.Config:
    """The uvicorn settings the collector runs with (no access log, no proxy headers), with
    connections bounded by ``_connections`` (timeouts, at most :func:`connection_limit` open)."""
    return uvicorn.Config(
        app,
        http=bounded_protocol(ConnectionGuard(connection_limit())),
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
) -> int:
    """Run the collector until SIGINT/SIGTERM; return the process exit code.

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
