"""The ``telemetry`` command's data-dir commands: ``status``, ``events``, ``export``, ``purge``,
``flush``, ``catalogue`` and ``query``, each a few calls on the client that
:func:`telemetry.open_client` gives, so each follows the app's consent decision."""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from telemetry.errors import TelemetryError

if TYPE_CHECKING:
    from telemetry import Client

#: Exit code of a command that could not do what was asked (a usage error exits with 2).
EXIT_FAILED = 1


class CommandError(TelemetryError):
    """A problem the user can act on: printed as one line on standard error, exit code 1."""


def _fmt_ms(value: int | None) -> str:
    if not value:
        return "never"
    return datetime.fromtimestamp(value / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _data_dir(args: argparse.Namespace) -> Path:
    if args.data_dir:
        return Path(args.data_dir)
    if args.app:
        from telemetry import default_data_dir

        return default_data_dir(args.app)
    raise CommandError(
        "say which app's database to use: --data-dir DIR, TELEMETRY_DATA_DIR=DIR "
        "or --app COMPONENT_NAME"
    )


@contextlib.contextmanager
def _opened(args: argparse.Namespace, *, upload: bool = False) -> Iterator[Client]:
    """The app's client on the chosen data dir, closed afterwards."""
    from telemetry import ConfigError, open_client

    directory = _data_dir(args)
    try:
        client = open_client(directory, upload=upload)
    except ConfigError as exc:
        raise CommandError(str(exc)) from None
    try:
        if client.disabled_by_environment is None:
            degraded = client.status().get("degraded")
            if degraded:
                raise CommandError(f"the telemetry database in {directory} is unusable: {degraded}")
        yield client
    finally:
        client.close()


def _veto_message(blocked_by: str, consequence: str) -> str:
    return (
        f"telemetry is disabled by {blocked_by} in this environment: {consequence} "
        f"(unset {blocked_by} to use this command)"
    )


def _refuse_if_vetoed(client: Client, consequence: str) -> None:
    blocked_by = client.disabled_by_environment
    if blocked_by is not None:
        raise CommandError(_veto_message(blocked_by, consequence))


#: Why nothing can be sent from a database in which the app never recorded (so it stored
#: neither its project, nor its endpoint, nor its consent policy).
_NOTHING_RECORDED = (
    "the app has not recorded anything with telemetry on yet (under the opt_in policy: the"
    " user has not agreed), so no project or endpoint is stored"
)


def _why_not_sent(client: Client, *, recorded: bool) -> str | None:
    """Why the app's consent decision keeps queued events on this machine, or ``None`` when it
    lets them be sent (the rules of :func:`telemetry.consent.decide`). ``recorded``: the
    database holds the app's project and policy."""
    from telemetry.consent import ConsentPolicy, ConsentState, decide

    blocked_by = client.disabled_by_environment
    if blocked_by is not None:
        return f"telemetry is disabled by {blocked_by} in this environment"
    if client.consent_state is ConsentState.DENIED:
        return "the user turned telemetry off"
    if not recorded:
        return _NOTHING_RECORDED
    decision = decide(
        client.consent_policy,
        client.consent_state,
        notice_answered=client.notice_answered,
        blocked_by=blocked_by,
    )
    if decision.upload_events:
        return None
    if client.consent_policy is ConsentPolicy.OPT_IN:
        return "the app asks first (opt_in) and the user has not agreed"
    shown = "shown" if client.notice_shown else "not shown yet"
    return f"the first-run notice is not answered yet ({shown})"


# ---------------------------------------------------------------------- status


def cmd_status(args: argparse.Namespace, out: TextIO) -> int:
    with _opened(args) as client:
        if client.disabled_by_environment is not None:
            return _status_vetoed(client, args.json, out)
        info = client.status()
        reason = _why_not_sent(client, recorded=info["project_name"] is not None)
    info["uploads_allowed"] = reason is None
    info["not_sent_because"] = reason
    if args.json:
        out.write(json.dumps(info, indent=2, sort_keys=True) + "\n")
        return 0
    upload = info["upload"]
    notice = (
        "answered"
        if info["notice_answered"]
        else ("shown, not answered" if info["notice_shown"] else "not shown")
    )
    policy = info["consent_policy"] if info["project_name"] is not None else "not stored yet"
    lines = [
        f"database:     {info['database']}",
        f"project:      {info['project_name']} / {info['component_name']}"
        f" {info['component_version'] or ''}".rstrip(),
        f"consent:      {info['consent']} (policy {policy}; first-run notice {notice})",
        "uploads:      " + ("allowed" if reason is None else f"not allowed: {reason}"),
        f"device id:    {info['device_id'] or '-'}",
        f"user id:      {info['user_id'] or '-'}",
        f"endpoint:     {info['endpoint']}",
        f"queued:       {info['queue']['events']} events, {info['queue']['bytes']} bytes"
        f" (oldest {_fmt_ms(info['queue']['oldest_time'])})",
        f"deletions:    {info['deletion_requests']} request(s) waiting to be sent",
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


def _status_vetoed(client: Client, as_json: bool, out: TextIO) -> int:
    """What the client knows without reading the queue: the veto, the app, the stored choice."""
    blocked_by = client.disabled_by_environment
    assert blocked_by is not None
    info: dict[str, Any] = {
        "disabled_by_environment": blocked_by,
        "data_dir": str(client.data_dir),
        "project_name": client.project_name,
        "component_name": client.component_name,
        "component_version": client.component_version,
        "endpoint": client.endpoint_url,
        "consent": str(client.consent_state),
        "consent_policy": str(client.consent_policy),
        "notice_shown": client.notice_shown,
        "notice_answered": client.notice_answered,
        "enabled": False,
        "uploads_allowed": False,
        "not_sent_because": f"telemetry is disabled by {blocked_by} in this environment",
        "queue": None,
    }
    if as_json:
        out.write(json.dumps(info, indent=2, sort_keys=True) + "\n")
        return 0
    lines = [
        f"disabled:     by {blocked_by} in this environment: nothing is recorded, written or"
        " sent, and the queue was not read",
        f"data dir:     {info['data_dir']}",
        f"project:      {info['project_name']} / {info['component_name']}"
        f" {info['component_version'] or ''}".rstrip(),
        f"consent:      {info['consent']} (stored; policy {info['consent_policy']}); it applies"
        f" again once {blocked_by} is unset",
    ]
    out.write("\n".join(lines) + "\n")
    return 0


# ---------------------------------------------------------------------- events, export, purge


def cmd_events(args: argparse.Namespace, out: TextIO) -> int:
    from telemetry.consent import ConsentState

    with _opened(args) as client:
        _refuse_if_vetoed(client, "the queue was not read, nothing was written or sent")
        last = 0
        shown = 0
        while True:
            for event in client.queued_events(last):
                if args.limit and shown >= args.limit:
                    return 0
                last = event.id
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
            if client.consent_state is ConsentState.DENIED:
                sys.stderr.write("telemetry: the user turned telemetry off; nothing is queued\n")
                return 0
            time.sleep(args.interval)


_CSV_COLUMNS = (
    "event_id", "insert_id", "event_type", "time", "device_id", "user_id", "session_id",
    "app_version", "platform", "os_name", "os_version", "language", "library",
    "event_properties", "user_properties",
)  # fmt: skip


def cmd_export(args: argparse.Namespace, out: TextIO) -> int:
    with _opened(args) as client:
        _refuse_if_vetoed(client, "the queue was not read, nothing was written or sent")
        # Opened only now: under the veto, or without a database, no file is created.
        target: TextIO = open(args.output, "w", newline="") if args.output else out  # noqa: SIM115
        try:
            if args.format == "jsonl":
                for event in client.queued_events():
                    target.write(event.json + "\n")
            else:
                import csv

                writer = csv.DictWriter(target, fieldnames=_CSV_COLUMNS, extrasaction="ignore")
                writer.writeheader()
                for event in client.queued_events():
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
    with _opened(args) as client:
        _refuse_if_vetoed(client, "nothing was deleted, written or sent")
        removed = client.purge()
    out.write(f"purged {removed} queued events\n")
    return 0


# ---------------------------------------------------------------------- flush


def cmd_flush(args: argparse.Namespace, out: TextIO) -> int:
    # The uploader may start sending as soon as the client opens: what was delivered is
    # counted from the sent log, from this moment on.
    started_ms = time.time_ns() // 1_000_000
    with _opened(args, upload=True) as client:
        _refuse_if_vetoed(client, "nothing was sent")
        if not client.uploading:
            queued = client.queue_stats().events
            recorded = client.status()["project_name"] is not None
            reason = _why_not_sent(client, recorded=recorded) or _NOTHING_RECORDED
            sys.stderr.write(f"telemetry: sent nothing: {reason}; {queued} events stay queued\n")
            return EXIT_FAILED if queued else 0
        drained = client.flush(args.timeout)
        left = client.queue_stats().events
        result = client.upload_status().get("last_result") or "nothing to send"
        sent = sum(
            batch["event_count"]
            for batch in client.sent_batches()
            if batch["sent_at"] >= started_ms and 200 <= batch["status"] < 300
        )
    out.write(f"sent {sent} events, {left} still queued ({result})\n")
    return 0 if drained else EXIT_FAILED


# ---------------------------------------------------------------------- catalogue, query


def cmd_catalogue(args: argparse.Namespace, out: TextIO) -> int:
    from telemetry import ConfigError, EventCatalogue

    if args.file:
        try:
            catalogue: EventCatalogue | None = EventCatalogue.from_file(args.file)
        except ConfigError as exc:
            raise CommandError(str(exc)) from None
    else:
        with _opened(args) as client:
            catalogue = client.catalogue
            blocked_by = client.disabled_by_environment
        if blocked_by is not None:
            sys.stderr.write(
                f"telemetry: note: telemetry is disabled by {blocked_by} in this environment:"
                " nothing is recorded or sent; this is the app's declaration only\n"
            )
    if catalogue is None:
        out.write(
            "telemetry: this app declared no event catalogue; its events and "
            "properties are not checked against a list\n"
        )
        return 0
    if args.json:
        out.write(json.dumps(catalogue.to_dict(), indent=2, ensure_ascii=False) + "\n")
    else:
        out.write(catalogue.to_text())
    return 0


def _json_value(value: object) -> object:
    """Blobs as sqlite-utils prints them."""
    if isinstance(value, bytes):
        import base64

        return {"$base64": True, "encoded": base64.b64encode(value).decode("latin-1")}
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def cmd_query(args: argparse.Namespace, out: TextIO) -> int:
    from telemetry import StoreError

    with _opened(args) as client:
        _refuse_if_vetoed(client, "the database was not read, nothing was written or sent")
        try:
            rows = client.query(args.sql, dict(args.param))
        except StoreError as exc:
            raise CommandError(
                f"{exc}; only one read-only statement may run (no writes, schema changes,"
                " ATTACH or PRAGMA), and nothing was changed"
            ) from None
    headers = list(rows[0]) if rows else []
    if args.table or args.fmt:
        try:
            import tabulate  # type: ignore[import-untyped]
        except ImportError:
            raise CommandError("--table and --fmt need the tabulate package") from None
        table = tabulate.tabulate(
            [list(row.values()) for row in rows], headers=headers, tablefmt=args.fmt or "simple"
        )
        if table:
            out.write(table + "\n")
    elif args.csv or args.tsv:
        import csv

        writer = csv.writer(out, dialect="excel-tab" if args.tsv else "excel")
        if headers:
            writer.writerow(headers)
        for row in rows:
            writer.writerow(row.values())
    elif args.nl:
        for row in rows:
            out.write(json.dumps(row, default=_json_value) + "\n")
    elif not rows:
        out.write("[]\n")
    else:
        last = len(rows) - 1
        for index, row in enumerate(rows):
            first = "[" if index == 0 else " "
            end = "]" if index == last else ","
            out.write(f"{first}{json.dumps(row, default=_json_value)}{end}\n")
    return 0


# ---------------------------------------------------------------------- no data dir
