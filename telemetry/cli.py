"""The ``telemetry`` command (and ``python -m telemetry``): it parses, calls the client, prints.

Every command on an app's data dir (``status``, ``events``, ``export``, ``purge``, ``sent``,
``errors``, ``flush``, ``catalogue``, ``query``) opens it with :func:`telemetry.open_client`, so
it follows the app's consent decision: ``DO_NOT_TRACK``/``TELEMETRY_DISABLED``, the user's
choice, whether the first-run notice was answered, the app's policy. ``drives`` and
``collector`` need no data dir. The data-dir commands live in ``_cli_data``. Each command
imports what it needs when it runs: ``telemetry --help`` and ``telemetry drives`` load neither
the store nor the HTTP stack.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import Any, TextIO

from telemetry._cli_data import (
    EXIT_FAILED,
    CommandError,
    cmd_catalogue,
    cmd_errors,
    cmd_events,
    cmd_export,
    cmd_flush,
    cmd_purge,
    cmd_query,
    cmd_sent,
    cmd_status,
)
from telemetry.errors import TelemetryError


def cmd_drives(args: argparse.Namespace, out: TextIO) -> int:
    from telemetry.drives import run_cli as run

    return run(as_json=args.json, show_all=args.all, watch=args.watch, out=out)


def cmd_collector(args: argparse.Namespace, out: TextIO) -> int:
    """``python -m telemetry.collector`` with the same options (``--config``,
    ``--environment``, ``--forward-interval``, ``--ready-file`` pass through)."""
    try:
        from telemetry.collector import main as collector_main
    except ImportError as exc:
        raise CommandError(
            "the collector needs the 'collector' extra: "
            f"pip install 'desktop-telemetry[collector]' ({exc})"
        ) from None
    argv = ["--host", args.host, "--port", str(args.port), "--database", args.database]
    return collector_main([*argv, *args.collector_options])


def cmd_sign_url(args: argparse.Namespace, out: TextIO) -> int:
    from telemetry.signed_links import signed_url

    if not args.secret:
        out.write("telemetry: sign-url needs --secret or $TELEMETRY_LINK_SECRET\n")
        return 2
    params: list[tuple[str, str]] = []
    for item in args.params:
        key, sep, value = item.partition("=")
        if not sep:
            out.write(f"telemetry: expected KEY=VALUE, got {item!r}\n")
            return 2
        params.append((key, value))
    try:
        out.write(signed_url(args.base, params, args.secret, args.method) + "\n")
    except ValueError as exc:
        out.write(f"telemetry: {exc}\n")
        return 2
    return 0


# ---------------------------------------------------------------------- the parser


def _count(text: str) -> int:
    """An argparse type: a whole number, 0 or more (``--limit -1`` printed "No events are
    queued." before)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (exposed for documentation tests)."""
    parser = argparse.ArgumentParser(
        prog="telemetry",
        description="Inspect and manage an app's local telemetry. Every command on a data dir "
        "follows the app's consent decision: with DO_NOT_TRACK or TELEMETRY_DISABLED set, none "
        "reads the queue, writes or sends anything.",
    )
    parser.add_argument(
        "--data-dir",
        default=os.environ.get("TELEMETRY_DATA_DIR"),
        help="the app's telemetry data dir (default: $TELEMETRY_DATA_DIR)",
    )
    parser.add_argument("--app", help="the app's component name, to find its default data dir")
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="also print the library's log messages"
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_data_commands(sub)
    _add_tool_commands(sub)
    return parser


def _add_data_commands(sub: Any) -> None:
    """The commands on an app's data dir."""
    p = sub.add_parser(
        "status", help="consent, whether uploads are allowed, device id, queue, last upload"
    )
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_status)

    p = sub.add_parser("events", help="the queued events")
    p.add_argument("--json", action="store_true", help="one event per line, exactly as sent")
    p.add_argument("--follow", action="store_true", help="keep printing new events")
    p.add_argument("--limit", type=_count, default=0, help="print at most this many")
    p.add_argument("--interval", type=float, default=0.5, help=argparse.SUPPRESS)
    p.set_defaults(func=cmd_events)

    p = sub.add_parser("export", help="write the queued events as JSON lines or CSV")
    p.add_argument("--format", choices=["jsonl", "csv"], default="jsonl")
    p.add_argument("--output", "-o", help="file to write (default: standard output)")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("purge", help="delete every queued event")
    p.set_defaults(func=cmd_purge)

    p = sub.add_parser("sent", help="the last batches sent: when, the answer, how many events")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--limit", type=_count, default=100, help="at most this many (newest first)")
    p.set_defaults(func=cmd_sent)

    p = sub.add_parser(
        "errors", help="the error reports waiting to be sent and the last sent, with their counts"
    )
    p.add_argument(
        "--json",
        action="store_true",
        help="one JSON object per line: status, sent_at, http_status, the report as sent",
    )
    p.add_argument(
        "--limit", type=_count, default=50, help="at most this many sent reports (newest first)"
    )
    p.set_defaults(func=cmd_errors)

    p = sub.add_parser("flush", help="send the queued events now, if the user's consent allows it")
    p.add_argument("--timeout", type=float, default=30.0)
    p.set_defaults(func=cmd_flush)

    p = sub.add_parser("catalogue", help="the event types and properties the app may send")
    p.add_argument("--file", help="print this TOML or JSON catalogue file instead")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_catalogue)

    p = sub.add_parser(
        "query",
        help="run one read-only SQL statement on the app's database (like sqlite-utils query)",
    )
    p.add_argument("sql", help="one SELECT statement (writes, ATTACH and PRAGMA are refused)")
    p.add_argument(
        "-p",
        "--param",
        nargs=2,
        action="append",
        default=[],
        metavar=("NAME", "VALUE"),
        help="a named :parameter of the statement (repeatable)",
    )
    shape = p.add_mutually_exclusive_group()
    shape.add_argument("--nl", action="store_true", help="one JSON object per line")
    shape.add_argument("--csv", action="store_true", help="CSV with a header row")
    shape.add_argument("--tsv", action="store_true", help="TSV with a header row")
    shape.add_argument("--table", action="store_true", help="a plain-text table")
    shape.add_argument("--fmt", help="a table in this tabulate format (e.g. github, grid)")
    p.set_defaults(func=cmd_query)


