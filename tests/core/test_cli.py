"""The `telemetry` command over a real database (and a real collector for `flush`)."""

from __future__ import annotations

import ast
import csv
import io
import json
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
import urllib.request
from pathlib import Path

import pytest

import telemetry
import telemetry.cli
from telemetry.cli import main
from tests._fixtures import _no_environment_veto  # noqa: F401  (autouse fixture)
from tests.collector_process import start_in_thread, stored_rows
from tests.delivery._support import read_line

ROOT = Path(__file__).resolve().parents[2]


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    code = main(list(args))
    return code, capsys.readouterr().out


def run_err(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def dump(data_dir: Path) -> str:
    """Every row and schema object of the app's database, read without writing."""
    conn = sqlite3.connect(f"file:{data_dir / 'telemetry.db'}?mode=ro", uri=True)
    try:
        return "\n".join(conn.iterdump())
    finally:
        conn.close()


def queued_json(data_dir: Path) -> list[str]:
    client = telemetry.open_client(data_dir)
    try:
        return [e.json for e in client.queued_events()]
    finally:
        client.close()


@pytest.fixture
def filled(data_dir: Path) -> Path:
    with telemetry.create_client(
        "cli-proj", "cli-app", "9.9", "http://127.0.0.1:9", data_dir=data_dir, upload=False
    ) as client:
        client.track("First", {"n": 1, "nested": {"A": "b"}})
        client.track("Second", {"n": 2})
    return data_dir


def test_status_json_reports_queue_identity_endpoint_and_consent(filled, capsys) -> None:
    code, out = run(capsys, "--data-dir", str(filled), "status", "--json")
    info = json.loads(out)
    assert code == 0
    assert info["queue"]["events"] == 3  # two events and the $identify
    assert info["queue"]["bytes"] > 0
    assert info["project_name"] == "cli-proj" and info["component_version"] == "9.9"
    assert info["endpoint"] == "http://127.0.0.1:9/amplitude/2/httpapi"
    assert len(info["device_id"]) == 36
    assert info["consent"] == "unknown" and info["consent_policy"] == "opt_out"
    assert info["notice_answered"] is False and info["uploads_allowed"] is False
    assert "not answered" in info["not_sent_because"]
    assert info["disabled_by_environment"] is None


def test_status_text_and_env_var(filled, monkeypatch) -> None:
    monkeypatch.setenv("TELEMETRY_DATA_DIR", str(filled))
    proc = subprocess.run(
        [sys.executable, "-m", "telemetry", "status"], capture_output=True, text=True, check=True
    )
    assert "queued:       3 events" in proc.stdout
    assert "cli-proj / cli-app 9.9" in proc.stdout
    assert "uploads:      not allowed: the first-run notice is not answered yet" in proc.stdout
    assert proc.stderr == ""


def test_events_json_prints_exactly_what_is_sent(filled, capsys) -> None:
    code, out = run(capsys, "--data-dir", str(filled), "events", "--json")
    lines = out.splitlines()
    assert code == 0 and lines == queued_json(filled)
    assert json.loads(lines[1])["event_properties"] == {"n": 1, "nested.a": "b"}
    code, out = run(capsys, "--data-dir", str(filled), "events", "--limit", "2")
    assert code == 0 and len(out.splitlines()) == 3 and "$identify" in out and "First" in out
    assert out.splitlines()[0].split() == ["ID", "TIME", "(UTC)", "EVENT", "PROPERTIES"]


def test_events_follow_prints_events_recorded_later(filled) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "telemetry", "--data-dir", str(filled), "events", "--json",
         "--follow", "--interval", "0.05"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        first = [json.loads(read_line(proc, 30))["event_type"] for _ in range(3)]
        assert first == ["$identify", "First", "Second"]
        with telemetry.create_client(
            "cli-proj", "cli-app", "9.9", "http://127.0.0.1:9", data_dir=filled, upload=False
        ) as app:
            later = app.track("Later", {"n": 3})
        assert json.loads(read_line(proc, 30))["insert_id"] == later
    finally:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=30)
    assert proc.returncode == 130


def test_export_jsonl_exactly_as_stored_and_csv(filled, capsys, tmp_path) -> None:
    target = tmp_path / "out.csv"
    code, _ = run(capsys, "--data-dir", str(filled), "export", "--format", "csv", "-o", str(target))
    assert code == 0
    rows = list(csv.DictReader(io.StringIO(target.read_text())))
    assert [r["event_type"] for r in rows] == ["$identify", "First", "Second"]
    assert json.loads(rows[2]["event_properties"]) == {"n": 2}
    _, out = run(capsys, "--data-dir", str(filled), "export", "--format", "jsonl")
    assert out.splitlines() == queued_json(filled)


def test_purge_empties_the_queue_and_counts(filled, capsys) -> None:
    _, out = run(capsys, "--data-dir", str(filled), "purge")
    assert "purged 3" in out
    info = json.loads(run(capsys, "--data-dir", str(filled), "status", "--json")[1])
    assert info["queue"]["events"] == 0 and info["counters"]["dropped_purged"] == 3


