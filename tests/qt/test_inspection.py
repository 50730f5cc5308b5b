"""``telemetry._inspection``: the inspector's rows without Qt, over a real client and its real
SQLite file, and the import rules that keep the Qt layer and the demo behind the client."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import telemetry
from telemetry import _inspection as inspection

ROOT = Path(__file__).resolve().parents[2]


def test_inspection_imports_no_qt() -> None:
    code = (
        "import sys, telemetry._inspection\n"
        "loaded = sorted(m for m in sys.modules if m.split('.')[0] in ('PySide6', 'shiboken6'))\n"
        "print(loaded)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert out.stdout.strip() == "[]", out.stdout


def test_rows_pages_filter_and_export_without_qt(client: telemetry.Client, tmp_path: Path) -> None:
    for i in range(7):
        client.track("Flash", {"n": i, "note": "needle" if i == 3 else "hay"})
    client.track("Select drive", {"driveType": "usb-flash"})
    queued = list(client.queued_events())
    first = inspection.queued_rows(client, limit=3)
    assert [r.detail for r in first] == [e.insert_id for e in queued[:3]]
    rest = inspection.queued_rows(client, after_id=inspection.last_queue_id(first))
    assert [r.json for r in [*first, *rest]] == [e.json for e in queued]
    assert inspection.signature(client, inspection.QUEUED)[0] == len(queued)

    needle = [
        r for r in inspection.all_queued_rows(client) if inspection.row_matches(r, None, "NEEDLE")
    ]
    assert len(needle) == 1 and json.loads(needle[0].json)["event_properties"]["n"] == 3
    flashes = [
        r for r in inspection.rows_of(client, "queued") if inspection.row_matches(r, "Flash", "")
    ]
    assert len(flashes) == 7

    out = tmp_path / "flash.jsonl"
    assert inspection.write_jsonl(flashes, out) == 7
    lines = out.read_text(encoding="utf-8").splitlines()
    assert [json.loads(line)["event_type"] for line in lines] == ["Flash"] * 7
    assert not out.with_name("flash.jsonl.part").exists()

    assert client.purge() == len(queued)
    assert inspection.queued_rows(client) == []
    assert inspection.signature(client, inspection.QUEUED)[0] == 0


def test_rows_of_the_noop_client_are_empty() -> None:
    client = telemetry.create_noop_client()
    for kind in inspection.KINDS:
        assert list(inspection.rows_of(client, kind)) == []
        inspection.signature(client, kind)  # no error


def _private_telemetry_imports(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        for name in names:
            parts = name.split(".")
            if parts[0] == "telemetry" and any(p.startswith("_") for p in parts[1:]):
                found.append(f"{path.relative_to(ROOT)}:{node.lineno}: {name}")
    return found


def test_the_demo_imports_only_public_telemetry_names() -> None:
    files = sorted((ROOT / "demo_app").rglob("*.py"))
    assert len(files) > 10
    problems = [p for f in files for p in _private_telemetry_imports(f)]
    assert problems == []


def test_the_qt_layer_reads_no_store_or_uploader() -> None:
    """The widgets go through the client's public methods only (no ``.store``/``._store``,
    no ``.uploader``/``._uploader``)."""
    problems = []
    for path in sorted((ROOT / "telemetry" / "qt").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Attribute) and node.attr in (
                "store",
                "_store",
                "uploader",
                "_uploader",
            ):
                problems.append(f"{path.name}:{node.lineno}: .{node.attr}")
            if isinstance(node, ast.ImportFrom) and node.module in (
                "telemetry.store",
                "telemetry.uploader",
            ):
                problems.append(f"{path.name}:{node.lineno}: import {node.module}")
    assert problems == []


def test_report_rows_without_qt(data_dir: Path) -> None:
    """One row per waiting report with its count and times, then the sent ones; the error is
    the exception raised (the last of a chain), else the message; the JSON is the text sent."""
    from telemetry.testing import RecordingDestination

    destination = RecordingDestination()
    with telemetry.create_client(
        "p", "a", "1.0", "http://127.0.0.1:9", data_dir=data_dir, destination=destination
    ) as client:
        client.mark_notice_answered()
        client.capture_message("sent first", level="warning")
        assert client.flush(10)
        destination.fail(times=1_000)  # from now on nothing is delivered
        for n in range(2):
            try:
                try:
                    {}["missing"]
                except KeyError as inner:
                    raise RuntimeError(f"lookup failed {n}") from inner
            except RuntimeError as exc:
                client.capture_exception(exc)
        rows = inspection.report_rows(client)
        waiting = client.queued_reports()
    assert [(r.status, r.level, r.error, r.count) for r in rows] == [
        ("queued", "error", "RuntimeError: lookup failed 1", 2),
        ("sent", "warning", "sent first", 1),
    ]
    queued, sent = rows
    assert json.loads(queued.json) == waiting[0]
    assert queued.first_seen is not None and queued.last_seen is not None
    assert queued.first_seen <= queued.last_seen
    assert (queued.sent_at, queued.http_status) == (None, None)
    [received] = destination.reports[:1]
    assert sent.json == json.dumps(received, ensure_ascii=False, separators=(",", ":"))
    assert sent.http_status == 200 and isinstance(sent.sent_at, int)
    # The search looks into reports too; the event type filter never leaves them out.
    assert [r.status for r in rows if inspection.row_matches(r, "Flash", "LOOKUP")] == ["queued"]
    assert inspection.report_rows(telemetry.create_noop_client()) == []
