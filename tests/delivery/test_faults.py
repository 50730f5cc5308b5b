"""Faults from a real server in front of the real collector: every answer of the response policy.

Each test scripts the fault server, lets the client's uploader meet the faults on its own
thread, and checks that afterwards every event is stored exactly once, that the client never
had one event accepted twice, and that the request timeline obeys the policy (backoff gaps,
Retry-After, pauses, the per-minute cap, and the most failed requests allowed over the time).

Timings are shortened (``FAST``) where the test is about logic; the real defaults are used
where the figure is the point (the 15 requests per minute cap).
"""

from __future__ import annotations

import itertools
import json
import re
import time
from pathlib import Path

import pytest

import telemetry
from telemetry import cli
from telemetry._delivery import UploadPolicy
from telemetry.testing import FakeClock
from tests._fixtures import RunningCollector
from tests.delivery import fault_server as fs
from tests.delivery._support import (
    FAST,
    assert_exactly_once,
    check_policy,
    fast_policy,
    make_client,
    prefill,
    run_clock,
    settled,
    sleeping_for,
    stored_ids,
    track_many,
    uploader_of,
    wait_until,
)
from tests.delivery.fault_server import FaultServer


def drain(
    client: telemetry.Client,
    collector: RunningCollector,
    expected: list[str],
    timeout: float,
    clock: FakeClock | None = None,
) -> None:
    """Wait (bounded) until the collector holds ``expected``, the client's queue is empty and
    its uploader has written the last request's counters and status (:func:`settled`).
    With the uploader on a fake ``clock``, time is moved on to each attempt meanwhile."""
    expected_set = set(expected)

    def done() -> bool:
        stored = stored_ids(collector.database)
        return expected_set <= set(stored) and settled(client)

    held = wait_until(done, timeout) if clock is None else run_clock(clock, done, timeout)
    assert held, (client._store.counters(), uploader_of(client).status())


def assert_accepted_once(server: FaultServer, expected: list[str]) -> None:
    """The client had each event accepted (2xx) exactly once: it never sent one twice after
    a success."""
    accepted = server.accepted_counts()
    assert set(accepted) == set(expected)
    assert set(accepted.values()) == {1}


def test_server_errors_then_recovery(
    server: FaultServer, collector: RunningCollector, data_dir: Path
):
    ids = prefill(data_dir, 1200)
    server.script(fs.status(500), fs.status(503), fs.store_then(500))
    with make_client(data_dir, server.url) as client:
        drain(client, collector, ids, 20)
        counters = client._store.counters()
    records = server.requests
    assert [r.status for r in records[:3]] == [500, 503, 500]
    assert_exactly_once(collector.database, ids)
    assert_accepted_once(server, ids)
    # The same batch went out three times, byte for byte (insert_id unchanged across retries).
    assert records[0].events == records[1].events == records[2].events == records[3].events
    assert len(records[0].events) == 500
    report = check_policy(records, FAST)
    assert report.failures == 3
    assert len(records) == 3 + 3  # the faults, then 500 + 500 + 201 events
    assert counters["upload_5xx"] == 3
    assert counters["upload_2xx"] == 3
    assert counters["sent_events"] == 1201


@pytest.mark.parametrize(
    ("retry_after", "expected_wait"),
    [("2", 2.0), (None, 30.0), ("86400", 3600.0)],
    ids=["retry-after-seconds", "no-header-default", "clamped-to-max"],
)
def test_429_waits_retry_after(
    server: FaultServer,
    collector: RunningCollector,
    data_dir: Path,
    retry_after: str | None,
    expected_wait: float,
):
    ids = prefill(data_dir, 20)
    # The real default (30 s) and ceiling (1 h): the uploader runs on a fake clock.
    policy = fast_policy(retry_after_default=30.0, retry_after_max=3600.0)
    clock = FakeClock()
    server.clock = clock.monotonic
    server.script(fs.throttle(retry_after))
    with make_client(data_dir, server.url, policy, clock=clock) as client:
        uploader = uploader_of(client)
        # The request arriving is not enough: wait until the client handled the 429.
        assert wait_until(lambda: uploader.status().get("last_status") == 429, 10)
        # Paused for what Retry-After says; flush() does not skip the pause.
        assert sleeping_for(clock, expected_wait) == pytest.approx(expected_wait)
        assert client.flush(0.3) is False
        assert len(server.requests) == 1
        drain(client, collector, ids, 10, clock)
        status = uploader_of(client).status()
        counters = client._store.counters()
    first, second = server.requests[:2]
    assert second.started - first.started == pytest.approx(expected_wait)
    assert counters["upload_429"] == 1
    assert status["last_status"] == 200
    assert_exactly_once(collector.database, ids)
    check_policy(server.requests, policy)