def test_flush_delivers_to_the_recorded_endpoint_once_the_notice_is_answered(
    data_dir, tmp_path, capsys
) -> None:
    url, stop = start_in_thread(tmp_path / "collector.db")
    try:
        with telemetry.create_client(
            "cli-proj", "cli-app", endpoint=url, data_dir=data_dir, upload=False
        ) as c:
            for i in range(30):
                c.track("Queued", {"i": i})
            c.mark_notice_answered()
        code, out = run(capsys, "--data-dir", str(data_dir), "flush", "--timeout", "20")
        assert code == 0, out
        assert "sent 31 events, 0 still queued" in out
        assert len(stored_rows(tmp_path / "collector.db")) == 31
    finally:
        stop()


def test_flush_explains_an_opt_in_app_whose_user_never_agreed(data_dir, capsys) -> None:
    with telemetry.create_client(
        "cli-proj", "cli-app", endpoint="http://127.0.0.1:9", data_dir=data_dir,
        upload=False, consent_policy="opt_in",
    ) as app:  # fmt: skip
        assert app.track("Ignored") is None
    code, out, err = run_err(capsys, "--data-dir", str(data_dir), "flush")
    assert (code, out) == (0, "")  # nothing was queued, so nothing stays queued
    assert "sent nothing: the app has not recorded anything with telemetry on yet" in err
    assert "0 events stay queued" in err
    _, out = run(capsys, "--data-dir", str(data_dir), "status")
    assert "consent:      not given (the app has recorded nothing yet" in out
    assert "under the opt_in policy" in out and "None" not in out


# ---------------------------------------------------------------------- query


def test_query_prints_rows_like_sqlite_utils(filled, capsys) -> None:
    sql = "select id, event_type from events order by id"
    code, out = run(capsys, "--data-dir", str(filled), "query", sql)
    assert code == 0
    assert out == (
        '[{"id": 1, "event_type": "$identify"},\n'
        ' {"id": 2, "event_type": "First"},\n'
        ' {"id": 3, "event_type": "Second"}]\n'
    )
    _, out = run(capsys, "--data-dir", str(filled), "query", sql, "--nl")
    assert [json.loads(line)["event_type"] for line in out.splitlines()] == [
        "$identify", "First", "Second",
    ]  # fmt: skip
    _, out = run(capsys, "--data-dir", str(filled), "query", sql, "--csv")
    assert out.splitlines() == ["id,event_type", "1,$identify", "2,First", "3,Second"]
    _, out = run(capsys, "--data-dir", str(filled), "query", sql, "--table")
    assert out.splitlines()[0].split() == ["id", "event_type"]
    assert out.splitlines()[1].startswith("----") and out.splitlines()[3].split() == ["2", "First"]
    _, out = run(capsys, "--data-dir", str(filled), "query", "select 1 where 0")
    assert out == "[]\n"


def test_query_named_parameters_and_blobs(filled, capsys) -> None:
    code, out = run(
        capsys, "--data-dir", str(filled), "query",
        "select count(*) as n from events where event_type = :t", "-p", "t", "First",
    )  # fmt: skip
    assert (code, json.loads(out)) == (0, [{"n": 1}])
    _, out = run(capsys, "--data-dir", str(filled), "query", "select x'00ff' as b")
    assert json.loads(out) == [{"b": {"$base64": True, "encoded": "AP8="}}]


@pytest.mark.parametrize(
    "sql",
    [
        "delete from events",
        "drop table events",
        "attach database '{dir}/other.db' as other",
        "pragma journal_mode=delete",
        "pragma user_version=7",
        "update state set value = '1'",
        "insert into counters(name, value) values ('x', 1) returning *",
        "create table t(x)",
        "vacuum",
        "select 1; delete from events",
    ],
)
def test_query_refuses_writes_and_changes_nothing(filled, capsys, sql) -> None:
    run(capsys, "--data-dir", str(filled), "query", "select 1")  # the CLI's own open is done
    before = dump(filled)
    code, out, err = run_err(capsys, "--data-dir", str(filled), "query", sql.format(dir=filled))
    assert code == 1 and out == ""
    assert err.startswith("telemetry: query refused") and err.count("\n") == 1, err
    assert "only one read-only statement may run" in err
    assert dump(filled) == before
    assert not (filled / "other.db").exists()


# ---------------------------------------------------------------------- catalogue


def test_catalogue_prints_what_the_app_declared(data_dir, tmp_path, capsys) -> None:
    spec = tmp_path / "events.toml"
    spec.write_text(
        '[events."Opened"]\ndescription = "The app opened."\n'
        '[events."Opened".properties]\nn = { type = "integer", description = "A count." }\n'
    )
    with telemetry.create_client(
        "cli-proj", "cli-app", data_dir=data_dir, upload=False, catalogue=spec
    ) as app:
        app.track("Opened", {"n": 1})
    code, out = run(capsys, "--data-dir", str(data_dir), "catalogue", "--json")
    declared = json.loads(out)
    assert code == 0 and "Opened" in json.dumps(declared)
    assert declared == telemetry.EventCatalogue.from_file(spec).to_dict()
    code, out = run(capsys, "--data-dir", str(data_dir), "catalogue")
    assert code == 0 and "Opened" in out
    code, out = run(capsys, "catalogue", "--file", str(spec))
    assert code == 0 and "Opened" in out


