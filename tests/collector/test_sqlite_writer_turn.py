"""The write turn between collector processes on one SQLite file: exclusive across processes,
released by the kernel when its holder is killed, and the stores of two processes writing one
file through it lose nothing."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import pytest

from telemetry.collector import EventStore, StorageUnavailable
from telemetry.collector._sqlite_writer_turn import WriterTurn, writer_turn_path
from telemetry.collector._validation import parse_batch

from ._support import batch, event

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="flock is POSIX")

_HOLDER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from telemetry.collector._sqlite_writer_turn import WriterTurn
    turn = WriterTurn(Path(sys.argv[1]), timeout=30)
    with turn.taken():
        print("held", flush=True)
        sys.stdin.readline()
    print("released", flush=True)
    sys.stdin.readline()
    """
)


@contextmanager
def holder(database: Path) -> Iterator[subprocess.Popen[str]]:
    """Another process holding the turn of ``database`` until a line is written to it."""
    proc = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, str(database)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "held"
        yield proc
    finally:
        proc.kill()
        proc.wait(30)


def test_the_turn_is_exclusive_between_processes(tmp_path: Path) -> None:
    database = tmp_path / "c.db"
    mine = WriterTurn(database, timeout=0)
    with holder(database) as other:
        assert writer_turn_path(database).exists()
        with mine.taken():
            assert not mine.holding  # held elsewhere: not taken (SQLite's own lock decides)
        assert other.stdin is not None and other.stdout is not None
        other.stdin.write("\n")
        other.stdin.flush()
        assert other.stdout.readline().strip() == "released"
        patient = WriterTurn(database, timeout=30)
        with patient.taken():
            assert patient.holding
        patient.close()
    mine.close()


def test_a_killed_holder_leaves_the_turn_free(tmp_path: Path) -> None:
    database = tmp_path / "c.db"
    with holder(database) as other:
        os.kill(other.pid, signal.SIGKILL)
        other.wait(30)
        turn = WriterTurn(database, timeout=30)
        with turn.taken():
            assert turn.holding
        turn.close()


def test_two_processes_storing_into_one_file_through_the_turn_lose_nothing(
    tmp_path: Path,
) -> None:
    database = tmp_path / "c.db"
    EventStore(database).close()
    script = textwrap.dedent(
        """
        import json, sys
        from telemetry.collector import EventStore, StorageUnavailable
        from telemetry.collector._validation import parse_batch
        store = EventStore(sys.argv[1])
        for b in range(40):
            events = [{"event_type": "Child", "device_id": "device-child-1",
                       "insert_id": f"child-{b}-{i}", "time": 1700000000000 + i}
                      for i in range(50)]
            store.insert_batch(parse_batch(json.dumps({"api_key": "p", "events": events}).encode()))
        store.close()
        """
    )
    child = subprocess.Popen([sys.executable, "-c", script, str(database)])
    store = EventStore(database)
    try:
        with ThreadPoolExecutor(2) as pool:
            futures = []
            for b in range(40):
                events = [event(b * 50 + i, insert_id=f"parent-{b}-{i}") for i in range(50)]
                body = json.dumps(batch(events)).encode()
                futures.append(pool.submit(store.insert_batch, parse_batch(body)))
            assert sum(f.result(120).inserted for f in futures) == 40 * 50
        assert child.wait(120) == 0
        assert store.count() == 2 * 40 * 50
    finally:
        store.close()


def test_a_database_that_cannot_be_opened_leaves_no_lock_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(StorageUnavailable, match="WAL"):
        EventStore(":memory:")  # SQLite opens that name in memory, where WAL is impossible
    assert list(tmp_path.iterdir()) == []
