"""Every `telemetry` command follows the app's consent decision: with DO_NOT_TRACK or
TELEMETRY_DISABLED set, before the first-run notice is answered, and after an opt-out, none
makes a request to the app's endpoint (a counting server on 127.0.0.1 in front of a real
collector); once the app allows uploads, `telemetry flush` delivers (the positive control)."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import telemetry
from telemetry.cli import main
from tests._fixtures import (  # noqa: F401  (fixtures: registered by the import)
    RunningCollector,
    _direct_loopback,
    _no_environment_veto,
    collector,
)
from tests.collector_process import stored_rows
from tests.delivery._support import COMPONENT, PROJECT, make_client, track_many
from tests.delivery.fault_server import FaultServer

#: Every command on a data dir, in an order that leaves the queue to the last one (purge).
COMMANDS: tuple[tuple[str, ...], ...] = (
    ("status",),
    ("status", "--json"),
    ("events",),
    ("events", "--json"),
    ("export",),
    ("export", "--format", "csv", "-o", "{export}"),
    ("catalogue",),
    ("catalogue", "--json"),
    ("query", "select count(*) as n from events"),
    ("query", "select key from state order by key", "--table"),
    ("sent",),
    ("sent", "--json"),
    ("errors",),
    ("errors", "--json"),
    ("flush", "--timeout", "10"),
    ("purge",),
)


@pytest.fixture
def server(collector: RunningCollector) -> Iterator[FaultServer]:  # noqa: F811
    """Counts every request, and forwards it to the real collector."""
    with FaultServer(collector.url) as counting:
        yield counting


def record_app(data_dir: Path, endpoint: str, count: int = 3, *, answered: bool) -> list[str]:
    """The app (opt_out, uploads off) queues ``count`` events and shows its first-run notice;
    ``answered``: the user answered it. Returns the queued insert_ids (its $identify too)."""
    with telemetry.create_client(
        PROJECT, COMPONENT, "1.0.0", endpoint, data_dir=data_dir, upload=False
    ) as app:
        track_many(app, count, name="CLI consent")
        app.mark_notice_shown()
        if answered:
            app.mark_notice_answered()
        return [e.insert_id for e in app.queued_events()]


def run_all(
    data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], server: FaultServer
) -> dict[str, tuple[int, str, str]]:
    """Run every command in this process; each must leave the request count unchanged."""
    before = len(server.requests)
    results = {}
    for command in COMMANDS:
        argv = [part.format(export=tmp_path / "export.csv") for part in command]
        code = main(["--data-dir", str(data_dir), *argv])
        captured = capsys.readouterr()
        results[" ".join(command)] = (code, captured.out, captured.err)
        assert len(server.requests) == before, f"`telemetry {' '.join(command)}` made a request"
    return results


def run_cli(data_dir: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """``python -m telemetry --data-dir DIR ARGS`` in a child process."""
    return subprocess.run(
        [sys.executable, "-m", "telemetry", "--data-dir", str(data_dir), *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **env},
    )


def files_of(directory: Path) -> dict[str, tuple[int, int, str]]:
    """Size, modification time and digest of every file under ``directory``."""
    return {
        str(path.relative_to(directory)): (
            path.stat().st_size,
            path.stat().st_mtime_ns,
            hashlib.sha256(path.read_bytes()).hexdigest(),
        )
        for path in sorted(directory.rglob("*"))
        if path.is_file()
    }


def assert_flush_delivers(
    data_dir: Path, server: FaultServer, receiving: RunningCollector, expected: list[str]
) -> None:
    """The positive control: `telemetry flush` (a child process) sends ``expected``."""
    proc = run_cli(data_dir, "flush", "--timeout", "30")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(f"sent {len(expected)} events, 0 still queued")
    sent = {i for r in server.requests for i in r.insert_ids}
    assert set(expected) <= sent
    assert set(expected) <= {row["insert_id"] for row in stored_rows(receiving.database)}


@pytest.mark.parametrize("variable", ["DO_NOT_TRACK", "TELEMETRY_DISABLED"])
def test_under_the_environment_veto_no_command_reads_writes_or_sends(
    variable,
    data_dir,
    tmp_path,
    capsys,
    monkeypatch,
    server,
    collector,  # noqa: F811
) -> None:
    queued = record_app(data_dir, server.url, answered=True)  # the app would upload
    monkeypatch.setenv(variable, "1")
    files = files_of(data_dir)
    results = run_all(data_dir, tmp_path, capsys, server)
    follow = main(["--data-dir", str(data_dir), "events", "--follow"])
    assert follow == 1 and f"disabled by {variable}" in capsys.readouterr().err
    assert server.requests == []
    assert files_of(data_dir) == files, "a command touched the data dir under the veto"
    assert not (tmp_path / "export.csv").exists()

    for command, (code, out, err) in results.items():
        if command.startswith(("status", "catalogue")):
            assert code == 0, (command, err)
        else:
            assert (code, out) == (1, ""), command
            assert err.count("\n") == 1, (command, err)
            assert err.startswith(
                f"telemetry: telemetry is disabled by {variable} in this environment:"
            ), (command, err)
    assert "nothing was sent" in results["flush --timeout 10"][2]
    assert "nothing was deleted, written or sent" in results["purge"][2]
    assert "the queue was not read" in results["events"][2]
    assert "the reports were not read" in results["errors"][2]
    assert f"disabled:     by {variable} in this environment" in results["status"][1]
    assert f"consent:      off ({variable} is set)" in results["status"][1]
    assert "your choice:  on (notice answered, opt-out policy)" in results["status"][1]
    info = json.loads(results["status --json"][1])
    assert info["disabled_by_environment"] == variable and info["queue"] is None
    assert info["notice_answered"] is True and info["uploads_allowed"] is False
    assert f"disabled by {variable}" in results["catalogue"][2]

    proc = run_cli(data_dir, "flush", **{variable: "1"})
    assert proc.returncode == 1 and proc.stdout == ""
    assert f"telemetry is disabled by {variable} in this environment" in proc.stderr
    assert server.requests == []
    assert files_of(data_dir) == files

    monkeypatch.delenv(variable)
    assert_flush_delivers(data_dir, server, collector, queued)


def test_before_the_notice_is_answered_no_command_sends(
    data_dir,
    tmp_path,
    capsys,
    server,
    collector,  # noqa: F811
) -> None:
    queued = record_app(data_dir, server.url, answered=False)
    proc = run_cli(data_dir, "flush")
    assert proc.returncode == 1 and proc.stdout == ""
    assert proc.stderr == (
        "telemetry: sent nothing: the first-run notice is not answered yet (shown); "
        f"{len(queued)} events stay queued\n"
    )
    results = run_all(data_dir, tmp_path, capsys, server)
    assert server.requests == []

    assert results["flush --timeout 10"][0] == 1
    assert "the first-run notice is not answered yet" in results["flush --timeout 10"][2]
    assert (
        "uploads:      not allowed: the first-run notice is not answered yet"
        in (results["status"][1])
    )
    assert [json.loads(line)["insert_id"] for line in results["events --json"][1].splitlines()] == (
        queued
    )
    assert json.loads(results["query select count(*) as n from events"][1]) == [{"n": len(queued)}]
    assert results["purge"][:2] == (0, f"purged {len(queued)} queued events\n")

    with telemetry.create_client(
        PROJECT, COMPONENT, "1.0.0", server.url, data_dir=data_dir, upload=False
    ) as app:
        later = track_many(app, 2, name="After the answer")
        app.mark_notice_answered()
    assert_flush_delivers(data_dir, server, collector, later)


def test_after_an_opt_out_no_command_sends(
    data_dir,
    tmp_path,
    capsys,
    server,
    collector,  # noqa: F811
) -> None:
    app = make_client(data_dir, server.url)
    try:
        sent = track_many(app, 3, name="Before the opt-out")
        assert server.wait_for(
            lambda rs: sent[-1] in {i for r in rs if r.accepted for i in r.insert_ids}, 30
        )
        app.set_consent(False)
        assert server.wait_for(
            lambda rs: any(r.target.endswith("/deletion") and r.status == 200 for r in rs), 30
        )
        assert server.wait_for(lambda _: app.status()["deletion_requests"] == 0, 30)
    finally:
        app.close()
    baseline = len(server.requests)
    results = run_all(data_dir, tmp_path, capsys, server)
    proc = run_cli(data_dir, "flush")
    assert (proc.returncode, proc.stdout) == (0, "")  # nothing stays queued
    assert (
        proc.stderr
        == "telemetry: sent nothing: the user turned telemetry off; 0 events stay queued\n"
    )
    assert len(server.requests) == baseline
    assert len([r for r in server.requests if r.target.endswith("/deletion")]) == 1

    assert "consent:      off (you turned it off)" in results["status"][1]
    assert "not allowed: the user turned telemetry off" in results["status"][1]
    assert "None" not in results["status"][1]
    assert results["events"][:2] == (
        0,
        "No events are queued: you turned telemetry off, so nothing is recorded.\n",
    )
    assert results["errors"][:2] == (
        0,
        "No error reports are waiting or were sent: you turned telemetry off, so nothing is"
        " recorded.\n",
    )
    assert "the user turned telemetry off; 0 events stay queued" in results["flush --timeout 10"][2]
    assert results["purge"][:2] == (0, "purged 0 queued events\n")

    with telemetry.create_client(
        PROJECT, COMPONENT, "1.0.0", server.url, data_dir=data_dir, upload=False
    ) as again:
        again.set_consent(True)
        later = track_many(again, 2, name="After opting in again")
        queued = [e.insert_id for e in again.queued_events()]
    assert set(later) <= set(queued)
    assert_flush_delivers(data_dir, server, collector, queued)
