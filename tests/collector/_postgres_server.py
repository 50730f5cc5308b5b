"""A throwaway PostgreSQL server for tests and benches (no pytest import).

``postgres_server()`` is a context manager yielding an admin DSN. With
``TELEMETRY_TEST_POSTGRES_DSN`` set, that server is used as is. Otherwise a new cluster is made
with ``initdb`` in a temporary directory and started with ``pg_ctl`` on a free port of 127.0.0.1
(binaries from ``pg_config --bindir``, ``/usr/lib/postgresql/*/bin`` or PATH). As root, they run
as the ``postgres`` user (else ``nobody``) through ``runuser``, on a directory that user owns.
If no server can be had, :class:`NoPostgres` is raised with the reason: tests must fail, not skip.

``fresh_database(admin_dsn)`` creates an empty database and yields its DSN, dropping it after.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
from psycopg import sql

__all__ = ["DSN_ENV", "NoPostgres", "fresh_database", "postgres_server"]

DSN_ENV = "TELEMETRY_TEST_POSTGRES_DSN"


class NoPostgres(RuntimeError):
    """No PostgreSQL server could be found or started."""


def _bindir() -> Path:
    candidates: list[Path] = []
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        out = subprocess.run(
            ["pg_config", "--bindir"], capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
        candidates.append(Path(out))
    candidates += [Path(p) for p in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)]
    for name in ("initdb", "pg_ctl"):
        found = shutil.which(name)
        if found:
            candidates.append(Path(found).resolve().parent)
    for directory in candidates:
        if (directory / "initdb").is_file() and (directory / "pg_ctl").is_file():
            return directory
    raise NoPostgres(
        "PostgreSQL is required for the collector tests: set TELEMETRY_TEST_POSTGRES_DSN, or "
        "install the server binaries (Debian: apt-get install postgresql) so that initdb and "
        "pg_ctl are found via pg_config --bindir, /usr/lib/postgresql/*/bin or PATH"
    )


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _runner() -> tuple[list[str], pwd.struct_passwd | None]:
    if os.geteuid() != 0:
        return [], None
    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            user = pwd.getpwnam(name)
            return ["runuser", "-u", name, "--"], user
    raise NoPostgres("running as root but there is no 'postgres' or 'nobody' user to run initdb")


@contextlib.contextmanager
def postgres_server(*, durable: bool = False) -> Iterator[str]:
    """Yield an admin DSN of a running PostgreSQL server (see the module docstring).

    A cluster started here runs with ``fsync=off`` (fast tests) unless ``durable`` (benches).
    """
    given = os.environ.get(DSN_ENV)
    if given:
        try:
            psycopg.connect(given, connect_timeout=10).close()
        except psycopg.Error as exc:
            raise NoPostgres(f"{DSN_ENV} is set but the server cannot be reached: {exc}") from exc
        yield given
        return
    bindir = _bindir()
    prefix, user = _runner()
    root = Path(tempfile.mkdtemp(prefix="telemetry-pg-"))
    data = root / "data"
    port = _free_port()
    try:
        if user is not None:
            os.chown(root, user.pw_uid, user.pw_gid)
        root.chmod(0o700)
        init = subprocess.run(
            [*prefix, str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust",
             "-E", "UTF8", "--no-sync", "--no-instructions"],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        if init.returncode != 0:
            raise NoPostgres(f"initdb failed: {init.stderr.strip() or init.stdout.strip()}")
        options = f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c max_connections=60"
        if not durable:
            options += " -c fsync=off -c full_page_writes=off"
        start = subprocess.run(
            [*prefix, str(bindir / "pg_ctl"), "-D", str(data), "-l", str(root / "server.log"),
             "-o", options, "-w", "-t", "60", "start"],
            capture_output=True, text=True, timeout=90,
        )  # fmt: skip
        if start.returncode != 0:
            log = (
                (root / "server.log").read_text(errors="replace")
                if (root / "server.log").exists()
                else ""
            )
            raise NoPostgres(f"pg_ctl start failed: {start.stderr.strip()}\n{log[-2000:]}")
        try:
            yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
        finally:
            subprocess.run(
                [*prefix, str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"],
                capture_output=True, timeout=60,
            )  # fmt: skip
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _with_dbname(dsn: str, name: str) -> str:
    base, _, _ = dsn.partition("?")
    scheme_host, _, _ = base.rpartition("/")
    query = dsn.partition("?")[2]
    return f"{scheme_host}/{name}" + (f"?{query}" if query else "")


@contextlib.contextmanager
def fresh_database(admin_dsn: str) -> Iterator[str]:
    """Create an empty database on the server and yield its DSN; drop it afterwards."""
    name = f"telemetry_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield _with_dbname(admin_dsn, name)
    finally:
        with psycopg.connect(admin_dsn, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )
