"""`telemetry errors`: the error reports waiting and the last sent, as a table (golden outputs,
volatile parts normalised) and as JSON lines holding each report exactly as it is or was sent.

Real clients write real databases; the sent reports went to a
:class:`~telemetry.testing.RecordingDestination` (what it received is compared) or to a real
collector on 127.0.0.1."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import telemetry
from telemetry.cli import main
from telemetry.testing import RecordingDestination
from tests._fixtures import _no_environment_veto  # noqa: F401  (autouse fixture)
from tests.collector_process import start_in_thread
from tests.core.test_cli_golden import normalise
from tests.delivery._support import FAST

PROJECT, APP, VERSION = "errors-proj", "errors-app", "4.2"


@pytest.fixture(autouse=True)
def _columns(monkeypatch: pytest.MonkeyPatch) -> None:
    """A terminal 100 columns wide, whatever runs the tests."""
    monkeypatch.setenv("COLUMNS", "100")


def run(capsys: pytest.CaptureFixture[str], data_dir: Path, *args: str) -> tuple[int, str, str]:
    code = main(["--data-dir", str(data_dir), *args])
    captured = capsys.readouterr()
    return code, normalise(captured.out, data_dir), normalise(captured.err, data_dir)


def raw(capsys: pytest.CaptureFixture[str], data_dir: Path, *args: str) -> tuple[int, str, str]:
    code = main(["--data-dir", str(data_dir), *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def fail(message: str) -> None:
    raise ValueError(message)


def fail_elsewhere(message: str) -> None:
    raise ValueError(message)  # another place: another fingerprint, another report


def capture(app: telemetry.Client, message: str, times: int = 1, where=fail) -> None:
    for _ in range(times):
        try:
            where(message)
        except ValueError as exc:
            fingerprint = app.capture_exception(exc)
        assert fingerprint is not None


def client(data_dir: Path, **kwargs: object) -> telemetry.Client:
    options: dict[str, object] = {"upload": False, **kwargs}
    return telemetry.create_client(
        PROJECT, APP, VERSION, "http://127.0.0.1:9", data_dir=data_dir, **options
    )


def sent_and_waiting(data_dir: Path) -> RecordingDestination:
    """The user clicked OK; one warning was sent (to a RecordingDestination); later, with
    uploads off, an error happened 3 times and another once, both waiting."""
    destination = RecordingDestination()
    with client(data_dir, upload=True, destination=destination) as app:
        app.mark_notice_answered()
        app.capture_message("disk almost full", level="warning")
        assert app.flush(15)
    with client(data_dir) as app:
        capture(app, "checksum mismatch: " + "é" * 120, where=fail_elsewhere)
        capture(app, "bad block at sector 2048", times=3)
    return destination


ERRORS = """\
LEVEL    COUNT  LAST SEEN (UTC)      STATUS    ERROR
error        3  <TIME>  queued    ValueError: bad block at sector 2048
error        1  <TIME>  queued    ValueError: checksum mismatch: ééééééééééééééééééééé…
warning      1  <TIME>  sent 200  disk almost full
2 reports waiting to be sent (4 occurrences), 1 of the last sent shown.
"""


def test_the_reports_waiting_and_sent_in_aligned_columns(
    data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sent_and_waiting(data_dir)
    assert run(capsys, data_dir, "errors") == (0, ERRORS, "")
    _, out, _ = raw(capsys, data_dir, "errors")
    assert max(len(line) for line in out.splitlines()) <= 100


def test_json_lines_hold_each_report_exactly_as_sent(
    data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    destination = sent_and_waiting(data_dir)
    code, out, err = raw(capsys, data_dir, "errors", "--json")
    assert (code, err) == (0, "")
    lines = out.splitlines()
    entries = [json.loads(line) for line in lines]
    assert [(e["status"], e["http_status"]) for e in entries] == [
        ("queued", None),
        ("queued", None),
        ("sent", 200),
    ]
    with client(data_dir) as app:
        waiting = app.queued_reports()
    assert sorted((e["report"] for e in entries[:2]), key=lambda r: r["event_id"]) == sorted(
        waiting, key=lambda r: r["event_id"]
    )
    assert [e["report"]["contexts"]["telemetry"]["count"] for e in entries[:2]] == [3, 1]
    # The sent report is the very text the destination received, byte for byte.
    [received] = destination.reports
    sent_text = json.dumps(received, ensure_ascii=False, separators=(",", ":"))
    assert lines[2].endswith(',"report":' + sent_text + "}")
    assert isinstance(entries[2]["sent_at"], int)


def test_limit_keeps_the_newest_sent_reports(
    data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    destination = RecordingDestination()
    with client(data_dir, upload=True, destination=destination) as app:
        app.mark_notice_answered()
        for n in range(3):
            app.capture_message(f"message {n}")
            assert app.flush(15)
    code, out, _ = raw(capsys, data_dir, "errors", "--json", "--limit", "2")
    assert code == 0
    assert [json.loads(line)["report"]["message"]["formatted"] for line in out.splitlines()] == [
        "message 2",
        "message 1",
    ]


def test_a_report_sent_to_the_collector_is_listed_as_sent(
    data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url, stop = start_in_thread(tmp_path / "collector.db")
    try:
        with telemetry.create_client(
            PROJECT, APP, VERSION, url, data_dir=data_dir, upload_policy=FAST
        ) as app:
            # Both occurrences wait (nothing is sent before the notice is answered), so they
            # leave as one report counted twice.
            capture(app, "write failed", times=2)
            app.mark_notice_answered()
            assert app.flush(30)
    finally:
        stop()
    assert run(capsys, data_dir, "errors") == (
        0,
        "LEVEL  COUNT  LAST SEEN (UTC)      STATUS    ERROR\n"
        "error      2  <TIME>  sent 200  ValueError: write failed\n"
        "0 reports waiting to be sent, 1 of the last sent shown.\n",
        "",
    )


def test_reports_waiting_before_the_notice_is_answered_say_why_they_are_not_sent(
    data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with client(data_dir) as app:
        app.mark_notice_shown()
        capture(app, "no such drive")
    note = "the reports waiting are not sent: the first-run notice is not answered yet (shown)"
    code, out, err = run(capsys, data_dir, "errors")
    assert (code, err) == (0, "")
    assert out.splitlines()[-1] == note[0].upper() + note[1:] + "."
    code, out, err = run(capsys, data_dir, "errors", "--json")
    assert (code, err) == (0, f"telemetry: {note}\n")
    assert [json.loads(line)["status"] for line in out.splitlines()] == ["queued"]


def test_nothing_said_in_words(data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with client(data_dir) as app:
        app.track("Started")
    assert run(capsys, data_dir, "errors") == (
        0,
        "No error reports are waiting or were sent.\n",
        "",
    )
    # JSON lines stay JSON lines (none); the words go to standard error.
    assert run(capsys, data_dir, "errors", "--json") == (
        0,
        "",
        "telemetry: no error reports are waiting or were sent\n",
    )


def test_under_the_opt_in_policy_before_the_user_agrees(
    data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with client(data_dir, consent_policy="opt_in") as app:
        try:
            fail("not kept")
        except ValueError as exc:
            kept = app.capture_exception(exc)
        assert kept is None  # nothing is kept before the user agrees
    # Such an app stores nothing, its policy neither: the command says what `events` says.
    assert run(capsys, data_dir, "errors") == (
        0,
        "No error reports are waiting or were sent.\n",
        "",
    )
    assert run(capsys, data_dir, "events")[:2] == (0, "No events are queued.\n")


def test_an_opt_out_leaves_nothing_to_list(
    data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with client(data_dir) as app:
        capture(app, "kept until the opt-out")
        app.set_consent(False)
    assert run(capsys, data_dir, "errors") == (
        0,
        "No error reports are waiting or were sent: you turned telemetry off, so nothing is"
        " recorded.\n",
        "",
    )


@pytest.mark.parametrize("variable", ["DO_NOT_TRACK", "TELEMETRY_DISABLED"])
def test_the_environment_veto_refuses_to_read_them(
    data_dir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, variable
) -> None:
    with client(data_dir) as app:
        capture(app, "kept")
    monkeypatch.setenv(variable, "1")
    for args in (("errors",), ("errors", "--json")):
        assert run(capsys, data_dir, *args) == (
            1,
            "",
            f"telemetry: telemetry is disabled by {variable} in this environment: the reports"
            f" were not read, nothing was written or sent (unset {variable} to use this"
            " command)\n",
        )


def test_control_characters_of_a_report_never_reach_the_terminal(
    data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with client(data_dir) as app:
        capture(app, "red \x1b[31malert\x1b[0m\nsecond line\x07")
    _, out, _ = raw(capsys, data_dir, "errors")
    assert "\x1b" not in out and "\x07" not in out
    assert "ValueError: red \ufffd[31malert\ufffd[0m second line\ufffd" in out
    # JSON lines escape them (the report itself is unchanged).
    _, out, _ = raw(capsys, data_dir, "errors", "--json")
    assert "\x1b" not in out
    value = json.loads(out)["report"]["exception"]["values"][-1]["value"]
    assert value == "red \x1b[31malert\x1b[0m\nsecond line\x07"
