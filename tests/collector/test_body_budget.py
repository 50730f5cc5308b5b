"""All the bodies one collector process is reading share one memory budget: senders that hold
big uploads open cannot exhaust memory; past the budget an upload gets 503 with Retry-After (the
client backs off), and capacity returns as soon as those uploads end. A real collector on
127.0.0.1 in this process (so the test can read and shrink the budget), real sockets."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from telemetry.collector import _body
from tests.collector_process import start_in_thread

from ._support import PROJECT, batch, event

HELD = 900 * 1024  # what each slow sender has sent of its 1 MiB body


def _wait(predicate: Callable[[], bool], timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


@pytest.fixture
def collector(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.setattr(_body.BODY_BUDGET, "limit", 3 * 1024 * 1024)
    url, stop = start_in_thread(tmp_path / "c.db")
    try:
        yield url
    finally:
        stop()


def _slow_sender(url: str) -> socket.socket:
    host, port = url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=10)
    head = (
        "POST /2/httpapi HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Content-Length: {1024 * 1024}\r\n\r\n"
    )
    sock.sendall(head.encode() + b" " * HELD)  # then it stalls, holding what it sent
    return sock


def test_uploads_past_the_budget_get_503_and_capacity_returns(collector: str):
    senders = [_slow_sender(collector) for _ in range(3)]
    try:
        assert _wait(lambda: _body.BODY_BUDGET.used >= 3 * HELD)  # 2.7 of 3 MiB held
        big = b'{"api_key": "' + PROJECT.encode() + b'", "events": [' + b" " * 600_000 + b"]}"
        refused = httpx.post(f"{collector}/2/httpapi", content=big, timeout=30)
        assert refused.status_code == 503
        assert refused.headers["retry-after"] == "5"
        assert "busy" in refused.json()["error"]
        # A small batch still fits in what is left.
        small = httpx.post(f"{collector}/2/httpapi", json=batch([event()]), timeout=30)
        assert small.status_code == 200
    finally:
        for sock in senders:
            sock.close()
    # The stalled uploads ended: their share is given back, and a big upload goes through.
    assert _wait(lambda: _body.BODY_BUDGET.used == 0)
    many = batch([event(i, event_properties={"pad": "x" * 20_000}) for i in range(30)])
    accepted = httpx.post(f"{collector}/2/httpapi", json=many, timeout=30)
    assert accepted.status_code == 200, accepted.text
    assert _body.BODY_BUDGET.used == 0
