"""Projects, destination tokens and forwarding to a loopback server speaking Amplitude's API."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from telemetry.collector import EventStore, Storage
from telemetry.collector._config import ConfigError, load_config, parse_config
from telemetry.collector._forwarder import MAX_REQUEST_BYTES, MAX_REQUEST_EVENTS
from telemetry.collector._validation import parse_batch
from tests.collector_process import CollectorProcess, start_in_thread

from ._amplitude_fake import Decision, FakeAmplitude, Received, accept, fake_amplitude
from ._support import DEVICE_ID, PROJECT, batch, event, post

STAGING_TOKEN = "stg-3f9a1c77e0b24d55a1c2"
PRODUCTION_TOKEN = "prd-8b7e6d5c4b3a29181716"


def config_for(url: str) -> dict[str, Any]:
    return {
        "forwarding": {"url": url},
        "projects": {
            PROJECT: {"staging": STAGING_TOKEN, "production": PRODUCTION_TOKEN},
            "staging-only": {"staging": STAGING_TOKEN},
        },
    }


@contextmanager
def forwarding_collector(
    tmp_path: Path,
    decide: Callable[[Received], Decision] = accept,
    *,
    database: str | Path | Storage | None = None,
    environment: str = "staging",
) -> Iterator[tuple[str, FakeAmplitude]]:
    with fake_amplitude(decide) as fake:
        url, stop = start_in_thread(
            database if database is not None else tmp_path / "c.db",
            config=parse_config(config_for(fake.url)),
            environment=environment,
            forward_interval=0.05,
            forward_backoff=0.1,
        )
        try:
            yield url, fake
        finally:
            stop()


def wait_until(predicate: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.02)


def metric(url: str, line_start: str) -> float:
    for line in httpx.get(url + "/metrics", timeout=10).text.splitlines():
        if line.startswith(line_start + " "):
            return float(line.split()[-1])
    raise AssertionError(f"no metric {line_start}")


def test_every_event_is_forwarded_once_in_bounded_requests_with_the_token(
    tmp_path: Path,
) -> None:
    small = [event(i) for i in range(1200)]
    big = [event(5000 + i, event_properties={"blob": "x" * 10_000}) for i in range(240)]
    with forwarding_collector(tmp_path) as (url, fake):
        assert post(url, batch(small)).status_code == 200
        for start in range(0, len(big), 80):
            assert post(url, batch(big[start : start + 80]), gzipped=True).status_code == 200
        expected = [e["insert_id"] for e in small + big]
        wait_until(lambda: len(fake.delivered()) >= len(expected))
        # The fake counts a request as delivered before the collector has read the answer;
        # the collector counts the events once it has settled the rows.
        wait_until(lambda: metric(url, "collector_forwarded_events_total") >= len(expected))
        time.sleep(0.2)  # a duplicate send would show up here
        assert sorted(fake.delivered()) == sorted(expected)
        requests = fake.snapshot()
        assert all(r.api_key == STAGING_TOKEN for r in requests)
        assert max(len(r.events) for r in requests) <= MAX_REQUEST_EVENTS
        assert max(r.size for r in requests) <= MAX_REQUEST_BYTES
        assert any(len(r.events) == MAX_REQUEST_EVENTS for r in requests)
        # Events go out exactly as received, insert_id included.
        sent = {e["insert_id"]: e for r in requests for e in r.events}
        assert sent[big[0]["insert_id"]] == big[0]
        assert metric(url, "collector_forwarded_events_total") == len(expected)


def test_429_waits_for_retry_after_then_delivers(tmp_path: Path) -> None:
    def decide(received: Received) -> Decision:
        if received.status == 0 and len(fake_requests) == 0:
            fake_requests.append(received)
            return 429, {"Retry-After": "1"}, {"code": 429, "error": "Too many requests"}
        return accept(received)

    fake_requests: list[Received] = []
    with forwarding_collector(tmp_path, decide) as (url, fake):
        assert post(url, batch([event(i) for i in range(5)])).status_code == 200
        wait_until(lambda: len(fake.delivered()) == 5)
        first, second = fake.snapshot()[:2]
        assert first.status == 429 and second.status == 200
        assert second.insert_ids == first.insert_ids
        assert second.at - first.at >= 1.0  # it honoured Retry-After
        assert metric(url, 'collector_forward_requests_total{status="429"}') == 1


def test_413_splits_the_batch(tmp_path: Path) -> None:
    def decide(received: Received) -> Decision:
        if len(received.events) > 10:
            return 413, {}, {"code": 413, "error": "Payload too large"}
        return accept(received)

    events = [event(i) for i in range(25)]
    with forwarding_collector(tmp_path, decide) as (_url, fake):
        assert post(_url, batch(events)).status_code == 200
        wait_until(lambda: len(fake.delivered()) == 25)
        requests = fake.snapshot()
        assert requests[0].status == 413 and len(requests[0].events) == 25
        assert all(len(r.events) <= 10 for r in requests if r.status == 200)
        assert fake.delivered() == [e["insert_id"] for e in events]


@pytest.mark.parametrize(
    "naming",
    [
        {"events_with_invalid_fields": {"time": [1, 3]}, "events_with_missing_fields": {}},
        {"events_with_missing_fields": {"event_type": [1], "time": [3]}},
        {"events_with_invalid_id_lengths": {"device_id": [1, 3]}},
        {"silenced_events": [3, 1]},
    ],
    ids=["invalid", "missing", "id-lengths", "silenced"],
)
def test_400_drops_the_named_events_and_resends_the_rest(
    tmp_path: Path, naming: dict[str, Any]
) -> None:
    answered: list[int] = []

    def decide(received: Received) -> Decision:
        answered.append(1)
        if len(answered) == 1:
            return (400, {}, {"code": 400, "error": "Invalid events", **naming})
        return accept(received)

    events = [event(i) for i in range(5)]
    with forwarding_collector(tmp_path, decide) as (url, fake):
        assert post(url, batch(events)).status_code == 200
        wait_until(lambda: len(fake.delivered()) == 3)
        time.sleep(0.2)
        assert fake.delivered() == [events[i]["insert_id"] for i in (0, 2, 4)]
        assert metric(url, "collector_forward_dropped_events_total") == 2


def test_server_errors_are_retried_with_the_same_insert_ids(tmp_path: Path) -> None:
    statuses = iter([500, 502, 503])

    def decide(received: Received) -> Decision:
        status = next(statuses, 200)
        return (status, {}, {"code": status}) if status != 200 else accept(received)

    events = [event(i) for i in range(4)]
    with forwarding_collector(tmp_path, decide) as (_url, fake):
        assert post(_url, batch(events)).status_code == 200
        wait_until(lambda: len(fake.delivered()) == 4)
        requests = fake.snapshot()
        assert [r.status for r in requests] == [500, 502, 503, 200]
        assert all(r.insert_ids == requests[0].insert_ids for r in requests)


def test_deletion_removes_pending_forwards(tmp_path: Path) -> None:
    deleted = threading.Event()

    def unavailable(received: Received) -> Decision:
        # The second attempt is held until the deletion is done: the forwarder (one request at
        # a time) has that request in flight while the rows are deleted, and sends nothing
        # else meanwhile, so every request afterwards would be a retry of deleted rows.
        with fake.lock:
            attempt = len(fake.requests)
        if attempt == 2:
            deleted.wait(30)
        return 503, {}, {"code": 503}

    with forwarding_collector(tmp_path, unavailable) as (url, fake):
        assert post(url, batch([event(i) for i in range(6)])).status_code == 200
        wait_until(lambda: len(fake.snapshot()) >= 2)
        try:
            answer = httpx.post(
                url + "/deletion",
                json={
                    "project": PROJECT,
                    "device_id": DEVICE_ID,
                    "reason": "opt-out",
                    "proof": "ab" * 32,  # its first proof (no batch carried one): trusted
                },
                timeout=10,
            ).json()
        finally:
            deleted.set()
        assert answer == {"code": 200}
        # The held request is answered and settled (a retry of rows that no longer exist).
        wait_until(lambda: metric(url, 'collector_forward_requests_total{status="503"}') == 2)
        time.sleep(0.5)  # a retry would show up here (its backoff would be at most 0.2 s)
        assert len(fake.snapshot()) == 2  # nothing left to retry


def test_events_unsent_for_7_days_are_dropped(tmp_path: Path) -> None:
    store = EventStore(tmp_path / "c.db")
    try:
        eight_days_ago = int(time.time() * 1000) - 8 * 24 * 3600 * 1000
        old = parse_batch(json.dumps(batch([event(i) for i in range(3)])).encode())
        store.insert_batch(old, received_at_ms=eight_days_ago, forward=True)
        with forwarding_collector(tmp_path, database=store) as (url, fake):
            assert post(url, batch([event(10)])).status_code == 200
            wait_until(lambda: len(fake.delivered()) == 1)
            wait_until(lambda: store.outbox_count() == 0)
            assert fake.delivered() == [event(10)["insert_id"]]
            assert metric(url, "collector_forward_dropped_events_total") == 3
    finally:
        store.close()


def test_unknown_project_gets_a_clear_400_only_with_a_config(tmp_path: Path) -> None:
    with forwarding_collector(tmp_path) as (url, _fake):
        answer = post(url, batch([event(1)]) | {"api_key": "not-configured"})
        assert answer.status_code == 400
        assert "Unknown project" in answer.json()["error"]
        deletion = httpx.post(
            url + "/deletion",
            json={
                "project": "not-configured",
                "device_id": DEVICE_ID,
                "reason": "x",
                "proof": "ab" * 32,
            },
            timeout=10,
        )
        assert deletion.status_code == 400
    url, stop = start_in_thread(tmp_path / "default.db")
    try:
        assert post(url, batch([event(1)]) | {"api_key": "anything"}).status_code == 200
    finally:
        stop()


def test_a_project_without_a_token_for_this_environment_is_stored_not_forwarded(
    tmp_path: Path,
) -> None:
    with forwarding_collector(tmp_path, environment="production") as (url, fake):
        assert post(url, batch([event(1)]) | {"api_key": "staging-only"}).status_code == 200
        assert post(url, batch([event(2)])).status_code == 200
        wait_until(lambda: len(fake.delivered()) == 1)
        time.sleep(0.2)
        assert fake.delivered() == [event(2)["insert_id"]]
        assert [r.api_key for r in fake.snapshot()] == [PRODUCTION_TOKEN]


def test_tokens_never_appear_in_responses_or_logs(tmp_path: Path) -> None:
    with fake_amplitude() as fake:
        config = tmp_path / "collector.toml"
        config.write_text(
            f'[forwarding]\nurl = "{fake.url}"\n\n[projects.{PROJECT}]\n'
            f'staging = "{STAGING_TOKEN}"\nproduction = "{PRODUCTION_TOKEN}"\n'
        )
        args = [
            "--config",
            str(config),
            "--environment",
            "production",
            "--forward-interval",
            "0.05",
        ]
        with CollectorProcess(tmp_path / "c.db", extra_args=args) as collector:
            url = collector.url
            answers = [
                post(url, batch([event(i) for i in range(20)])),
                post(url, batch([event(1)]) | {"api_key": "unknown"}),
                post(url, batch([event(30, device_id="nil")])),
                post(url, b"{broken"),
                httpx.get(url + "/metrics", timeout=10),
                httpx.get(url + "/healthz", timeout=10),
                httpx.post(
                    url + "/deletion",
                    json={
                        "project": PROJECT,
                        "device_id": "device-other1",
                        "reason": "x",
                        "proof": "ab" * 32,
                    },
                    timeout=10,
                ),
            ]
            wait_until(lambda: len(fake.delivered()) == 20)
            # Logged once the collector has read the answer (after the fake counted it).
            wait_until(lambda: "forwarded 20 events" in collector.stderr)
            assert {r.api_key for r in fake.snapshot()} == {PRODUCTION_TOKEN}
        logs = collector.stderr + collector.stdout
        assert "forwarded 20 events" in logs  # the logs were captured
        for line in collector.stderr.splitlines():  # structured: one JSON object per line
            assert set(json.loads(line)) >= {"ts", "level", "logger", "message"}
    for token in (STAGING_TOKEN, PRODUCTION_TOKEN):
        assert token not in logs
        for answer in answers:
            assert token not in answer.text
            assert token not in str(answer.headers)


def test_config_errors_name_keys_not_values(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text(
        f'[projects.{PROJECT}]\nstaging = "{STAGING_TOKEN}"\ntesting = "{PRODUCTION_TOKEN}"\n'
    )
    with pytest.raises(ConfigError) as raised:
        load_config(bad)
    assert "testing" in str(raised.value)
    assert STAGING_TOKEN not in str(raised.value) and PRODUCTION_TOKEN not in str(raised.value)
    assert STAGING_TOKEN not in repr(load_config(None) and parse_config(config_for("http://x")))


def test_retry_after_is_bounded_and_a_negative_or_non_number_means_the_default() -> None:
    from telemetry.collector._forwarder import retry_after_seconds
    from telemetry.transport import Response

    def wait(value: str | None) -> float:
        headers = {} if value is None else {"retry-after": value}
        return retry_after_seconds(Response(429, b"", headers), default=30.0)

    assert [wait("12"), wait("1e9"), wait(None), wait("soon"), wait("nan")] == [
        12.0, 600.0, 30.0, 30.0, 30.0,
    ]  # fmt: skip
    # 0 (or less than a second) is raised to 1 s, a negative value means the default: either
    # would otherwise make the forwarder resend at once, again and again.
    assert [wait("0"), wait("0.2"), wait("-5"), wait("-0.5")] == [1.0, 1.0, 30.0, 30.0]
