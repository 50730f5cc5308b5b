"""The ``telemetry`` command's data-dir commands: ``status``, ``events``, ``export``, ``purge``,
``sent``, ``errors``, ``flush``, ``catalogue`` and ``query``, each a few calls on the client that
:func:`telemetry.open_client` gives, so each follows the app's consent decision."""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from telemetry._cli_text import (
    cells,
    consent_words,
    fit_widths,
    plural,
    printable,
    table,
    terminal_width,
    utc,
)
from telemetry.errors import TelemetryError

if TYPE_CHECKING:
    from telemetry import Client, StoredEvent
    from telemetry._inspection import ReportRow

#: Exit code of a command that could not do what was asked (a usage error exits with 2).
EXIT_FAILED = 1


class CommandError(TelemetryError):
    """A problem the user can act on: printed as one line on standard error, exit code 1."""


def _data_dir(args: argparse.Namespace) -> Path:
    if args.data_dir:
        return Path(args.data_dir)
    if args.app:
        from telemetry import ConfigError, default_data_dir

        try:
            return default_data_dir(args.app)
        except ConfigError:
            raise CommandError(
                "--app must be the app's component name: letters, digits, '.', '_', '-' or "
                "spaces, starting with a letter or digit"
            ) from None
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

#: The project name :func:`telemetry.open_client` gives a database that stores none (after an
#: opt-out erased it, or before an opt-in app's user agreed).
_NO_PROJECT = "unknown-project"


def _app_words(project: str | None, component: str | None, version: str | None) -> str:
    if not project or project == _NO_PROJECT:
        return "not stored (the app keeps nothing about itself while telemetry is off)"
    return f"{project} / {component or 'unnamed app'}" + (f" {version}" if version else "")


def _device_words(device_id: str | None, consent: str) -> str:
    if device_id:
        return device_id
    if consent == "denied":
        return "none — telemetry is off"
    return "none yet (made when the app first records with telemetry on)"


def _upload_lines(info: dict[str, Any], *, may_send: bool) -> list[str]:
    """``last upload`` (when and where the last delivery went), the last attempt when it
    failed, the app's endpoint when it says something the last upload does not, the next
    attempt."""
    upload = info["upload"] or {}
    success_at = upload.get("last_success_at")
    success_url = upload.get("last_success_url")
    attempt_at = upload.get("last_attempt_at")
    if success_at:
        where = f" to {success_url}" if success_url else ""
        result = upload.get("last_result")
        said = f" ({result})" if result and attempt_at == success_at else ""
        lines = [f"last upload:  {utc(success_at)}{where}{said}"]
    else:
        lines = ["last upload:  none yet"]
    if attempt_at and attempt_at != success_at:
        lines.append(f"last attempt: {utc(attempt_at)}: {upload.get('last_result') or 'no result'}")
    endpoint = info["endpoint"]
    if may_send and endpoint and endpoint != success_url:
        lines.append(f"endpoint:     {endpoint} (set by the app when it last ran)")
    if may_send and upload.get("next_attempt_at"):
        lines.append(f"next attempt: {utc(upload['next_attempt_at'])}")
    return lines


def cmd_status(args: argparse.Namespace, out: TextIO) -> int:
    with _opened(args) as client:
        if client.disabled_by_environment is not None:
            return _status_vetoed(client, args.json, out)
        info = client.status()
        recorded = info["project_name"] is not None
        reason = _why_not_sent(client, recorded=recorded)
    info["uploads_allowed"] = reason is None
    info["not_sent_because"] = reason
    info["consent_summary"] = consent_words(
        info["consent"],
        info["consent_policy"] if recorded else None,
        notice_shown=info["notice_shown"],
        notice_answered=info["notice_answered"],
    )
    if args.json:
        out.write(json.dumps(info, indent=2, sort_keys=True) + "\n")
        return 0
    queue = info["queue"]
    queued = (
        f"{plural(queue['events'], 'event')}, {plural(queue['bytes'], 'byte')}"
        f" (oldest {utc(queue['oldest_time'])})"
        if queue["events"]
        else "no events"
    )
    deletions = info["deletion_requests"]
    may_send = info["consent"] != "denied" or deletions > 0
    counters = ", ".join(f"{k}={v}" for k, v in sorted(info["counters"].items()))
    lines = [
        "app:          "
        + _app_words(info["project_name"], info["component_name"], info["component_version"]),
        f"database:     {info['database']}",
        f"consent:      {info['consent_summary']}",
        "uploads:      " + ("allowed" if reason is None else f"not allowed: {reason}"),
        f"device id:    {_device_words(info['device_id'], info['consent'])}",
        f"user id:      {info['user_id'] or 'not set'}",
        f"queued:       {queued}",
        "deletions:    "
        + (f"{plural(deletions, 'request')} waiting to be sent" if deletions else "none waiting"),
        *_upload_lines(info, may_send=may_send),
        f"counters:     {counters or 'none'}",
    ]
    out.write("\n".join(lines) + "\n")
    return 0