def test_catalogue_of_an_app_that_declared_none(filled, capsys) -> None:
    code, out = run(capsys, "--data-dir", str(filled), "catalogue")
    assert code == 0 and "declared no event catalogue" in out


# ---------------------------------------------------------------------- errors for the user


def test_missing_database_or_dir_is_a_clear_error(tmp_path, capsys, monkeypatch) -> None:
    code, out, err = run_err(capsys, "--data-dir", str(tmp_path / "nothing"), "status")
    assert (code, out) == (1, "")
    assert err == f"telemetry: no telemetry database in {tmp_path / 'nothing'}\n"
    assert not (tmp_path / "nothing").exists()
    monkeypatch.delenv("TELEMETRY_DATA_DIR", raising=False)
    code, out, err = run_err(capsys, "events")
    assert (
        code == 1
        and err.startswith("telemetry: say which app's database")
        and "\n" not in (err.rstrip("\n"))
    )


def test_an_unusable_database_is_one_line_on_stderr(data_dir, capsys) -> None:
    data_dir.mkdir(parents=True)
    (data_dir / "telemetry.db").write_bytes(b"this is not a SQLite database" * 100)
    for command in ("status", "events", "query"):
        args = ["--data-dir", str(data_dir), command] + (["select 1"] if command == "query" else [])
        code, out, err = run_err(capsys, *args)
        assert (code, out) == (1, ""), command
        assert err.startswith(f"telemetry: the telemetry database in {data_dir} is unusable")
        assert err.count("\n") == 1, err
        # The next command finds the database recreated, empty: start again with a bad one.
        (data_dir / "telemetry.db").write_bytes(b"this is not a SQLite database" * 100)
        for leftover in ("telemetry.db-wal", "telemetry.db-shm"):
            (data_dir / leftover).unlink(missing_ok=True)


def test_errors_in_a_subprocess_are_one_line_without_traceback(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "telemetry", "--data-dir", str(tmp_path / "none"), "flush"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 1 and proc.stdout == ""
    assert proc.stderr == f"telemetry: no telemetry database in {tmp_path / 'none'}\n"


# ---------------------------------------------------------------------- the collector command


def test_collector_command_runs_the_collector_with_its_options(tmp_path: Path) -> None:
    """`telemetry collector` is `python -m telemetry.collector`: its own flags pass through."""
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


BLOCKER = """
import importlib.abc, runpy, sys

class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {blocked!r}:
            raise ImportError(f"No module named {{name!r}}")
        return None

sys.meta_path.insert(0, Block())
sys.argv = ["telemetry", *{argv!r}]
try:
    runpy.run_module("telemetry", run_name="__main__", alter_sys=True)
except SystemExit as exc:
    code = exc.code
print("EXIT", code, file=sys.stderr)
"""


def test_collector_command_without_the_collector_extra(tmp_path: Path) -> None:
    script = BLOCKER.format(blocked={"starlette", "uvicorn"}, argv=["collector", "--port", "0"])
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, cwd=tmp_path
    )
    assert proc.stderr.splitlines()[0].startswith(
        "telemetry: the collector needs the 'collector' extra: pip install"
    )
    assert proc.stderr.splitlines()[-1] == "EXIT 1"


# ---------------------------------------------------------------------- start-up weight

HEAVY = ("httpx", "sqlite_utils", "sqlite3", "telemetry.store", "telemetry.uploader",
         "telemetry.client", "telemetry._store", "telemetry._delivery")  # fmt: skip


@pytest.mark.parametrize("argv", [["--help"], ["drives", "--json"], ["sign-url", "--help"]])
def test_help_and_drives_load_no_store_and_no_http_stack(argv: list[str]) -> None:
    script = textwrap.dedent(
        f"""
        import json, runpy, sys
        sys.argv = ["telemetry", *{argv!r}]
        try:
            runpy.run_module("telemetry", run_name="__main__", alter_sys=True)
        except SystemExit:
            pass
        heavy = {HEAVY!r}
        print(json.dumps(sorted(m for m in sys.modules if m.startswith(heavy))))
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    assert json.loads(proc.stdout.splitlines()[-1]) == []


def test_the_cli_module_imports_no_store_uploader_http_or_sqlite() -> None:
    """Each command is a few calls on the client: the CLI's modules import (anywhere, lazily
    included) neither the storage nor the delivery layer."""
    import telemetry._cli_data

    imported: set[str] = set()
    for module in (telemetry.cli, telemetry._cli_data):
        imported |= _imports_of(Path(module.__file__ or ""))
    forbidden = [m for m in imported if m.startswith(HEAVY) or m.startswith("telemetry.transport")]
    assert forbidden == []
    assert "telemetry.open_client" in imported


def _imports_of(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    imported: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module)
            imported.update(f"{node.module}.{alias.name}" for alias in node.names)
    return imported
