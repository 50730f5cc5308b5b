"""The per-process journal behind ``track()``: torn lines, orphans of dead processes,
exactly-once ingest across crashes, and opt-out discarding what was never copied."""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import telemetry
from telemetry._store import JOURNAL_DIR, JOURNAL_ORPHANS, JOURNAL_TORN_LINES, EventStore, _journal


def journals(data_dir: Path) -> list[Path]:
    return sorted((data_dir / JOURNAL_DIR).glob("*.journal"))


def crash_after_tracking(data_dir: Path, count: int) -> list[str]:
    """A child process tracks ``count`` events, prints their ids and dies without closing
    (``os._exit``: no housekeeping pass, no close)."""
    code = textwrap.dedent(
        f"""
        import os, sys, telemetry
        client = telemetry.create_client("j", "journal-app", data_dir={str(data_dir)!r},
                                         upload=False)
        for i in range({count}):
            print(client.track("Crash", {{"i": i}}), flush=True)
        os._exit(0)
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return out.stdout.split()


def test_track_appends_to_a_journal_and_reads_see_it_at_once(data_dir: Path) -> None:
    with telemetry.create_client("j", "journal-app", data_dir=data_dir, upload=False) as client:
        ids = [client.track("Seen", {"i": i}) for i in range(5)]
        (journal,) = journals(data_dir)
        assert journal.stat().st_size > 0  # on disk before any copy into SQLite
        assert [e.insert_id for e in client._store.iter_events()][-5:] == ids
    assert journals(data_dir) == []  # copied and removed at close


def _line(insert_id: str, name: str) -> bytes:
    payload = {"event_type": name, "insert_id": insert_id, "time": 1}
    return _journal.encode_line(insert_id, 1, json.dumps(name), json.dumps(payload))


def test_torn_and_damaged_lines_are_skipped(data_dir: Path) -> None:
    good = _line("id-1", "A")
    torn = _line("id-2", "B")[:-9] + b"\n"  # cut by a power failure
    zeros = b"\0" * 40 + b"\n"  # a block the file system never wrote
    no_id = _line("", "E")  # not one of our events
    not_json = b'id-3\t1\t"C"\t{this is not json}\n'  # passes the split, SQLite refuses it
    after = _line("id-4", "D\twith a tab")  # names are JSON in the line: tabs are safe
    directory = data_dir / JOURNAL_DIR
    directory.mkdir(parents=True)
    (directory / "deadbeef.journal").write_bytes(good + torn + zeros + no_id + not_json + after)
    with EventStore(data_dir) as store:
        events = list(store.iter_events())
        assert [(e.insert_id, e.event_type, e.time) for e in events] == [
            ("id-1", "A", 1),
            ("id-4", "D\twith a tab", 1),
        ]
        assert events[0].size == len(
            json.dumps({"event_type": "A", "insert_id": "id-1", "time": 1})
        )
        assert store.counters()[JOURNAL_TORN_LINES] == 3  # the cut line, the zeros, no id
        assert store.counters()[JOURNAL_ORPHANS] == 1
    assert not (directory / "deadbeef.journal").exists()


def test_a_dead_process_journal_is_ingested_once(data_dir: Path) -> None:
    ids = crash_after_tracking(data_dir, 25)
    assert len(journals(data_dir)) == 1  # left behind by the crash
    for _ in range(3):  # every later open sees each event exactly once
        with EventStore(data_dir) as store:
            stored = [e.insert_id for e in store.iter_events() if e.event_type == "Crash"]
        assert stored == ids
    assert journals(data_dir) == []


def test_a_crash_between_copy_and_removal_does_not_resend(data_dir: Path, tmp_path: Path) -> None:
    """The copy and the offset commit together: a journal found again after its events were
    sent and deleted is not copied a second time."""
    ids = crash_after_tracking(data_dir, 10)
    (orphan,) = journals(data_dir)
    saved = tmp_path / orphan.name
    shutil.copy(orphan, saved)
    with EventStore(data_dir) as store:
        sent = [e.id for e in store.iter_events()]
        assert [e.insert_id for e in store.iter_events() if e.event_type == "Crash"] == ids
        store.ack(sent, 200, b"")  # delivered
    # As if the process died after committing, before removing the file:
    shutil.copy(saved, orphan)
    with sqlite3.connect(data_dir / "telemetry.db") as conn:
        conn.execute(
            "INSERT INTO journal_progress(file, offset) VALUES (?, ?)",
            (orphan.name, orphan.stat().st_size),
        )
    with EventStore(data_dir) as store:
        assert store.stats().events == 0
    assert journals(data_dir) == []


def test_a_live_process_journal_is_left_alone(data_dir: Path) -> None:
    with telemetry.create_client("j", "journal-app", data_dir=data_dir, upload=False) as client:
        client.track("Mine")
        (live,) = journals(data_dir)
        with EventStore(data_dir) as other:  # another process's view, same rules
            other.ingest_orphans()
        assert live.exists()


def test_opt_out_discards_events_not_yet_copied(data_dir: Path) -> None:
    with telemetry.create_client("j", "journal-app", data_dir=data_dir, upload=False) as client:
        for i in range(50):
            client.track("Private", {"i": i})
        client.set_consent(False)
        assert all(p.stat().st_size == 0 for p in journals(data_dir))
    with EventStore(data_dir) as store:
        assert store.stats().events == 0
