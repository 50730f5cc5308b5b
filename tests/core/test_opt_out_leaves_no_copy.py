"""An opt-out leaves no copy of what it deletes anywhere in the data directory: not in the
SQLite WAL (which keeps the pages as they were before the deletion until a checkpoint), not in
a copy of the database once found corrupt and moved aside. Found by an outside audit; each
test failed on the code before the fix."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import telemetry

SECRET_EVENT = "VerySecretEventName"


def files_holding(data_dir: Path, needle: bytes) -> list[str]:
    """The files below ``data_dir`` whose bytes contain ``needle``."""
    return sorted(
        str(path.relative_to(data_dir))
        for path in data_dir.rglob("*")
        if path.is_file() and needle in path.read_bytes()
    )


def test_opt_out_leaves_nothing_in_the_wal_even_when_the_app_is_killed_next(
    data_dir: Path,
) -> None:
    """The app opts out and is SIGKILLed right after: the WAL must not keep the events, the
    device id or the installation secret until the next start."""
    script = textwrap.dedent(
        f"""
        import os, signal, sys, telemetry
        c = telemetry.create_client("proj", "app", "1", data_dir=sys.argv[1], upload=False)
        c.mark_notice_answered()
        for i in range(50):
            c.track({SECRET_EVENT!r}, {{"i": i}})
        c._housekeeping()  # the journal copied into SQLite: the events are in the WAL now
        print(c.device_id, flush=True)
        c.set_consent(False)
        os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    run = subprocess.run(
        [sys.executable, "-c", script, str(data_dir)], capture_output=True, text=True, timeout=60
    )
    assert run.returncode == -signal.SIGKILL, run.stderr
    device_id = run.stdout.strip()
    assert device_id
    assert files_holding(data_dir, SECRET_EVENT.encode()) == []
    assert files_holding(data_dir, device_id.encode()) == []


def test_opt_out_removes_copies_of_a_database_found_corrupt(data_dir: Path) -> None:
    with telemetry.create_client("proj", "app", "1", data_dir=data_dir, upload=False) as client:
        client.mark_notice_answered()
        for i in range(300):
            client.track(SECRET_EVENT, {"i": i, "pad": "x" * 200})
        device_id = client.device_id
    db = data_dir / "telemetry.db"
    with open(db, "r+b") as f:  # damage the middle of the file
        f.seek(db.stat().st_size // 2)
        f.write(random.Random(1).randbytes(8192))
    with telemetry.create_client("proj", "app", "1", data_dir=data_dir, upload=False) as client:
        assert list(data_dir.glob("telemetry.db.corrupt-*"))  # moved aside when opened
        client.set_consent(False)
        assert list(data_dir.glob("telemetry.db.corrupt-*")) == []
    assert files_holding(data_dir, SECRET_EVENT.encode()) == []
    assert files_holding(data_dir, device_id.encode()) == []
    assert os.listdir(data_dir)  # the store itself is still there


def test_a_kill_right_after_the_erase_keeps_the_choice_and_the_deletion_request(
    data_dir: Path,
) -> None:
    """Found by an outside audit: the erase committed first, the choice and the deletion
    request in later writes; a process killed in between came back with no choice (so
    recording and uploads started again under a new id) and no deletion request for the old
    id. All three are one transaction now: the child is SIGKILLed the moment it commits."""
    script = textwrap.dedent(
        """
        import os, signal, sys, telemetry
        from telemetry._store import _queue
        from telemetry.testing import RecordingDestination

        c = telemetry.create_client(
            "proj", "app", "1", "http://127.0.0.1:9", data_dir=sys.argv[1],
            destination=RecordingDestination(),
        )
        c.mark_notice_answered()  # uploads allowed: this device id may have left
        c.track("Before")
        print(c.device_id, flush=True)
        erase = _queue.Queue.erase

        def erase_then_die(self, *args, **kwargs):
            erase(self, *args, **kwargs)
            os.kill(os.getpid(), signal.SIGKILL)

        _queue.Queue.erase = erase_then_die
        c.set_consent(False)
        """
    )
    run = subprocess.run(
        [sys.executable, "-c", script, str(data_dir)], capture_output=True, text=True, timeout=60
    )
    assert run.returncode == -signal.SIGKILL, run.stderr
    old_device = run.stdout.strip()
    with telemetry.create_client("proj", "app", "1", data_dir=data_dir, upload=False) as client:
        assert client.consent_state is telemetry.ConsentState.DENIED
        assert client.enabled is False
        assert client.track("After") is None
        pending = client._store.get_state("deletion_requests")
        assert [r["device_id"] for r in pending] == [old_device]