def _status_vetoed(client: Client, as_json: bool, out: TextIO) -> int:
    """What the client knows without reading the queue: the veto, the app, the stored choice."""
    blocked_by = client.disabled_by_environment
    assert blocked_by is not None
    stored = client.project_name != _NO_PROJECT
    info: dict[str, Any] = {
        "disabled_by_environment": blocked_by,
        "data_dir": str(client.data_dir),
        "project_name": client.project_name if stored else None,
        "component_name": client.component_name if stored else None,
        "component_version": client.component_version if stored else None,
        "endpoint": client.endpoint_url if stored else None,
        "consent": str(client.consent_state),
        "consent_policy": str(client.consent_policy),
        "notice_shown": client.notice_shown,
        "notice_answered": client.notice_answered,
        "enabled": False,
        "uploads_allowed": False,
        "not_sent_because": f"telemetry is disabled by {blocked_by} in this environment",
        "consent_summary": consent_words("unknown", None, notice_shown=False,
                                         notice_answered=False, blocked_by=blocked_by),
        "queue": None,
    }  # fmt: skip
    if as_json:
        out.write(json.dumps(info, indent=2, sort_keys=True) + "\n")
        return 0
    choice = consent_words(
        info["consent"],
        info["consent_policy"] if stored else None,
        notice_shown=client.notice_shown,
        notice_answered=client.notice_answered,
    )
    lines = [
        "app:          "
        + _app_words(info["project_name"], info["component_name"], info["component_version"]),
        f"data dir:     {info['data_dir']}",
        f"consent:      {info['consent_summary']}",
        f"disabled:     by {blocked_by} in this environment: nothing is recorded, written or"
        " sent, and the queue was not read",
        f"your choice:  {choice}; it applies again once {blocked_by} is unset",
    ]
    out.write("\n".join(lines) + "\n")
    return 0


# ---------------------------------------------------------------------- events, export, purge


def _nothing_recorded(client: Client) -> str | None:
    """Why nothing is recorded, in words, when the consent decision says so."""
    from telemetry.consent import ConsentPolicy, ConsentState

    if client.consent_state is ConsentState.DENIED:
        return "you turned telemetry off, so nothing is recorded"
    if (
        client.consent_policy is ConsentPolicy.OPT_IN
        and client.consent_state is not ConsentState.GRANTED
    ):
        return "nothing is recorded until you agree (opt-in policy)"
    return None


def _nothing_queued(client: Client) -> str:
    """Why the queue is empty, in words, when the consent decision explains it."""
    reason = _nothing_recorded(client)
    return "no events are queued" + (f": {reason}" if reason else "")


#: The event column's widest width; longer event types end in an ellipsis.
_EVENT_COLUMN = 32
#: The event column's narrowest width, and the properties' width it gives way to.
_EVENT_COLUMN_MIN = 12
_PROPERTIES_COLUMN = 40
#: The id column's narrowest width (``--follow`` keeps the first rows' widths).
_ID_COLUMN = 6
_EVENT_HEADER = ("ID", "TIME (UTC)", "EVENT", "PROPERTIES")


