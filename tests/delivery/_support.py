"""Shared helpers for the delivery tests: clients, bounded waits, collector rows, policy checks."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import telemetry
from telemetry._delivery import Uploader, UploadPolicy
from telemetry._delivery._backoff import parse_retry_after
from telemetry.testing import FakeClock
from tests.collector_process import stored_rows
from tests.delivery.fault_server import RequestRecord

PROJECT = "delivery-test"
COMPONENT = "delivery-app"

#: Timings for tests about logic, not about the issue's figures: short waits everywhere,
#: except the request timeouts: a loaded CI machine must never turn a slow but successful
#: answer into a timeout and a resend (tests about timeouts set their own).
FAST = UploadPolicy(
    flush_interval=0.2,
    connect_timeout=5.0,
    total_timeout=10.0,
    backoff_initial=0.2,
    backoff_cap=0.8,
    max_requests_per_minute=600,
    retry_after_default=0.5,
    retry_after_max=5.0,
    config_error_pause=1.0,
    offline_check_interval=0.2,
    after_success_delay=0.02,
)


def fast_policy(**changes: Any) -> UploadPolicy:
    """:data:`FAST` with some fields changed."""
    values = {name: getattr(FAST, name) for name in FAST.__dataclass_fields__}
    values.update(changes)
    return UploadPolicy(**values)


def make_client(
    data_dir: Path,
    endpoint: str | None,
    policy: UploadPolicy | None = None,
    *,
    notice_answered: bool = True,
    clock: FakeClock | None = None,
    **kwargs: Any,
) -> telemetry.Client:
    """A client on ``data_dir`` sending to ``endpoint`` (a base URL), by default in an app
    whose user answered its first-run notice (under the opt-out policy, uploads wait for it).
    ``clock``: the time its uploader's schedule runs on."""
    client = telemetry.create_client(
        PROJECT,
        COMPONENT,
        "1.0.0",
        endpoint,
        data_dir=data_dir,
        upload_policy=policy or FAST,
        clock=clock,
        **kwargs,
    )
    if notice_answered:
        client.mark_notice_answered()
    return client


def run_clock(
    clock: FakeClock, until: Callable[[], bool], timeout: float, *, max_step: float = 3600.0
) -> bool:
    """Move ``clock`` to each deadline its sleeping threads wait for (the uploader's next
    attempt) until ``until()`` holds or ``timeout`` real seconds pass; returns whether it
    held. Time passes only while the uploader sleeps, so each request leaves exactly when its
    schedule says. A sleep longer than ``max_step`` is not cut short: time stops there."""
    deadline = time.monotonic() + timeout
    while not until():
        if time.monotonic() >= deadline:
            return False
        try:
            left = clock.wait_for_sleeper(0.05, at_least=1e-9, at_most=max_step)
        except TimeoutError:
            continue
        clock.advance(left)
    return True


def sleeping_for(clock: FakeClock, seconds: float, timeout: float = 10.0) -> float:
    """Wait (real time, bounded) until a thread sleeps on ``clock`` with ``seconds`` left
    (give or take float rounding); return them."""
    return clock.wait_for_sleeper(timeout, at_least=seconds - 1e-6, at_most=seconds + 1e-6)


def prefill(data_dir: Path, count: int) -> list[str]:
    """Queue ``count`` events (after the client's $identify) without uploading; return the
    insert_ids of everything queued, oldest first."""
    with telemetry.create_client(
        PROJECT, COMPONENT, "1.0.0", data_dir=data_dir, upload=False
    ) as client:
        track_many(client, count)
        return queued_ids(client)


def uploader_of(client: telemetry.Client) -> Uploader:
    """The client's uploader (it has one: ``upload=True``)."""
    assert client._uploader is not None
    return client._uploader


def wait_until(predicate: Callable[[], bool], timeout: float, interval: float = 0.05) -> bool:
    """Poll ``predicate`` until it holds or ``timeout`` s pass; returns whether it held."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


def settled(client: telemetry.Client) -> bool:
    """The uploader went idle: it found the queue empty after its last request, so that
    request's bookkeeping (``sent_events`` and the other counters, the sent log, the upload
    status) is all written. An empty queue alone is not enough: ``ack`` deletes the batch
    first, the counters and the status row follow on the uploader's thread."""
    return uploader_of(client).idle and client._store.stats().events == 0


def stored_ids(database: Path) -> Counter[str]:
    """How many rows the collector holds per insert_id."""
    return Counter(row["insert_id"] for row in stored_rows(database))


def track_many(client: telemetry.Client, count: int, name: str = "Delivery test") -> list[str]:
    """Track ``count`` events; return their insert_ids."""
    ids = []
    for i in range(count):
        insert_id = client.track(name, {"i": i})
        assert insert_id is not None
        ids.append(insert_id)
    return ids


