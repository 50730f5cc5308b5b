"""The ``telemetry`` command (and ``python -m telemetry``): a thin layer over the library.

Commands: ``status``, ``events``, ``export``, ``purge``, ``flush`` over one app's local
database (chosen with ``--data-dir``, ``TELEMETRY_DATA_DIR`` or ``--app``), plus ``drives``
and ``collector``.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

from telemetry._delivery import Uploader, status_dict
from telemetry._options import default_data_dir
from telemetry._store import DB_FILENAME, EventStore


def _fmt_ms(value: int | None) -> str:
    if not value:
        return "never"
    return datetime.fromtimestamp(value / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _data_dir(args: argparse.Namespace) -> Path:
    if args.data_dir:
        return Path(args.data_dir)
    if args.app:
        return default_data_dir(args.app)
    raise SystemExit(
        "telemetry: say which app's database to use: --data-dir DIR, TELEMETRY_DATA_DIR=DIR "
        "or --app COMPONENT_NAME"
    )


def _open_store(args: argparse.Namespace) -> EventStore:
    directory = _data_dir(args)
    if not (directory / DB_FILENAME).exists():
        raise SystemExit(f"telemetry: no telemetry database at {directory / DB_FILENAME}")
    return EventStore(directory)


def cmd_status(args: argparse.Namespace, out: TextIO) -> int:
    with _open_store(args) as store:
        info = status_dict(store)
    if args.json:
        out.write(json.dumps(info, indent=2, sort_keys=True) + "\n")
        return 0
    upload = info["upload"]
    lines = [
        f"database:     {info['database']}"
        + (f"  ({info['degraded']})" if info["degraded"] else ""),
        f"project:      {info['project_name']} / {info['component_name']}"
        f" {info['component_version'] or ''}".rstrip(),
        f"consent:      {info['consent']}",
        f"device id:    {info['device_id']}",
        f"user id:      {info['user_id'] or '-'}",
        f"endpoint:     {info['endpoint']}",
        f"queued:       {info['queue']['events']} events, {info['queue']['bytes']} bytes"
        f" (oldest {_fmt_ms(info['queue']['oldest_time'])})",
        f"last upload:  {_fmt_ms(upload.get('last_attempt_at'))}"
        f" - {upload.get('last_result', 'none yet')}",
        f"last success: {_fmt_ms(upload.get('last_success_at'))}",
        "next attempt: "
        + (_fmt_ms(upload["next_attempt_at"]) if upload.get("next_attempt_at") else "when due"),
        "counters:     "
        + (", ".join(f"{k}={v}" for k, v in sorted(info["counters"].items())) or "none"),
    ]
    out.write("\n".join(lines) + "\n")
    return 0


def cmd_events(args: argparse.Namespace, out: TextIO) -> int:
    with _open_store(args) as store:
        last = 0
        shown = 0
        while True:
            for event in store.iter_events(last):
                last = event.id
                if args.limit and shown >= args.limit:
                    break
                shown += 1
                if args.json:
                    out.write(event.json + "\n")
                else:
                    props = event.as_dict().get("event_properties", {})
                    out.write(
                        f"{event.id:>8}  {_fmt_ms(event.time)}  {event.event_type}"
                        f"  {json.dumps(props, sort_keys=True)[:120]}\n"
                    )
            out.flush()
            if not args.follow:
                return 0
            time.sleep(args.interval)


def cmd_export(args: argparse.Namespace, out: TextIO) -> int:
    target: TextIO = open(args.output, "w", newline="") if args.output else out  # noqa: SIM115
    try:
        with _open_store(args) as store:
            if args.format == "jsonl":
                for event in store.iter_events():
                    target.write(event.json + "\n")
            else:
                columns = [
                    "event_id", "insert_id", "event_type", "time", "device_id", "user_id",
                    "session_id", "app_version", "platform", "os_name", "os_version",
                    "language", "library", "event_properties", "user_properties",
                ]  # fmt: skip
                writer = csv.DictWriter(target, fieldnames=columns, extrasaction="ignore")
                writer.writeheader()
                for event in store.iter_events():
                    row = event.as_dict()
                    for key in ("event_properties", "user_properties"):
                        if key in row:
                            row[key] = json.dumps(row[key], sort_keys=True)
                    writer.writerow(row)
    finally:
        if target is not out:
            target.close()
    return 0


def cmd_purge(args: argparse.Namespace, out: TextIO) -> int:
    with _open_store(args) as store:
        removed = store.purge()
    out.write(f"purged {removed} queued events\n")
    return 0


def cmd_flush(args: argparse.Namespace, out: TextIO) -> int:
    with _open_store(args) as store:
        client = store.get_state("client", {})
        url, project = client.get("endpoint_url"), client.get("project_name")
        if not url or not project:
            out.write("telemetry: this database has no endpoint or project recorded\n")
            return 1
        before = store.stats().events
        uploader = Uploader(store, url=url, api_key=project)
        uploader.start()
        try:
            drained = uploader.flush(args.timeout)
        finally:
            uploader.stop(2.0)
        after = store.stats().events
        result = uploader.status().get("last_result", "nothing to send")
    out.write(f"sent {before - after} events, {after} still queued ({result})\n")
    return 0 if drained else 1


def cmd_drives(args: argparse.Namespace, out: TextIO) -> int:
    from telemetry.drives.cli import run

    return run(as_json=args.json, show_all=args.all, watch=args.watch, out=out)


def cmd_collector(args: argparse.Namespace, out: TextIO) -> int:
    """``python -m telemetry.collector`` with the same options (``--config``,
    ``--environment``, ``--forward-interval``, ``--ready-file`` pass through)."""
    try:
        from telemetry.collector.__main__ import main as collector_main
    except ImportError as exc:
        out.write(f"telemetry: the collector needs the 'collector' extra ({exc})\n")
        return 1
    argv = ["--host", args.host, "--port", str(args.port), "--database", args.database]
    return collector_main([*argv, *args.collector_options])


def cmd_catalogue(args: argparse.Namespace, out: TextIO) -> int:
    from telemetry.catalogue import EventCatalogue
    from telemetry.errors import ConfigError

    try:
        if args.file:
            catalogue = EventCatalogue.from_file(args.file)
        else:
            with _open_store(args) as store:
                declared = store.get_state("catalogue")
            if declared is None:
                out.write(
                    "telemetry: this app declared no event catalogue; its events and "
                    "properties are not checked against a list\n"
                )
                return 0
            catalogue = EventCatalogue.from_dict(declared)
    except ConfigError as exc:
        sys.stderr.write(f"telemetry: {exc}\n")
        return 1
    if args.json:
        out.write(json.dumps(catalogue.to_dict(), indent=2, ensure_ascii=False) + "\n")
    else:
        out.write(catalogue.to_text())
    return 0


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


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (exposed for documentation tests)."""
    parser = argparse.ArgumentParser(
        prog="telemetry", description="Inspect and manage an app's local telemetry."
    )
    parser.add_argument(
        "--data-dir",
        default=os.environ.get("TELEMETRY_DATA_DIR"),
        help="the app's telemetry data dir (default: $TELEMETRY_DATA_DIR)",
    )
    parser.add_argument("--app", help="the app's component name, to find its default data dir")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("status", help="consent, device id, queue, counters, endpoint, last upload")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_status)

    p = sub.add_parser("events", help="the queued events")
    p.add_argument("--json", action="store_true", help="one event per line, exactly as sent")
    p.add_argument("--follow", action="store_true", help="keep printing new events")
    p.add_argument("--limit", type=int, default=0, help="print at most this many")
    p.add_argument("--interval", type=float, default=0.5, help=argparse.SUPPRESS)
    p.set_defaults(func=cmd_events)

    p = sub.add_parser("export", help="write the queued events as JSON lines or CSV")
    p.add_argument("--format", choices=["jsonl", "csv"], default="jsonl")
    p.add_argument("--output", "-o", help="file to write (default: standard output)")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("purge", help="delete every queued event")
    p.set_defaults(func=cmd_purge)

    p = sub.add_parser("flush", help="send the queued events now")
    p.add_argument("--timeout", type=float, default=30.0)
    p.set_defaults(func=cmd_flush)

    p = sub.add_parser("catalogue", help="the event types and properties the app may send")
    p.add_argument("--file", help="print this TOML or JSON catalogue file instead")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_catalogue)

    p = sub.add_parser("drives", help="list SD cards, USB drives and other disks")
    p.add_argument("--json", action="store_true", help="one JSON object per drive")
    p.add_argument("--all", action="store_true", help="include drives that are not flash targets")
    p.add_argument("--watch", action="store_true", help="keep reporting hot-plug changes")
    p.set_defaults(func=cmd_drives)

    p = sub.add_parser(
        "collector",
        help="run the collector (the receiving end); also takes python -m telemetry.collector's"
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
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if args.command == "collector":
        args.collector_options = extra
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    try:
        code: int = args.func(args, sys.stdout)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0
    return code


if __name__ == "__main__":
    raise SystemExit(main())
