"""Command line entry point: ``python -m telemetry.collector --host H --port P --database DB``."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from telemetry.collector._server import serve


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the command line and run :func:`telemetry.collector.serve`; return the exit code."""
    parser = argparse.ArgumentParser(
        prog="python -m telemetry.collector",
        description="Receive Amplitude HTTP V2 event batches and store them in SQLite.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument(
        "--port", type=int, default=8555, help="TCP port; 0 picks a free one (default 8555)"
    )
    parser.add_argument(
        "--database", type=Path, default=Path("collector.db"), help="SQLite file to store events in"
    )
    parser.add_argument(
        "--ready-file",
        type=Path,
        default=None,
        help="once listening, write the collector's URL to this file",
    )
    args = parser.parse_args(argv)
    return serve(args.host, args.port, args.database, ready_file=args.ready_file)


if __name__ == "__main__":
    raise SystemExit(main())
