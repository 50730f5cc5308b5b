"""Command line entry point: ``python -m telemetry.collector --host H --port P --database DB``."""

from __future__ import annotations

import argparse
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path

from telemetry.collector._config import ENVIRONMENTS, ConfigError, load_config
from telemetry.collector._server import EXIT_STARTUP_FAILED, serve

# ``telemetry.collector`` re-exports main() from this module, so ``python -m
# telemetry.collector`` finds the module imported before runpy runs it as ``__main__``. Running
# it twice is harmless (it only defines main()), so runpy's warning about it stays quiet.
warnings.filterwarnings(
    "ignore",
    message=r"'telemetry\.collector\.__main__' found in sys\.modules",
    category=RuntimeWarning,
)


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the command line and run :func:`telemetry.collector.serve`; return the exit code."""
    parser = argparse.ArgumentParser(
        prog="python -m telemetry.collector",
        description="Receive Amplitude HTTP V2 event batches and store them in SQLite or "
        "PostgreSQL; optionally forward them to Amplitude.",
    )
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
    return serve(
        args.host,
        args.port,
        args.database,
        ready_file=args.ready_file,
        config=config,
        environment=args.environment,
        forward_interval=args.forward_interval,
    )


if __name__ == "__main__":
    raise SystemExit(main())