class _EventTable:
    """Plain ``events``: columns sized by the first rows and the terminal, values cut with
    an ellipsis; the header comes with the first rows."""

    def __init__(self, out: TextIO) -> None:
        self._out = out
        self._widths: list[int] | None = None

    def write(self, rows: list[tuple[str, str, str, str]]) -> None:
        if not rows:
            return
        if self._widths is None:
            total = terminal_width()
            id_width = max(_ID_COLUMN, *(cells(r[0]) for r in rows))
            time_width = len(utc(1, suffix=False))
            # The event column gives way first to properties narrower than 40 cells.
            room = total - id_width - time_width - 3 * 2
            event_width = min(
                _EVENT_COLUMN,
                max(cells(_EVENT_HEADER[2]), *(cells(r[2]) for r in rows)),
                max(_EVENT_COLUMN_MIN, room - _PROPERTIES_COLUMN),
            )
            natural = [
                id_width,
                time_width,
                event_width,
                max(cells(_EVENT_HEADER[3]), *(cells(r[3]) for r in rows)),
            ]
            self._widths = fit_widths(natural, total)
            lines = table(_EVENT_HEADER, rows, widths=self._widths, right=(True,))
        else:
            lines = table(_EVENT_HEADER, rows, widths=self._widths, right=(True,))[1:]
        self._out.write("\n".join(lines) + "\n")


def _event_row(event: StoredEvent) -> tuple[str, str, str, str]:
    data = event.as_dict()
    # An $identify carries user properties only.
    props = data.get("event_properties") or data.get("user_properties") or {}
    text = json.dumps(props, sort_keys=True, ensure_ascii=False)
    return (str(event.id), utc(event.time, suffix=False), event.event_type, text)


def cmd_events(args: argparse.Namespace, out: TextIO) -> int:
    from telemetry.consent import ConsentState

    with _opened(args) as client:
        _refuse_if_vetoed(client, "the queue was not read, nothing was written or sent")
        last = 0
        shown = 0
        plain = _EventTable(out)
        told_empty = False
        while True:
            rows = []
            for event in client.queued_events(last):
                if args.limit and shown >= args.limit:
                    break
                last = event.id
                shown += 1
                if args.json:
                    out.write(event.json + "\n")
                else:
                    rows.append(_event_row(event))
            plain.write(rows)
            if shown == 0 and not told_empty:
                told_empty = True
                empty = _nothing_queued(client)
                if args.follow:
                    empty += "; waiting for new ones (Ctrl+C to stop)"
                if args.json:
                    sys.stderr.write(f"telemetry: {empty}\n")
                else:
                    out.write(empty[0].upper() + empty[1:] + ".\n")
            out.flush()
            if not args.follow or (args.limit and shown >= args.limit):
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
        try:
            target: TextIO = open(args.output, "w", newline="") if args.output else out  # noqa: SIM115
        except OSError as exc:
            raise CommandError(
                f"cannot write the export file ({exc.strerror or exc}); nothing was exported"
            ) from None
        count = 0
        try:
            if args.format == "jsonl":
                for event in client.queued_events():
                    target.write(event.json + "\n")
                    count += 1
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
                    count += 1
        finally:
            if target is not out:
                target.close()
        empty = _nothing_queued(client) if count == 0 else ""
    if args.output:
        written = f"telemetry: {plural(count, 'event')} written to {args.output}"
        if count == 0:
            shape = (
                "the file is empty" if args.format == "jsonl" else "the file has the header only"
            )
            written += f" ({empty}; {shape})"
        sys.stderr.write(written + "\n")
    elif count == 0:
        sys.stderr.write(f"telemetry: 0 events exported: {empty}\n")
    return 0


def cmd_purge(args: argparse.Namespace, out: TextIO) -> int:
    with _opened(args) as client:
        _refuse_if_vetoed(client, "nothing was deleted, written or sent")
        removed = client.purge()
    out.write(f"purged {removed} queued events\n")
    return 0


def cmd_sent(args: argparse.Namespace, out: TextIO) -> int:
    with _opened(args) as client:
        _refuse_if_vetoed(client, "the sent log was not read, nothing was written or sent")
        batches = [
            {k: batch[k] for k in ("id", "sent_at", "status", "event_count")}
            for batch in client.sent_batches(args.limit)
        ]
        upload = client.status()["upload"] or {}
    if args.json:
        out.write(json.dumps(batches, indent=2) + "\n")
        return 0
    if not batches:
        out.write("Nothing sent yet (or the log was erased when telemetry was turned off).\n")
        return 0
    rows = [
        (str(b["id"]), utc(b["sent_at"], suffix=False), str(b["status"]), f"{b['event_count']:,}")
        for b in batches
    ]
    header = ("ID", "SENT AT (UTC)", "STATUS", "EVENTS")
    widths = [max(cells(r[i]) for r in [header, *rows]) for i in range(4)]
    out.write("\n".join(table(header, rows, widths=widths, right=(True, False, True, True))))
    out.write("\n")
    if upload.get("last_success_url"):
        out.write(f"The last upload went to {upload['last_success_url']}.\n")
    return 0


