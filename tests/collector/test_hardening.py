"""Hardening: per-device rate limit, clock-skew correction, Prometheus metrics."""

from __future__ import annotations

import email.utils
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from telemetry.collector._config import parse_config
from tests.collector_process import start_in_thread

from ._support import batch, event, post, rows

OTHER = "device-99ee11ff"


@contextmanager
def collector_with(tmp_path: Path, config: dict[str, Any]) -> Iterator[str]:
    url, stop = start_in_thread(tmp_path / "c.db", config=parse_config(config))
    try:
        yield url
    finally:
        stop()


def test_a_flooding_device_gets_429_with_retry_after_and_others_are_not_affected(
    tmp_path: Path,
) -> None:
    # 0.01 events/s: the 10 tokens the second batch needs take 1,000 s to come back, so a slow
    # machine between the two posts cannot refill the bucket.
    limits = {"rate_limit": {"device_events_per_second": 0.01, "device_burst_events": 20}}
    with collector_with(tmp_path, limits) as url:
        assert post(url, batch([event(i) for i in range(20)])).status_code == 200
        throttled = post(url, batch([event(100 + i) for i in range(10)]))
        assert throttled.status_code == 429
        assert int(throttled.headers["Retry-After"]) >= 1
        assert throttled.json()["code"] == 429
        assert len(rows(tmp_path / "c.db")) == 20  # nothing of the refused batch
        other = post(url, batch([event(200 + i, device_id=OTHER) for i in range(10)]))
        assert other.status_code == 200
        metrics = httpx.get(url + "/metrics", timeout=10).text
        assert 'collector_requests_total{status="429"} 1' in metrics


def test_clock_skew_is_corrected_and_the_raw_time_kept(tmp_path: Path) -> None:
    url, stop = start_in_thread(tmp_path / "c.db")
    try:
        two_hours = 2 * 3600 * 1000
        sent = int(time.time() * 1000) - two_hours  # the client's clock is 2 h behind
        behind = [event(1, time=sent - 1000)]
        assert post(url, batch(behind), headers={"X-Client-Upload-Time": str(sent)}).is_success
        # The HTTP Date header works too (clock 1 h ahead).
        ahead = time.time() + 3600
        date = email.utils.formatdate(ahead, usegmt=True)
        with_date = post(url, batch([event(2, time=int(ahead * 1000))]), headers={"Date": date})
        assert with_date.is_success
        # A small difference (1 min) is not corrected, nor is a batch that does not say.
        near = str(int(time.time() * 1000) - 60_000)
        assert post(url, batch([event(3)]), headers={"X-Client-Upload-Time": near}).is_success
        assert post(url, batch([event(4)])).is_success
    finally:
        stop()
    stored = {r["event_type"]: r for r in rows(tmp_path / "c.db")}
    first = stored["Test Event 1"]
    assert first["time"] == sent - 1000  # raw, as sent
    assert first["event_time"] == sent - 1000 + (first["received_at"] - sent)
    assert abs(first["event_time"] - (first["received_at"] - 1000)) < 1000
    second = stored["Test Event 2"]
    assert abs(second["event_time"] - second["received_at"]) < 2000
    assert second["time"] - second["event_time"] > 3_500_000
    for name in ("Test Event 3", "Test Event 4"):
        assert stored[name]["event_time"] == stored[name]["time"]


def test_metrics_in_prometheus_text_format(tmp_path: Path) -> None:
    url, stop = start_in_thread(tmp_path / "c.db")
    try:
        assert post(url, batch([event(i) for i in range(5)])).status_code == 200
        assert post(url, batch([event(i) for i in range(3, 8)])).status_code == 200
        assert post(url, batch([event(20), event(21, device_id="nil")])).status_code == 400
        assert post(url, b"[]").status_code == 400
        answer = httpx.get(url + "/metrics", timeout=10)
    finally:
        stop()
    assert answer.headers["content-type"].startswith("text/plain; version=0.0.4")
    values: dict[str, float] = {}
    for line in answer.text.splitlines():
        if not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            values[name] = float(value)
    assert values["collector_events_accepted_total"] == 8
    assert values["collector_events_duplicates_total"] == 2
    assert values["collector_events_rejected_total"] == 1
    assert values['collector_requests_total{status="200"}'] == 2
    assert values['collector_requests_total{status="400"}'] == 2
    assert values["collector_ingest_latency_seconds_count"] == 4
    assert values['collector_ingest_latency_seconds_bucket{le="+Inf"}'] == 4
    assert values["collector_ingest_latency_seconds_sum"] > 0
    assert "# TYPE collector_ingest_latency_seconds histogram" in answer.text
