"""Golden outputs of the `telemetry` command: whole outputs compared, with the volatile parts
(device ids, paths, times, ports, byte counts that follow the host's OS name) normalised.

Real databases written by a real client; the uploads go to a real collector on 127.0.0.1 that
is stopped before `status` runs (the last upload's destination must not be a live port's)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

import telemetry
from telemetry.cli import main
from tests._fixtures import _no_environment_veto  # noqa: F401  (autouse fixture)
from tests.collector_process import start_in_thread, stored_rows
from tests.delivery._support import FAST
from tests.drives import _umockdev as um

PROJECT, APP, VERSION = "golden-proj", "golden-app", "2.1"


def normalise(text: str, *dirs: Path) -> str:
    for directory in dirs:
        text = text.replace(str(directory), "<DIR>")
    text = re.sub(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", "<ID>", text)
    text = re.sub(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", "<TIME>", text)
    text = re.sub(r"127\.0\.0\.1:\d+", "127.0.0.1:<PORT>", text)
    return re.sub(r"\d[\d,]* bytes", "<N> bytes", text)


def run(
    capsys: pytest.CaptureFixture[str], data_dir: Path, *args: str, dirs: tuple[Path, ...] = ()
) -> tuple[int, str, str]:
    code = main(["--data-dir", str(data_dir), *args])
    captured = capsys.readouterr()
    every = (data_dir, *dirs)
    return code, normalise(captured.out, *every), normalise(captured.err, *every)


@pytest.fixture(autouse=True)
def _columns(monkeypatch: pytest.MonkeyPatch) -> None:
    """A terminal 100 columns wide, whatever runs the tests."""
    monkeypatch.setenv("COLUMNS", "100")


def record(data_dir: Path, endpoint: str = "http://127.0.0.1:9", **kwargs: object) -> None:
    """The app runs once (opt_out, no upload): two events and its $identify are queued."""
    with telemetry.create_client(
        PROJECT, APP, VERSION, endpoint, data_dir=data_dir, upload=False, **kwargs
    ) as app:
        app.track("Started", {"mode": "fresh"})
        app.track("Opened file", {"kind": "image", "size": 1024})


@pytest.fixture
def uploaded(data_dir: Path, tmp_path: Path) -> tuple[Path, str]:
    """The app ran with a collector that has exited since: the user clicked OK in the
    notice, 3 events went to the collector, then the collector stopped. Yields the data dir
    and the URL they went to."""
    url, stop = start_in_thread(tmp_path / "collector.db")
    try:
        with telemetry.create_client(
            PROJECT, APP, VERSION, url, data_dir=data_dir, upload_policy=FAST
        ) as app:
            app.mark_notice_shown()
            app.track("Started", {"mode": "fresh"})
            app.track("Opened file", {"kind": "image"})
            app.mark_notice_answered()  # the user clicked OK
            assert app.flush(30)
        assert len(stored_rows(tmp_path / "collector.db")) == 3
    finally:
        stop()
    return data_dir, url


# ---------------------------------------------------------------------- status


STATUS_FRESH = """\
app:          golden-proj / golden-app 2.1
database:     <DIR>/telemetry.db
consent:      on, not sending yet (first-run notice not shown yet; opt-out policy)
uploads:      not allowed: the first-run notice is not answered yet (not shown yet)
device id:    <ID>
user id:      not set
queued:       3 events, <N> bytes (oldest <TIME> UTC)
deletions:    none waiting
last upload:  none yet
endpoint:     http://127.0.0.1:<PORT>/amplitude/2/httpapi (set by the app when it last ran)
counters:     none
"""


def test_status_of_a_fresh_install(data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    record(data_dir)
    assert run(capsys, data_dir, "status") == (0, STATUS_FRESH, "")


STATUS_ANSWERED = """\
app:          golden-proj / golden-app 2.1
database:     <DIR>/telemetry.db
consent:      on (notice answered, opt-out policy)
uploads:      allowed
device id:    <ID>
user id:      not set
queued:       no events
deletions:    none waiting
last upload:  <TIME> UTC to http://127.0.0.1:<PORT>/amplitude/2/httpapi (200: 3 events delivered)
counters:     sent_events=3, upload_2xx=1, upload_requests=1
"""


def test_status_after_the_user_clicked_ok_and_the_collector_exited(
    uploaded: tuple[Path, str], capsys: pytest.CaptureFixture[str]
) -> None:
    """Consent as the user answered it (not `unknown`), and where the last upload went
    instead of the port of whichever collector the app was last pointed at."""
    data_dir, url = uploaded
    assert run(capsys, data_dir, "status") == (0, STATUS_ANSWERED, "")
    info = json.loads(run(capsys, data_dir, "status", "--json")[1])
    assert info["consent_summary"] == "on (notice answered, opt-out policy)"
    assert info["upload"]["last_success_url"] == "http://127.0.0.1:<PORT>/amplitude/2/httpapi"
    # The app is later pointed at another collector: both are said, each for what it is.
    record(data_dir, "http://127.0.0.1:7")
    _, out, _ = run(capsys, data_dir, "status")
    assert out.splitlines()[8:10] == [
        "last upload:  <TIME> UTC to http://127.0.0.1:<PORT>/amplitude/2/httpapi"
        " (200: 3 events delivered)",
        "endpoint:     http://127.0.0.1:<PORT>/amplitude/2/httpapi (set by the app when it"
        " last ran)",
    ]
    assert json.loads(main_json(capsys, data_dir))["upload"]["last_success_url"].startswith(url)


def main_json(capsys: pytest.CaptureFixture[str], data_dir: Path) -> str:
    main(["--data-dir", str(data_dir), "status", "--json"])
    return capsys.readouterr().out


STATUS_OPTED_OUT = """\
app:          not stored (the app keeps nothing about itself while telemetry is off)
database:     <DIR>/telemetry.db
consent:      off (you turned it off)
uploads:      not allowed: the user turned telemetry off
device id:    none — telemetry is off
user id:      not set
queued:       no events
deletions:    none waiting
last upload:  <TIME> UTC to http://127.0.0.1:<PORT>/amplitude/deletion (200: deletion request delivered)
counters:     deletion_request_attempts=1, deletion_requests_sent=1
"""  # noqa: E501


def test_status_after_an_opt_out(
    uploaded: tuple[Path, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data_dir, _ = uploaded
    url, stop = start_in_thread(tmp_path / "collector.db")
    try:
        with telemetry.create_client(
            PROJECT, APP, VERSION, url, data_dir=data_dir, upload_policy=FAST
        ) as app:
            app.set_consent(False)
            deadline = time.monotonic() + 30
            while app.status()["deletion_requests"] and time.monotonic() < deadline:
                time.sleep(0.02)  # waits for the state asserted below, bounded
            assert app.status()["deletion_requests"] == 0
    finally:
        stop()
    code, out, err = run(capsys, data_dir, "status")
    assert (code, out, err) == (0, STATUS_OPTED_OUT, "")
    assert "None" not in out


STATUS_DNT = """\
app:          golden-proj / golden-app 2.1
data dir:     <DIR>
consent:      off (DO_NOT_TRACK is set)
disabled:     by DO_NOT_TRACK in this environment: nothing is recorded, written or sent, and the queue was not read
your choice:  on, not sending yet (first-run notice not shown yet; opt-out policy); it applies again once DO_NOT_TRACK is unset
"""  # noqa: E501


def test_status_under_do_not_track(
    data_dir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    record(data_dir)
    monkeypatch.setenv("DO_NOT_TRACK", "1")
    assert run(capsys, data_dir, "status") == (0, STATUS_DNT, "")


# ---------------------------------------------------------------------- empty results


def test_empty_events_said_in_words(
    uploaded: tuple[Path, str], capsys: pytest.CaptureFixture[str]
) -> None:
    data_dir, _ = uploaded
    assert run(capsys, data_dir, "events") == (0, "No events are queued.\n", "")
    # JSON lines stay JSON lines (none); the words go to standard error.
    assert run(capsys, data_dir, "events", "--json") == (
        0,
        "",
        "telemetry: no events are queued\n",
    )


def test_empty_export_said_in_words(
    uploaded: tuple[Path, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data_dir, _ = uploaded
    assert run(capsys, data_dir, "export") == (
        0,
        "",
        "telemetry: 0 events exported: no events are queued\n",
    )
    target = tmp_path / "out.jsonl"
    assert run(capsys, data_dir, "export", "-o", str(target), dirs=(tmp_path,)) == (
        0,
        "",
        "telemetry: 0 events written to <DIR>/out.jsonl (no events are queued; the file is"
        " empty)\n",
    )
    assert target.read_bytes() == b""
    target = tmp_path / "out.csv"
    code, out, err = run(
        capsys, data_dir, "export", "--format", "csv", "-o", str(target), dirs=(tmp_path,)
    )
    assert (code, out) == (0, "")
    assert err == (
        "telemetry: 0 events written to <DIR>/out.csv (no events are queued; the file has"
        " the header only)\n"
    )
    assert target.read_text().count("\n") == 1


def test_export_to_a_file_says_how_many(data_dir: Path, tmp_path: Path, capsys) -> None:
    record(data_dir)
    target = tmp_path / "out.jsonl"
    assert run(capsys, data_dir, "export", "-o", str(target), dirs=(tmp_path,)) == (
        0,
        "",
        "telemetry: 3 events written to <DIR>/out.jsonl\n",
    )
    assert len(target.read_text().splitlines()) == 3


def test_bad_export_targets_app_names_and_limits_are_one_line_errors(
    data_dir: Path, tmp_path: Path, capsys
) -> None:
    """Found by an outside audit: these printed a traceback (or, for a negative limit, "No
    events are queued." while events were)."""
    record(data_dir)
    missing = tmp_path / "no-such-dir" / "out.jsonl"
    expected = (
        "telemetry: cannot write the export file (No such file or directory); "
        "nothing was exported\n"
    )
    assert run(capsys, data_dir, "export", "-o", str(missing)) == (1, "", expected)
    folder = run(capsys, data_dir, "export", "-o", str(tmp_path))
    assert folder == (
        1,
        "",
        "telemetry: cannot write the export file (Is a directory); nothing was exported\n",
    )
    code = main(["--app", "../../x", "status"])
    err = capsys.readouterr().err
    assert code == 1 and err.startswith("telemetry: --app must be the app's component name")
    assert err.count("\n") == 1
    for command in ("events", "sent", "errors"):
        with pytest.raises(SystemExit) as exit_info:
            main(["--data-dir", str(data_dir), command, "--limit", "-1"])
        assert exit_info.value.code == 2
        assert "--limit: must be 0 or more, got -1" in capsys.readouterr().err


def test_empty_sent_log_and_query_said_in_words(data_dir: Path, capsys) -> None:
    record(data_dir)
    assert run(capsys, data_dir, "sent") == (
        0,
        "Nothing sent yet (or the log was erased when telemetry was turned off).\n",
        "",
    )
    assert run(capsys, data_dir, "sent", "--json") == (0, "[]\n", "")
    none = "select * from events where 0"
    assert run(capsys, data_dir, "query", none) == (0, "[]\n", "")
    assert run(capsys, data_dir, "query", none, "--table") == (0, "(no rows)\n", "")
    for shape in ("--csv", "--tsv", "--nl"):
        assert run(capsys, data_dir, "query", none, shape) == (
            0,
            "",
            "telemetry: the query returned no rows\n",
        )


SENT = """\
ID  SENT AT (UTC)        STATUS  EVENTS
 1  <TIME>     200       3
The last upload went to http://127.0.0.1:<PORT>/amplitude/2/httpapi.
"""


def test_sent_log(uploaded: tuple[Path, str], capsys: pytest.CaptureFixture[str]) -> None:
    data_dir, _ = uploaded
    assert run(capsys, data_dir, "sent") == (0, SENT, "")


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        ("cli-json", ["[]"]),
        ("cli-table", "No drives found. (--all shows every disk)\n"),
    ],
)
def test_no_drives_said_in_words(tmp_path: Path, mode: str, expected: object) -> None:
    """A machine whose only disk is not a flash target (umockdev: a SATA SSD)."""
    found = um.run_listing(["sata-ssd.umockdev"], tmp_path, procfs="empty", mode=mode)
    if mode == "cli-json":
        assert found == {"status": 0, "lines": expected}
    else:
        assert found == expected