def test_413_halves_the_batch(server: FaultServer, collector: RunningCollector, data_dir: Path):
    ids = prefill(data_dir, 120)
    policy = fast_policy(max_batch_events=40)
    server.script(fs.status(413))
    with make_client(data_dir, server.url, policy) as client:
        drain(client, collector, ids, 10)
        counters = client._store.counters()
    records = server.requests
    assert len(records[0].events) == 40
    assert records[1].insert_ids == records[0].insert_ids[:20]
    # The lowered size holds for the rest of the session.
    assert all(len(r.events) <= 20 for r in records[1:])
    assert counters["upload_413"] == 1
    assert "dropped_oversize" not in counters
    assert_exactly_once(collector.database, ids)
    assert_accepted_once(server, ids)


def test_single_event_413_is_dropped_and_counted(
    server: FaultServer, collector: RunningCollector, data_dir: Path
):
    ids = prefill(data_dir, 11)
    policy = fast_policy(max_batch_events=4)
    server.script(fs.status(413), fs.status(413), fs.status(413))
    with make_client(data_dir, server.url, policy) as client:
        drain(client, collector, ids[1:], 10)
        counters = client._store.counters()
        dropped = client._store.dropped()
    sizes = [len(r.events) for r in server.requests]
    # 4 -> 2 -> 1 (dropped), then the configured size again for the rest.
    assert sizes[:3] == [4, 2, 1]
    assert sizes[3:] == [4, 4, 3]
    assert counters["upload_413"] == 3
    assert counters["dropped_oversize"] == 1
    assert [d["insert_id"] for d in dropped] == [ids[0]]
    assert dropped[0]["reason"] == "dropped_oversize"
    assert_exactly_once(collector.database, ids[1:])


def test_400_drops_named_events_and_resends_the_rest(
    server: FaultServer, collector: RunningCollector, data_dir: Path
):
    ids = prefill(data_dir, 10)
    server.script(fs.reject([1, 3]))
    with make_client(data_dir, server.url) as client:
        good = [i for n, i in enumerate(ids) if n not in (1, 3)]
        drain(client, collector, good, 10)
        counters = client._store.counters()
    first, second = server.requests[:2]
    assert first.status == 400
    assert second.insert_ids == good
    assert counters["dropped_rejected_400"] == 2
    assert_exactly_once(collector.database, good)


def test_400_for_the_whole_batch_drops_it(
    server: FaultServer, collector: RunningCollector, data_dir: Path
):
    ids = prefill(data_dir, 30)
    policy = fast_policy(max_batch_events=10)
    server.script(fs.reject([]))
    with make_client(data_dir, server.url, policy) as client:
        drain(client, collector, ids[10:], 10)
        counters = client._store.counters()
        status = uploader_of(client).status()
    assert counters["dropped_rejected_400"] == 10
    assert counters["upload_400"] == 1
    assert_exactly_once(collector.database, ids[10:])
    assert status["last_status"] == 200


