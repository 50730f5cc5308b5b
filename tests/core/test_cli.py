"""The `telemetry` command over a real database (and a real collector for `flush`)."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

import telemetry
from telemetry._store import EventStore
from telemetry.cli import main
from tests.collector_process import start_in_thread


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    code = main(list(args))
    return code, capsys.readouterr().out


@pytest.fixture
def filled(data_dir: Path) -> Path:
    with telemetry.create_client(
        "cli-proj", "cli-app", "9.9", "http://127.0.0.1:9", data_dir=data_dir, upload=False
    ) as client:
        client.track("First", {"n": 1, "nested": {"A": "b"}})
        client.track("Second", {"n": 2})
    return data_dir


def test_status_json_reports_queue_identity_and_endpoint(filled, capsys) -> None:
    code, out = run(capsys, "--data-dir", str(filled), "status", "--json")
    info = json.loads(out)
    assert code == 0
    assert info["queue"]["events"] == 3  # two events and the $identify
    assert info["queue"]["bytes"] > 0
    assert info["project_name"] == "cli-proj" and info["component_version"] == "9.9"
    assert info["endpoint"] == "http://127.0.0.1:9/amplitude/2/httpapi"
    assert len(info["device_id"]) == 36


def test_status_text_and_env_var(filled, capsys, monkeypatch) -> None:
    monkeypatch.setenv("TELEMETRY_DATA_DIR", str(filled))
    proc = subprocess.run(
        [sys.executable, "-m", "telemetry", "status"], capture_output=True, text=True, check=True
    )
    assert "queued:       3 events" in proc.stdout
    assert "cli-proj / cli-app 9.9" in proc.stdout


def test_events_json_prints_exactly_what_is_sent(filled, capsys) -> None:
    code, out = run(capsys, "--data-dir", str(filled), "events", "--json")
    lines = out.splitlines()
    with EventStore(filled) as store:
        payloads = [e.json for e in store.pending(500)]
    assert code == 0 and lines == payloads
    assert json.loads(lines[1])["event_properties"] == {"n": 1, "nested.a": "b"}


def test_export_jsonl_and_csv(filled, capsys, tmp_path) -> None:
    target = tmp_path / "out.csv"
    assert (
        run(capsys, "--data-dir", str(filled), "export", "--format", "csv", "-o", str(target))[0]
        == 0
    )
    rows = list(csv.DictReader(io.StringIO(target.read_text())))
    assert [r["event_type"] for r in rows] == ["$identify", "First", "Second"]
    assert json.loads(rows[2]["event_properties"]) == {"n": 2}
    _, out = run(capsys, "--data-dir", str(filled), "export", "--format", "jsonl")
    assert [json.loads(line)["event_type"] for line in out.splitlines()][1:] == ["First", "Second"]


def test_purge_empties_the_queue_and_counts(filled, capsys) -> None:
    _, out = run(capsys, "--data-dir", str(filled), "purge")
    assert "purged 3" in out
    info = json.loads(run(capsys, "--data-dir", str(filled), "status", "--json")[1])
    assert info["queue"]["events"] == 0 and info["counters"]["dropped_purged"] == 3


def test_flush_delivers_to_the_recorded_endpoint(data_dir, tmp_path, capsys) -> None:
    url, stop = start_in_thread(tmp_path / "collector.db")
    try:
        with telemetry.create_client(
            "cli-proj", "cli-app", endpoint=url, data_dir=data_dir, upload=False
        ) as c:
            for i in range(30):
                c.track("Queued", {"i": i})
        code, out = run(capsys, "--data-dir", str(data_dir), "flush", "--timeout", "20")
        assert code == 0, out
        assert "sent 31 events, 0 still queued" in out
    finally:
        stop()


def test_missing_database_or_dir_is_a_clear_error(tmp_path, capsys, monkeypatch) -> None:
    with pytest.raises(SystemExit, match="no telemetry database"):
        main(["--data-dir", str(tmp_path / "nothing"), "status"])
    monkeypatch.delenv("TELEMETRY_DATA_DIR", raising=False)
    with pytest.raises(SystemExit, match="--data-dir"):
        main(["status"])


def test_collector_command_runs_the_collector_with_its_options(tmp_path: Path) -> None:
    """`telemetry collector` is `python -m telemetry.collector`: its own flags pass through."""
    import signal
    import subprocess
    import sys
    import time
    import urllib.request

    ready = tmp_path / "ready"
    config = tmp_path / "bad.toml"
    config.write_text("this is not = = toml\n")
    bad = subprocess.run(
        [sys.executable, "-m", "telemetry", "collector", "--port", "0", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode != 0 and "bad configuration" in bad.stderr
    proc = subprocess.Popen(
        [sys.executable, "-m", "telemetry", "collector", "--port", "0",
         "--database", str(tmp_path / "c.db"), "--environment", "staging",
         "--ready-file", str(ready)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while not ready.exists() and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.05)
        url = ready.read_text().strip()
        assert url.startswith("http://127.0.0.1:")
        with urllib.request.urlopen(f"{url}/healthz", timeout=10) as answer:
            assert answer.status == 200
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    assert (tmp_path / "c.db").exists()
    unknown = subprocess.run(
        [sys.executable, "-m", "telemetry", "status", "--bogus"], capture_output=True, text=True
    )
    assert unknown.returncode == 2 and "unrecognized arguments: --bogus" in unknown.stderr