def test_drives_json_with_nothing_found_prints_an_empty_array(tmp_path: Path) -> None:
    """`telemetry drives --json` itself, in a process: the empty result is valid JSON."""
    found = um.run_listing(["sata-ssd.umockdev"], tmp_path, procfs="empty", mode="cli-json")
    assert json.loads("\n".join(found["lines"])) == []


# ---------------------------------------------------------------------- plain events

EVENTS_80 = """\
    ID  TIME (UTC)           EVENT         PROPERTIES
     1  <TIME>  $identify     {"$set": {"AnalyticsClientVersion": …
     2  <TIME>  Started       {"mode": "fresh"}
     3  <TIME>  A long even…  {"note": "éééééééééééééééééééééééééé…
     4  <TIME>  宽字符事件    {"名前": "日本語日本語日本語日本語日…
"""


def test_plain_events_align_and_cut_with_an_ellipsis(
    data_dir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    with telemetry.create_client(
        PROJECT, APP, VERSION, "http://127.0.0.1:9", data_dir=data_dir, upload=False
    ) as app:
        app.track("Started", {"mode": "fresh"})
        app.track("A long event type, longer than the column", {"note": "é" * 200})
        app.track("宽字符事件", {"名前": "日本語" * 30})
    monkeypatch.setenv("COLUMNS", "80")
    code, out, err = run(capsys, data_dir, "events")
    assert (code, out, err) == (0, EVENTS_80, "")
    raw = main_events(capsys, data_dir)
    widths = {cells(line) for line in raw.splitlines()[1:]}
    assert max(widths) <= 80, raw


def main_events(capsys: pytest.CaptureFixture[str], data_dir: Path) -> str:
    main(["--data-dir", str(data_dir), "events"])
    return capsys.readouterr().out


def cells(text: str) -> int:
    from telemetry._cli_text import cells as measure

    return measure(text)


def test_plain_events_when_not_a_terminal_use_a_default_width(data_dir: Path) -> None:
    """Piped, without COLUMNS: 120 columns, every line within them."""
    with telemetry.create_client(
        PROJECT, APP, VERSION, "http://127.0.0.1:9", data_dir=data_dir, upload=False
    ) as app:
        app.track("Long", {"text": "x" * 500})
    env = {k: v for k, v in __import__("os").environ.items() if k not in ("COLUMNS", "LINES")}
    proc = subprocess.run(
        [sys.executable, "-m", "telemetry", "--data-dir", str(data_dir), "events"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=True,
    )
    lines = proc.stdout.splitlines()
    assert len(lines) == 3 and lines[-1].endswith("…")
    assert max(len(line) for line in lines) == 120