@pytest.mark.parametrize("code", [401, 403])
def test_auth_errors_keep_the_events_and_pause(
    server: FaultServer, collector: RunningCollector, data_dir: Path, code: int
):
    ids = prefill(data_dir, 15)
    server.script(fs.status(code))
    policy = fast_policy(config_error_pause=3600.0)  # the real hour: on a fake clock
    clock = FakeClock()
    server.clock = clock.monotonic
    with make_client(data_dir, server.url, policy, clock=clock) as client:
        uploader = uploader_of(client)
        # Handled (status saved after any drop), not only received: then check nothing went.
        assert wait_until(lambda: uploader.status().get("last_status") == code, 10)
        assert client._store.stats().events == 16  # nothing dropped
        assert sleeping_for(clock, 3600.0)
        assert client.flush(0.2) is False  # the pause is not skipped
        assert len(server.requests) == 1
        drain(client, collector, ids, 10, clock)
        counters = client._store.counters()
    first, second = server.requests[:2]
    assert second.started - first.started == pytest.approx(policy.config_error_pause)
    assert counters[f"upload_{code}"] == 1
    assert not any(k.startswith("dropped") for k in counters)
    assert_exactly_once(collector.database, ids)


def test_other_4xx_is_dropped_and_counted(
    server: FaultServer, collector: RunningCollector, data_dir: Path
):
    ids = prefill(data_dir, 5)
    server.script(fs.status(422))
    with make_client(data_dir, server.url) as client:
        assert wait_until(lambda: client._store.stats().events == 0, 10)
        track_many(client, 3)
        assert client.flush(10)
        counters = client._store.counters()
    assert counters["dropped_rejected_4xx"] == 6
    assert not set(ids) & set(server.accepted_counts())


def test_a_redirect_keeps_the_events_and_is_retried(
    server: FaultServer, collector: RunningCollector, data_dir: Path
):
    """Found by an outside audit: any 3xx (a captive portal's redirect, an endpoint moved to
    https) dropped the whole batch for good. It is now retried with the backoff, and never
    followed (a redirect to another host must not receive the events)."""
    ids = prefill(data_dir, 60)
    server.script(
        fs.status(307, Location="http://portal.example/login"),
        fs.status(302, Location="http://portal.example/login"),
    )
    with make_client(data_dir, server.url) as client:
        drain(client, collector, ids, 20)
        counters = client._store.counters()
    assert [r.status for r in server.requests[:2]] == [307, 302]
    assert counters["upload_other_status"] == 2
    assert "dropped_rejected_4xx" not in counters
    assert_exactly_once(collector.database, ids)
    assert_accepted_once(server, ids)


def test_connection_reset_mid_request(
    server: FaultServer, collector: RunningCollector, data_dir: Path
):
    ids = prefill(data_dir, 700)
    server.script(fs.reset(after_bytes=200), fs.store_then_reset())
    with make_client(data_dir, server.url) as client:
        drain(client, collector, ids, 15)
        counters = client._store.counters()
    records = server.requests
    assert records[0].error == "reset by server"
    assert len(records[0].body) == 200  # the client was cut off mid-body
    assert records[1].upstream_status == 200  # stored, but the client never heard
    assert counters["upload_network_error"] == 2
    assert_exactly_once(collector.database, ids)
    assert_accepted_once(server, ids)
    report = check_policy(records, FAST)
    assert report.failures == 2


def test_response_that_never_comes(
    server: FaultServer, collector: RunningCollector, data_dir: Path
):
    ids = prefill(data_dir, 50)
    # The timeout applies to the successful resend too: 3 s, several times what a loaded
    # machine takes to store and answer (a spurious timeout would mean a resend).
    policy = fast_policy(total_timeout=3.0)
    server.script(fs.hang())
    with make_client(data_dir, server.url, policy) as client:
        drain(client, collector, ids, 15)
        counters = client._store.counters()
    first, second = server.requests[:2]
    # Given up after total_timeout, then backed off at least backoff_initial.
    gap = second.started - first.started
    assert policy.total_timeout + policy.backoff_initial - 0.05 <= gap <= policy.total_timeout + 2
    assert counters["upload_timeout"] == 1
    assert_exactly_once(collector.database, ids)
    check_policy(server.requests, policy)