# ---------------------------------------------------------------------- errors

_ERRORS_HEADER = ("LEVEL", "COUNT", "LAST SEEN (UTC)", "STATUS", "ERROR")


def _report_status(row: ReportRow) -> str:
    if row.status == "queued":
        return "queued"
    return "sent" if row.http_status is None else f"sent {row.http_status}"


def _report_line(row: ReportRow) -> str:
    """One JSON line: where the report is, and the report itself exactly as (to be) sent."""
    head = {"status": row.status, "sent_at": row.sent_at, "http_status": row.http_status}
    return json.dumps(head, separators=(",", ":"))[:-1] + ',"report":' + row.json + "}"


def cmd_errors(args: argparse.Namespace, out: TextIO) -> int:
    from telemetry._inspection import QUEUED, report_rows

    with _opened(args) as client:
        _refuse_if_vetoed(client, "the reports were not read, nothing was written or sent")
        rows = report_rows(client, sent=max(0, args.limit))
        # The last seen first; of two seen in the same millisecond, the one recorded later.
        order = {row.key: index for index, row in enumerate(rows)}
        waiting = sorted(
            (r for r in rows if r.status == QUEUED),
            key=lambda r: (r.last_seen or 0, order[r.key]),
            reverse=True,
        )
        rows = [*waiting, *(r for r in rows if r.status != QUEUED)]  # the sent: newest first
        not_sent = None
        if waiting:
            recorded = client.status()["project_name"] is not None
            not_sent = _why_not_sent(client, recorded=recorded)
        empty = _nothing_recorded(client) if not rows else None
    notes = [f"the reports waiting are not sent: {not_sent}"] if not_sent else []
    if not rows:
        notes = ["no error reports are waiting or were sent" + (f": {empty}" if empty else "")]
    if args.json:
        for row in rows:
            out.write(_report_line(row) + "\n")
        for note in notes:  # standard output stays JSON lines
            sys.stderr.write(f"telemetry: {note}\n")
        return 0
    if rows:
        cols = [
            (r.level, f"{r.count:,}", utc(r.last_seen, suffix=False), _report_status(r),
             printable(r.error) or "(no message)")
            for r in rows
        ]  # fmt: skip
        natural = [max(cells(c[i]) for c in [_ERRORS_HEADER, *cols]) for i in range(5)]
        widths = fit_widths(natural, terminal_width())
        lines = table(_ERRORS_HEADER, cols, widths=widths, right=(False, True))
        occurrences = sum(r.count for r in waiting)
        lines.append(
            f"{plural(len(waiting), 'report')} waiting to be sent"
            + (f" ({plural(occurrences, 'occurrence')})" if waiting else "")
            + f", {len(rows) - len(waiting):,} of the last sent shown."
        )
        out.write("\n".join(lines) + "\n")
    for note in notes:
        out.write(note[0].upper() + note[1:] + ".\n")
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
    if not rows and (args.csv or args.tsv or args.nl):
        # Nothing on standard output, so a pipeline reads no rows; the words go to stderr.
        sys.stderr.write("telemetry: the query returned no rows\n")
    if args.table or args.fmt:
        try:
            import tabulate  # type: ignore[import-untyped]
        except ImportError:
            raise CommandError("--table and --fmt need the tabulate package") from None
        text = tabulate.tabulate(
            [list(row.values()) for row in rows], headers=headers, tablefmt=args.fmt or "simple"
        )
        out.write((text or "(no rows)") + "\n")
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
        return 0
    else:
        last = len(rows) - 1
        for index, row in enumerate(rows):
            first = "[" if index == 0 else " "
            end = "]" if index == last else ","
            out.write(f"{first}{json.dumps(row, default=_json_value)}{end}\n")
    return 0


# ---------------------------------------------------------------------- no data dir
