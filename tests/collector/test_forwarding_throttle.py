"""A 429 whose ``Retry-After`` is 0 or negative must not make either forwarder hammer the
destination: 0 waits at least 1 s, a negative value the default wait, and a pass that got
nothing through is followed by the usual interval. A real collector in this process and a
loopback fake destination answering every request with that 429."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from . import _reports_support as reports
from ._amplitude_fake import Decision, Received
from ._sentry_fake import Decision as SentryDecision
from ._sentry_fake import Received as SentryReceived
from ._support import batch, event, post
from .test_forwarding import forwarding_collector, wait_until
from .test_report_forwarding import forwarding_collector as report_forwarding_collector

#: The counting window, in seconds, and the most requests allowed in it (the old code sent
#: about 30 a second; a 1 s floor allows 3, the default wait 1).
WINDOW = 2.0
MOST_REQUESTS = 5


@pytest.mark.parametrize("retry_after", ["0", "-5"])
def test_event_forwarder_honours_a_floor_for_retry_after(tmp_path: Path, retry_after: str) -> None:
    def throttle(received: Received) -> Decision:
        return 429, {"Retry-After": retry_after}, {"code": 429, "error": "Too many requests"}

    with forwarding_collector(tmp_path, throttle) as (url, fake):
        assert post(url, batch([event(i) for i in range(3)])).status_code == 200
        wait_until(lambda: len(fake.snapshot()) >= 1)
        first = fake.snapshot()[0].at
        time.sleep(WINDOW)  # the point of the test: how many requests come in this window
        within = [r for r in fake.snapshot() if r.at - first <= WINDOW]
    assert 1 <= len(within) <= MOST_REQUESTS


@pytest.mark.parametrize("retry_after", ["0", "-5"])
def test_report_forwarder_honours_a_floor_for_retry_after(tmp_path: Path, retry_after: str) -> None:
    def throttle(received: SentryReceived) -> SentryDecision:
        return 429, {"Retry-After": retry_after}

    with report_forwarding_collector(tmp_path / "c.db", throttle) as (url, fake):
        sent = reports.event_envelope(reports.sentry_event("throttled"))
        assert reports.post_envelope(url, sent).status_code == 200
        wait_until(lambda: len(fake.snapshot()) >= 1)
        first = fake.snapshot()[0].at
        time.sleep(WINDOW)  # the point of the test: how many requests come in this window
        within = [r for r in fake.snapshot() if r.at - first <= WINDOW]
    assert 1 <= len(within) <= MOST_REQUESTS