def queued_ids(client: telemetry.Client) -> list[str]:
    """insert_ids of every event queued in the client's store (its own $identify included)."""
    return [e.insert_id for e in client._store.iter_events()]


def assert_exactly_once(database: Path, expected: Sequence[str]) -> None:
    """The collector stored each of ``expected`` exactly once, and nothing else."""
    stored = stored_ids(database)
    missing = [i for i in expected if i not in stored]
    assert not missing, f"{len(missing)} events never stored, e.g. {missing[:3]}"
    assert max(stored.values()) == 1
    assert set(stored) == set(expected), "the collector holds events nobody tracked"


# ---------------------------------------------------------------------- request timing


def classify(record: RequestRecord) -> str:
    """What the client should make of a request's answer (the response policy's table)."""
    code = record.status
    if code is None:
        return "network"
    if 200 <= code < 300:
        return "ok"
    if code == 429:
        return "throttled"
    if code in (401, 403, 404, 405, 410):
        return "config"
    if code == 408 or code >= 500:
        return "retry"
    if code == 413:
        return "split"
    return "reject"


@dataclass(frozen=True)
class PolicyReport:
    """What :func:`check_policy` measured."""

    requests: int
    failures: int
    span: float  # seconds from the first request to the last
    max_failures: int  # the most failed requests the policy allows over ``span``


def check_policy(
    records: Sequence[RequestRecord], policy: UploadPolicy, *, slack: float = 1.0
) -> PolicyReport:
    """Assert the request timeline obeys ``policy``; return the counts.

    * after a 5xx/408 or a network failure, the next request waits at least
      ``backoff_initial`` and at most the full-jitter ceiling for that many consecutive
      failures (plus the time the failed request could take, plus ``slack``);
    * after a 429 it waits at least ``Retry-After`` (clamped) or the default;
    * after 401/403/404/405/410 it waits at least ``config_error_pause``;
    * no 60 s window holds more than ``max_requests_per_minute`` requests;
    * the failed requests are no more than the policy allows over the measured time:
      ``1 + span / backoff_initial``.
    """
    tolerance = 0.02
    failures_in_row = 0
    failures = 0
    for a, b in itertools.pairwise(records):
        gap = b.started - a.started
        kind = classify(a)
        if kind in ("retry", "network"):
            failures += 1
            failures_in_row += 1
            ceiling = min(policy.backoff_cap, policy.backoff_initial * 2 ** (failures_in_row - 1))
            assert gap >= policy.backoff_initial - tolerance, (a.index, kind, gap)
            assert gap <= policy.total_timeout + ceiling + slack, (a.index, kind, gap)
        elif kind == "throttled":
            expected = parse_retry_after(
                a.response_headers.get("retry-after"),
                default=policy.retry_after_default,
                maximum=policy.retry_after_max,
            )
            assert gap >= expected - tolerance, (a.index, kind, gap, expected)
        elif kind == "config":
            assert gap >= policy.config_error_pause - tolerance, (a.index, kind, gap)
        elif kind == "ok":
            failures_in_row = 0
    if records and classify(records[-1]) in ("retry", "network"):
        failures += 1
    starts = [r.started for r in records]
    for i, start in enumerate(starts):
        in_window = sum(1 for s in starts[i:] if s < start + 60.0)
        assert in_window <= policy.max_requests_per_minute, (i, in_window)
    span = starts[-1] - starts[0] if starts else 0.0
    allowed = 1 + int(span / policy.backoff_initial)
    assert failures <= allowed, (failures, allowed, span)
    return PolicyReport(len(records), failures, span, allowed)


# ---------------------------------------------------------------------- child processes

CHILD = Path(__file__).with_name("child_client.py")


def run_child(*args: str, policy: dict[str, object] | None = None) -> subprocess.Popen[str]:
    env = dict(os.environ, CHILD_POLICY=json.dumps(policy or {}), PYTHONUNBUFFERED="1")
    return subprocess.Popen(
        [sys.executable, str(CHILD), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def read_line(proc: subprocess.Popen[str], timeout: float) -> str:
    """The child's next stdout line, waiting at most ``timeout`` s."""
    stdout = proc.stdout
    assert stdout is not None
    line: list[str] = []
    reader = threading.Thread(target=lambda: line.append(stdout.readline()), daemon=True)
    reader.start()
    reader.join(timeout)
    if not line:
        proc.kill()
        _, err = proc.communicate(timeout=10)
        raise AssertionError(f"child printed nothing within {timeout} s; stderr:\n{err}")
    return line[0].strip()
