"""The collector's command line: ``python -m telemetry.collector --host H --port P --database DB
[--workers N|auto]`` serves; ``python -m telemetry.collector errors --database DB [--config F]
[--project P] [--json]`` (also ``telemetry collector errors``) lists the stored error report
groups and exits.

:func:`main` is public (``telemetry.collector.main``) so that an app embedding the collector,
such as a frozen bundle that runs itself as the collector child, can call it directly.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from telemetry.collector._config import ENVIRONMENTS, CollectorConfig, ConfigError, load_config
from telemetry.collector._server import (
    DEFAULT_WORKERS,
    EXIT_OK,
    EXIT_STARTUP_FAILED,
    EXIT_STORAGE_FAILED,
    default_workers,
    serve,
)


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the command line and run :func:`telemetry.collector.serve`; return the exit code."""
    parser = argparse.ArgumentParser(
        prog="python -m telemetry.collector",
        description="Receive Amplitude HTTP V2 event batches and Sentry error reports and store "
        "them in SQLite or PostgreSQL; optionally forward them to Amplitude and Sentry. "
        "'errors' lists the stored error report groups instead of serving.",
    )
    parser.add_argument(
        "command",
        nargs="?",
        choices=("serve", "errors"),
        default="serve",
        help="serve (default), or list the stored error report groups",
    )
    parser.add_argument("--project", default=None, help="errors: only this project (name or id)")
    parser.add_argument("--json", action="store_true", help="errors: print JSON")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument(
        "--port", type=int, default=8555, help="TCP port; 0 picks a free one (default 8555)"
    )
    parser.add_argument(
        "--database",
        default="collector.db",
        help="SQLite file, or a postgresql://USER@HOST/DB URL (default collector.db)",
    )
    parser.add_argument(
        "--config",
        type=Path,
        default=None,
        help="TOML file mapping projects to destination tokens (default: accept any project)",
    )
    parser.add_argument(
        "--environment",
        choices=ENVIRONMENTS,
        default="production",
        help="which destination tokens to forward with (default production)",
    )
    parser.add_argument(
        "--forward-interval",
        type=float,
        default=1.0,
        help="seconds between forwarding passes (default 1)",
    )
    parser.add_argument(
        "--workers",
        type=_workers,
        default=DEFAULT_WORKERS,
        help="worker processes sharing the port (and the rate limits and /metrics): a number, "
        f"or 'auto' for one per core (at most 16); default {DEFAULT_WORKERS}",
    )
    parser.add_argument(
        "--ready-file",
        type=Path,
        default=None,
        help="once listening, write the collector's URL to this file",
    )
    args = parser.parse_args(argv)
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(f"collector: bad configuration: {exc}", file=sys.stderr)
        return EXIT_STARTUP_FAILED
    if args.command == "errors":
        return list_errors(args.database, config, args.project, as_json=args.json)
    return serve(
        args.host,
        args.port,
        args.database,
        ready_file=args.ready_file,
        config=config,
        environment=args.environment,
        forward_interval=args.forward_interval,
        workers=args.workers,
    )


def _workers(value: str) -> int:
    """``--workers``: a positive number, or ``auto`` (:func:`default_workers`)."""
    if value == "auto":
        return default_workers()
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError("must be a positive number or 'auto'") from None
    if not 1 <= number <= 256:
        raise argparse.ArgumentTypeError("must be from 1 to 256, or 'auto'")
    return number


def list_errors(
    database: str, config: CollectorConfig, project: str | None, *, as_json: bool
) -> int:
    """Print the error report groups stored in ``database``; return the exit code."""
    from telemetry.collector._open_storage import is_postgres_url, open_storage
    from telemetry.collector._report_listing import print_groups
    from telemetry.collector._storage import StorageUnavailable

    name = project
    if project is not None:
        name = config.report_project(project)
        if name is None:
            print(f"collector: unknown project {project!r} in {config.source}", file=sys.stderr)
            return EXIT_STARTUP_FAILED
    if not is_postgres_url(database) and not Path(database).exists():
        groups = []
    else:
        try:
            store = open_storage(database)
        except StorageUnavailable as exc:
            print(f"collector: {exc}", file=sys.stderr)
            return EXIT_STORAGE_FAILED
        try:
            groups = store.report_groups(name)
        except StorageUnavailable as exc:
            print(f"collector: {exc}", file=sys.stderr)
            return EXIT_STORAGE_FAILED
        finally:
            store.close()
    print_groups(groups, sys.stdout, as_json=as_json, project=name)
    return EXIT_OK
