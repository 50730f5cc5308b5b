"""``telemetry collector errors``: the stored error report groups, golden output (table, JSON,
empty), through the ``telemetry`` command line as a user types it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from telemetry.cli import main
from telemetry.collector import EventStore
from telemetry.collector._reports import parse_report

from ._reports_support import SENTRY_ID, SENTRY_KEY, sentry_event
from ._support import PROJECT


def config_file(tmp_path: Path) -> Path:
    path = tmp_path / "collector.toml"
    path.write_text(
        f'[projects.{PROJECT}]\nsentry_project_id = {SENTRY_ID}\nsentry_key = "{SENTRY_KEY}"\n'
        "[projects.other]\n"
    )
    return path


def fill(database: Path) -> None:
    store = EventStore(database)
    try:
        for name, fields in [
            (
                "w1",
                {
                    "count": 1000,
                    "release": "demo@1.0.0",
                    "first_seen": "2026-01-01T08:00:00Z",
                    "last_seen": "2026-01-03T09:30:00Z",
                },
            ),
            (
                "w2",
                {
                    "count": 500,
                    "release": "demo@1.1.0",
                    "first_seen": "2026-01-02T08:00:00Z",
                    "last_seen": "2026-01-04T10:00:00Z",
                    "value": "No space left on device:\n\x1b[31m/dev/sdb\x1b[0m",
                },
            ),
            (
                "v1",
                {
                    "kind": "ChecksumMismatch",
                    "value": "image differs at block 12",
                    "function": "verify",
                    "release": "demo@1.1.0",
                },
            ),
        ]:
            event = sentry_event(name, **fields)
            report = parse_report(
                PROJECT, json.dumps(event).encode(), envelope_event_id=None, received_at=1
            )
            store.insert_report(report)
        odd = sentry_event("o1", kind="KeyError", value="'x'", timestamp="2025-12-31T23:00:00Z")
        store.insert_report(
            parse_report("other", json.dumps(odd).encode(), envelope_event_id=None, received_at=1)
        )
    finally:
        store.close()


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["collector", "errors", *argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_no_database_and_an_empty_one_say_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    database = tmp_path / "none.db"
    config = str(config_file(tmp_path))
    assert run(capsys, "--database", str(database), "--config", config) == (
        0,
        "No error reports stored.\n",
        "",
    )
    assert not database.exists()  # listing creates no database
    EventStore(tmp_path / "empty.db").close()
    code, out, _ = run(
        capsys, "--database", str(tmp_path / "empty.db"), "--config", config, "--project", "7"
    )
    assert (code, out) == (0, f"No error reports stored for project '{PROJECT}'.\n")
    code, out, _ = run(capsys, "--database", str(tmp_path / "empty.db"), "--json")
    assert (code, out) == (0, "[]\n")


def test_groups_golden_table(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    database = tmp_path / "c.db"
    fill(database)
    code, out, err = run(
        capsys, "--database", str(database), "--config", str(config_file(tmp_path))
    )
    assert (code, err) == (0, "")
    # The fingerprints are pinned: a change of the grouping would split existing groups.
    fw, fv, fo = "c509688a08d8", "66957de0f86e", "e2614e89c04c"
    expected = (
        "PROJECT      FINGERPRINT   COUNT  REPORTS  FIRST SEEN            LAST SEEN             "
        "VERSIONS                ERROR\n"
        f"etcher-test  {fw}  1,500        2  2026-01-01 08:00:00Z  2026-01-04 10:00:00Z  "
        "demo@1.0.0, demo@1.1.0  ValueError: No space left on device: �[31m/dev/sdb�[0m\n"
        f"etcher-test  {fv}      1        1  2026-01-02 03:04:05Z  2026-01-02 03:04:05Z  "
        "demo@1.1.0              ChecksumMismatch: image differs at block 12\n"
        f"other        {fo}      1        1  2025-12-31 23:00:00Z  2025-12-31 23:00:00Z  "
        "demo@1.0.0              KeyError: 'x'\n"
        "3 group(s), 1,502 occurrence(s).\n"
    )
    assert out == expected


def test_groups_golden_json_for_one_project(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    database = tmp_path / "c.db"
    fill(database)
    code, out, _ = run(
        capsys,
        "--database",
        str(database),
        "--config",
        str(config_file(tmp_path)),
        "--project",
        "other",
        "--json",
    )
    assert code == 0
    from telemetry.collector._reports import fingerprint

    assert json.loads(out) == [
        {
            "project": "other",
            "fingerprint": fingerprint(sentry_event("o1", kind="KeyError")),
            "count": 1,
            "reports": 1,
            "first_seen": "2025-12-31T23:00:00.000Z",
            "last_seen": "2025-12-31T23:00:00.000Z",
            "releases": ["demo@1.0.0"],
            "exception_type": "KeyError",
            "exception_value": "'x'",
        }
    ]


def test_an_unknown_project_is_an_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(
        capsys,
        "--database",
        str(tmp_path / "c.db"),
        "--config",
        str(config_file(tmp_path)),
        "--project",
        "nope",
    )
    assert code != 0 and out == ""
    assert "unknown project 'nope'" in err