def _add_tool_commands(sub: Any) -> None:
    """The commands that need no data dir: drives, the collector, signed links."""
    p = sub.add_parser("drives", help="list SD cards, USB drives and other disks")
    p.add_argument("--json", action="store_true", help="one JSON object per drive")
    p.add_argument("--all", action="store_true", help="include drives that are not flash targets")
    p.add_argument("--watch", action="store_true", help="keep reporting hot-plug changes")
    p.set_defaults(func=cmd_drives)

    p = sub.add_parser(
        "collector",
        help="run the collector (the receiving end), or 'telemetry collector errors' to list"
        " the error-report groups it stored; also takes python -m telemetry.collector's"
        " --config, --environment, --forward-interval and --ready-file",
    )
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8555)
    p.add_argument("--database", default="collector.db")
    p.set_defaults(func=cmd_collector)

    p = sub.add_parser("sign-url", help="print a signed link for the collector's /r/collect")
    p.add_argument(
        "--secret",
        default=os.environ.get("TELEMETRY_LINK_SECRET"),
        help="link secret (default: $TELEMETRY_LINK_SECRET)",
    )
    p.add_argument("--base", required=True, help="e.g. https://t.example.com/r/collect")
    p.add_argument("--method", choices=["hmac-sha256", "md5"], default="hmac-sha256")
    p.add_argument("params", nargs="+", metavar="KEY=VALUE", help="p=, k=, a=, url=, d1..d5=, sp=")
    p.set_defaults(func=cmd_sign_url)


def _configure_logging(verbose: bool) -> None:
    """The commands report what matters themselves (an unusable database, the veto); the
    library's log lines appear only with ``--verbose``."""
    import logging

    library = logging.getLogger("telemetry")
    if verbose:
        if not logging.getLogger().handlers:
            logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
        library.setLevel(logging.INFO)
    elif not library.handlers:
        library.addHandler(logging.NullHandler())


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if args.command == "collector":
        args.collector_options = extra
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    _configure_logging(args.verbose)
    try:
        code: int = args.func(args, sys.stdout)
    except TelemetryError as exc:  # CommandError too: a problem the user can act on
        sys.stderr.write(f"telemetry: {exc}\n")
        return EXIT_FAILED
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0
    return code


if __name__ == "__main__":
    raise SystemExit(main())
