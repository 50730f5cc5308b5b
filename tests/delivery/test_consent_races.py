"""Consent under concurrency: what another thread of the app does at the same moment as an
opt-out must not undo or repeat any part of it. Each race is forced, not hoped for: the opt-out
is held at a known point while the other party acts."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest

import telemetry
from tests._fixtures import RunningCollector
from tests.delivery import fault_server as fs
from tests.delivery._support import make_client, settled, track_many, uploader_of, wait_until
from tests.delivery.fault_server import FaultServer

#: How long the deletion request's answer takes to trickle in (0.1 s per byte).
_SLOW_ANSWER_BYTES = 20


def _is_deletion(record: fs.RequestRecord) -> bool:
    return record.target.endswith("/deletion")


def test_a_housekeeping_pass_during_an_opt_out_does_not_undo_it(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
):
    """The housekeeping thread checks the stored choice (another process may have changed it)
    while this process's set_consent(False) is erasing: it must see the opt-out, not the
    choice stored before it, and leave telemetry off."""
    with make_client(data_dir, None, upload=False) as client:
        track_many(client, 5)
        erasing, go_on = threading.Event(), threading.Event()
        real_erase = client._store.erase

        def held_erase(*args: object, **kwargs: object) -> int:
            erasing.set()
            assert go_on.wait(10)
            return real_erase(*args, **kwargs)  # type: ignore[arg-type]

        monkeypatch.setattr(client._store, "erase", held_erase)
        opt_out = threading.Thread(target=client.set_consent, args=(False,))
        opt_out.start()
        assert erasing.wait(10)
        housekeeping = threading.Thread(target=client._flow.follow_stored_choice)
        housekeeping.start()
        housekeeping.join(0.3)  # it reads the stored choice now, or waits for the opt-out
        go_on.set()
        opt_out.join(10)
        housekeeping.join(10)
        assert not opt_out.is_alive() and not housekeeping.is_alive()
        assert client.consent_state is telemetry.ConsentState.DENIED
        assert not client.enabled
        assert client.track("After opt-out") is None
        assert client._store.stats().events == 0
        client._flow.follow_stored_choice()  # and a later pass changes nothing either
        assert client.consent_state is telemetry.ConsentState.DENIED


def test_no_session_row_is_kept_after_an_opt_out(data_dir: Path):
    with make_client(data_dir, None, upload=False) as client:
        track_many(client, 3)
        client.set_consent(False)
        client._housekeeping()  # a pass after the opt-out saves nothing of the old session
    with sqlite3.connect(data_dir / "telemetry.db") as conn:
        keys = {k for (k,) in conn.execute("SELECT key FROM state")}
    assert "session" not in keys
    assert "device_id" not in keys


def test_cancelling_uploads_leaves_the_deletion_request_in_flight_alone(
    server: FaultServer, collector: RunningCollector, data_dir: Path
):
    """A deletion request is on its way (its answer is slow) when the app cancels uploads
    again (a second opt-out path, an event batch being stopped): it is sent once, not again."""
    with make_client(data_dir, server.url) as client:
        assert client.flush(10)  # the $identify went out: this device id is exposed
        assert wait_until(lambda: settled(client), 10)
        mark = len(server.requests)
        server.script(fs.trickle(interval=0.1, total_bytes=_SLOW_ANSWER_BYTES))
        client.set_consent(False)
        assert server.wait_for(lambda rs: any(_is_deletion(r) for r in rs[mark:]), 10)
        uploader_of(client).cancel()
        uploader_of(client).send_deletions_now()
        # Delivered: the request is forgotten and then counted (two steps: wait for both).
        assert wait_until(
            lambda: (
                client.status()["deletion_requests"] == 0
                and client.status()["counters"].get("deletion_requests_sent") == 1
            ),
            20,
        )
        counters = client.status()["counters"]
    assert [_is_deletion(r) for r in server.requests[mark:]] == [True]
    assert counters.get("deletion_request_attempts") == 1
    assert counters.get("deletion_requests_sent") == 1