def test_server_that_trickles_bytes(
    server: FaultServer, collector: RunningCollector, data_dir: Path
):
    ids = prefill(data_dir, 50)
    policy = fast_policy(total_timeout=3.0, connect_timeout=3.0)
    # One byte every 0.1 s: no single read ever times out, the whole answer would take 110 s.
    server.script(fs.trickle(interval=0.1, total_bytes=1000))
    with make_client(data_dir, server.url, policy) as client:
        drain(client, collector, ids, 15)
        counters = client._store.counters()
    first, second = server.requests[:2]
    gap = second.started - first.started
    assert policy.total_timeout <= gap <= policy.total_timeout + 2
    assert counters["upload_timeout"] == 1
    assert first.upstream_status == 200  # stored before trickling: the resend is a duplicate
    assert_exactly_once(collector.database, ids)
    assert server.wait_for(lambda rs: rs[0].error == "trickled; client gave up", 5)


def test_every_fault_in_a_row(server: FaultServer, collector: RunningCollector, data_dir: Path):
    """500, 503, 429 + Retry-After, 413, reset mid-request, no answer, trickle, stored-then-
    reset, stored-then-500: afterwards every event is stored exactly once, and the number of
    requests stays within what the policy allows."""
    ids = prefill(data_dir, 1500)
    # total_timeout ends the hang and the trickle, and bounds every successful batch as well:
    # 3 s leaves a loaded machine room to store 250 events and answer without a resend.
    policy = fast_policy(total_timeout=3.0, backoff_initial=0.1, backoff_cap=0.4)
    script = [
        fs.status(500),
        fs.status(503),
        fs.throttle("1"),
        fs.status(413),
        fs.reset(after_bytes=1000),
        fs.hang(),
        fs.trickle(interval=0.1),
        fs.store_then_reset(),
        fs.store_then(500),
    ]
    server.script(*script)
    started = time.monotonic()
    with make_client(data_dir, server.url, policy) as client:
        drain(client, collector, ids, 40)
        elapsed = time.monotonic() - started
        counters = client._store.counters()
        status = uploader_of(client).status()
    records = server.requests
    assert server.script_left == 0
    assert_exactly_once(collector.database, ids)
    assert_accepted_once(server, ids)
    report = check_policy(records, policy)
    assert report.failures == 7  # 500, 503, reset, no answer, trickle, stored+reset, stored+500
    # The faults, then 1501 events in batches of 250 (halved by the 413): 7 successes.
    assert len(records) == len(script) + 7
    assert elapsed < 20
    for name, value in {
        "upload_5xx": 3,
        "upload_429": 1,
        "upload_413": 1,
        "upload_network_error": 2,
        "upload_timeout": 2,
        "upload_2xx": 7,
        "upload_requests": len(records),
        "sent_events": 1501,
    }.items():
        assert counters[name] == value, name
    assert status["failures"] == 0
    assert status["last_status"] == 200


def test_first_retry_after_a_server_error_waits_5_s_by_default(
    server: FaultServer, collector: RunningCollector, data_dir: Path
):
    ids = prefill(data_dir, 10)
    server.script(fs.status(503))
    clock = FakeClock()
    server.clock = clock.monotonic
    with make_client(data_dir, server.url, UploadPolicy(), clock=clock) as client:
        uploader = uploader_of(client)
        assert wait_until(lambda: uploader.status().get("last_status") == 503, 10)
        assert sleeping_for(clock, 5.0)  # the first backoff is exactly backoff_initial
        assert len(server.requests) == 1
        assert run_clock(clock, lambda: client._store.stats().events == 0, 10)
    first, second = server.requests[:2]
    assert second.started - first.started == pytest.approx(5.0)
    assert_exactly_once(collector.database, ids)


