"""Must-show: under the opt-out policy nothing leaves the computer before the first-run notice is
answered. Turning telemetry off from the unanswered notice means the collector never hears from
this app at all (not even a deletion request: nothing of it was ever sent); clicking OK starts
delivery, and only then.

A real collector runs as a child process (``CollectorProcess``) behind a recording proxy on
127.0.0.1 (``FaultServer``: every request that reaches the collector goes through it). The
client is real, with its real uploader on a short flush and idle interval, so that it gets many
chances to send while the notice waits; the user clicks the real notice offscreen.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from pytestqt.qtbot import QtBot

import telemetry
from telemetry.qt import ConsentNotice
from tests.collector_process import CollectorProcess
from tests.delivery._support import fast_policy
from tests.delivery.fault_server import FaultServer

#: The uploader wakes every 50 ms and would send a queued event after 50 ms: if anything could
#: leave before the answer, it would have many chances to.
POLICY = fast_policy(flush_interval=0.05, idle_check_interval=0.05)
EVENTS = 5
#: Uploader cycles that must run, with the events queued, before the user answers; and after
#: turning off, before the quiet period ends.
CYCLES = 10


@pytest.fixture
def collector(tmp_path: Path) -> Iterator[CollectorProcess]:
    with CollectorProcess(tmp_path / "collector.db") as process:
        yield process


@pytest.fixture
def proxy(collector: CollectorProcess) -> Iterator[FaultServer]:
    with FaultServer(collector.url) as server:
        yield server


@pytest.fixture
def client(proxy: FaultServer, data_dir: Path) -> Iterator[telemetry.Client]:
    c = telemetry.create_client(
        "test-project", "test-app", "1.2.3", endpoint=proxy.url, data_dir=data_dir,
        upload_policy=POLICY,
    )  # fmt: skip
    yield c
    c.close()


def _uploader_cycles(client: telemetry.Client) -> int:
    """Upload cycles the client's uploader has completed. No public method tells this, so the
    test reads the uploader's own counter (and fails loudly if it is renamed)."""
    uploader = client._uploader
    assert uploader is not None, "the client has no uploader: the test would prove nothing"
    return int(uploader._cycles)


def _queued_user_events(client: telemetry.Client) -> int:
    return sum(1 for e in client.queued_events() if e.event_type == "Flash")


def _notice_with_events_waiting(
    qtbot: QtBot, client: telemetry.Client, proxy: FaultServer
) -> ConsentNotice:
    """Show the notice, record events, and let the uploader cycle with them queued."""
    notice = ConsentNotice(client)
    qtbot.addWidget(notice)
    notice.show()
    qtbot.waitExposed(notice)
    assert client.notice_shown and not client.notice_answered
    assert client.enabled and not client.uploading
    for i in range(EVENTS):
        assert client.track("Flash", {"driveCount": i}) is not None
    start = _uploader_cycles(client)
    qtbot.waitUntil(
        lambda: (
            _queued_user_events(client) == EVENTS and _uploader_cycles(client) >= start + CYCLES
        ),
        timeout=30_000,
    )
    assert proxy.requests == []  # it had its chances and sent nothing
    return notice


def test_turn_off_on_the_unanswered_notice_means_the_collector_hears_nothing(
    qtbot: QtBot, client: telemetry.Client, proxy: FaultServer, collector: CollectorProcess
) -> None:
    notice = _notice_with_events_waiting(qtbot, client, proxy)
    with qtbot.waitSignal(notice.turnedOff, timeout=5000):
        qtbot.mouseClick(notice.turn_off_button, Qt.MouseButton.LeftButton)
    assert client.consent_state is telemetry.ConsentState.DENIED
    assert client.notice_answered  # the choice is the answer
    assert client.queue_stats().events == 0  # purged unsent

    # A bounded quiet period, measured in uploader cycles that had the chance to send.
    after = _uploader_cycles(client)
    qtbot.waitUntil(lambda: _uploader_cycles(client) >= after + CYCLES, timeout=30_000)
    assert client.track("Flash", {"driveCount": 99}) is None
    client.close()  # its last cycles run now

    assert proxy.requests == [], [(r.method, r.target) for r in proxy.requests]
    assert collector.rows() == []


def test_ok_starts_delivery_after_the_click_and_not_before(
    qtbot: QtBot, client: telemetry.Client, proxy: FaultServer, collector: CollectorProcess
) -> None:
    notice = _notice_with_events_waiting(qtbot, client, proxy)
    clicked_at = time.monotonic()
    with qtbot.waitSignal(notice.dismissed, timeout=5000):
        qtbot.mouseClick(notice.ok_button, Qt.MouseButton.LeftButton)
    assert client.notice_answered and client.uploading

    assert proxy.wait_for(
        lambda requests: sum(len(r.events) for r in requests) >= EVENTS, timeout=30
    ), "the events were not delivered after OK"
    requests = proxy.requests
    assert requests[0].started >= clicked_at, "a request reached the collector before OK"
    qtbot.waitUntil(
        lambda: sum(1 for r in collector.rows() if r["event_type"] == "Flash") == EVENTS,
        timeout=30_000,
    )
    assert proxy.wait_for(lambda rs: all(r.ended is not None for r in rs), timeout=30)
    assert [r.status for r in proxy.requests] == [200] * len(proxy.requests)