def test_backoff_grows_with_full_jitter_and_caps(
    server: FaultServer, collector: RunningCollector, data_dir: Path
):
    ids = prefill(data_dir, 5)
    # The real figures (5 s doubling up to 10 min, 15 requests a minute) on a fake clock.
    policy = fast_policy(backoff_initial=5.0, backoff_cap=600.0, max_requests_per_minute=15)
    clock = FakeClock()
    server.clock = clock.monotonic
    server.default = fs.status(503)
    with make_client(data_dir, server.url, policy, clock=clock) as client:
        # A dozen failures (the ceiling reaches the cap at the 9th): time moves to each retry.
        def twelve() -> bool:
            return len(server.requests) >= 12 and server.requests[11].ended is not None

        assert run_clock(clock, twelve, 20)
        server.default = fs.forward()
        # The first twelve: a thirteenth may already have left (and failed) when the clock
        # was moved on just before the twelfth answer was recorded (seen once in CI).
        failing = [r for r in server.requests if r.status == 503][:12]
        drain(client, collector, ids, 10, clock)
    assert len(failing) == 12
    report = check_policy(failing, policy, slack=0.0)
    # Each wait is between 5 s and its ceiling: at most 1 + span / 5 requests.
    assert report.requests <= report.max_failures
    gaps = [b.started - a.started for a, b in itertools.pairwise(failing)]
    for n, gap in enumerate(gaps, start=1):
        assert 5.0 - 1e-6 <= gap <= min(600.0, 5.0 * 2 ** (n - 1)) + 1e-6, (n, gap)
    assert len({round(g, 2) for g in gaps[3:]}) > 1  # jittered, not a fixed period


def test_at_most_15_requests_a_minute(
    server: FaultServer, collector: RunningCollector, data_dir: Path
):
    ids = prefill(data_dir, 40)
    policy = fast_policy(max_batch_events=1, max_requests_per_minute=15)
    clock = FakeClock()
    server.clock = clock.monotonic
    with make_client(data_dir, server.url, policy, clock=clock) as client:
        uploader = uploader_of(client)

        # Time moves on through the short waits between batches, and stops at a long sleep.
        def held_back() -> bool:
            return len(server.requests) >= 15 and any(s > 30.0 for s in clock.sleepers())

        assert run_clock(clock, held_back, 20, max_step=1.0)
        assert len(server.requests) == 15
        assert client._store.stats().events == 41 - 15  # the 15th answer handled (acked)
        assert set(server.accepted_counts()) == set(ids[:15])
        # The 16th request waits for the first to leave the 60 s window, asleep till then.
        cycles = uploader._cycles
        free_at = server.requests[0].started + 60.0
        assert clock.wait_for_sleeper(at_least=30.0) == pytest.approx(free_at - clock.monotonic())
        clock.advance(free_at - clock.monotonic())
        assert server.wait_for(lambda rs: len(rs) >= 16, 10)
        assert wait_until(lambda: uploader._cycles > cycles, 10)
        assert sleeping_for(clock, policy.after_success_delay)  # asleep again, after...
        assert uploader._cycles - cycles == 1  # ...one cycle: no busy loop meanwhile
    assert server.requests[15].started == pytest.approx(free_at)
    check_policy(server.requests, policy)


def test_status_shows_last_result_and_next_attempt(
    server: FaultServer,
    collector: RunningCollector,
    data_dir: Path,
    capsys: pytest.CaptureFixture[str],
):
    prefill(data_dir, 3)
    server.default = fs.status(503)
    policy = fast_policy(backoff_initial=30.0, backoff_cap=60.0)
    with make_client(data_dir, server.url, policy) as client:
        assert server.wait_for(lambda rs: len(rs) >= 1, 10)
        # The status row, not the counter: upload_5xx is bumped before the row is saved.
        uploader = uploader_of(client)
        assert wait_until(lambda: uploader.status().get("last_status") == 503, 10)
        assert cli.main(["--data-dir", str(data_dir), "status"]) == 0
        text = capsys.readouterr().out
        assert cli.main(["--data-dir", str(data_dir), "status", "--json"]) == 0
        info = json.loads(capsys.readouterr().out)
        uploader.set_online(False)  # no request at close
    assert "503: server error; retry in 30.0 s" in text
    assert re.search(r"next attempt: \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC", text)
    upload = info["upload"]
    assert upload["last_status"] == 503
    assert upload["failures"] == 1
    assert upload["connectivity"] == "online"
    assert upload["next_attempt_at"] - upload["last_attempt_at"] == 30_000
    assert info["counters"]["upload_5xx"] == 1
    assert info["queue"]["events"] == 4
