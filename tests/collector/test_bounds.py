"""Bounded resources of a real collector process: slow connections, the connection limit, the
event count enforced while parsing, and logs that cannot flood."""

from __future__ import annotations

import gzip
import io
import json
import logging
import resource
import select
import socket
import sys
import threading
import time
from collections import deque
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest

from telemetry.collector._batch_json import TooManyEvents, load_batch_json
from telemetry.collector._connections import BODY_GRACE_SECONDS, HEADER_TIMEOUT_SECONDS
from telemetry.collector._logging import JsonLogFormatter, RateLimitedStreamHandler
from tests.collector_process import CollectorProcess

from ._support import PROJECT, batch, event

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX file descriptor limits")

ATTACKERS = 1_100
ATTACK_SECONDS = HEADER_TIMEOUT_SECONDS + 3
PARTIAL_HEADER = b"POST /2/httpapi HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: applic"
#: A closed connection must be noticed within the timeout plus the watchdog's tick and slack.
CUT_SLACK_SECONDS = 2.5


@pytest.fixture
def enough_fds() -> Iterator[None]:
    """This test process may open ``ATTACKERS`` sockets and more."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = ATTACKERS + 512
    if soft >= wanted:
        yield
        return
    if hard != resource.RLIM_INFINITY and hard < wanted:
        pytest.skip(f"hard RLIMIT_NOFILE {hard} < {wanted}")
    resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def _attacker(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    sock.sendall(PARTIAL_HEADER)
    return sock


def _healthz(client: httpx.Client, url: str) -> int:
    return client.get(f"{url}/healthz", timeout=2.0).status_code


def test_healthz_answers_throughout_a_slow_connection_attack(
    tmp_path: Path, enough_fds: None
) -> None:
    """1,100 idle half-header connections against a collector under ``ulimit -n 1024``: every
    ``/healthz`` poll answers 200 (fresh connection each time), and stderr stays small."""
    attack: deque[socket.socket] = deque()
    # One process, so that its connection limit is what the attack runs into.
    args = ["--workers", "1"]
    with CollectorProcess(tmp_path / "c.db", extra_args=args, fd_limit=1024) as collector:
        port, url = collector.port, collector.url
        assert port is not None
        polls: list[int] = []
        try:
            for i in range(ATTACKERS):
                attack.append(_attacker(port))
                if i % 50 == 0:
                    with httpx.Client() as client:
                        polls.append(_healthz(client, url))
            deadline = time.monotonic() + ATTACK_SECONDS  # keep the attack up past the timeout
            while time.monotonic() < deadline:
                for _ in range(20):  # fresh attackers replace our oldest ones
                    attack.popleft().close()
                    attack.append(_attacker(port))
                with httpx.Client() as client:
                    polls.append(_healthz(client, url))
        finally:
            for sock in attack:
                sock.close()
        stderr = collector.stderr
    print(f"{len(polls)} /healthz polls, stderr {len(stderr)} bytes")
    assert polls and all(status == 200 for status in polls)
    assert len(stderr) < 100_000
    assert "Traceback" not in stderr


def _closed_within(sock: socket.socket, seconds: float, trickle: bytes = b"") -> float | None:
    """Seconds until the peer closes ``sock`` (sending ``trickle`` every 0.5 s), or None."""
    started = time.monotonic()
    while time.monotonic() - started < seconds:
        readable, _, _ = select.select([sock], [], [], 0.5)
        try:
            if readable and not sock.recv(65536, socket.MSG_PEEK):
                return time.monotonic() - started
            if readable:
                sock.recv(65536)  # an answer (e.g. 400/408): keep waiting for the close
            if trickle:
                sock.send(trickle)
        except OSError:  # reset by the peer
            return time.monotonic() - started
    return None


def _slow_upload(url: str, body: bytes, seconds: float) -> int:
    """POST ``body`` in 64 KiB pieces spread over ``seconds``; the status code."""
    pieces = [body[i : i + 65536] for i in range(0, len(body), 65536)]

    def chunks() -> Iterator[bytes]:
        for piece in pieces:
            time.sleep(seconds / len(pieces))  # the upload's pace, not a wait for a state
            yield piece

    headers = {"Content-Type": "application/json", "Content-Length": str(len(body))}
    response = httpx.post(f"{url}/2/httpapi", content=chunks(), headers=headers, timeout=30)
    return response.status_code


def test_trickling_header_and_stalled_body_are_cut_but_a_slow_upload_succeeds(
    tmp_path: Path,
) -> None:
    big = batch([event(i, event_properties={"pad": "x" * 360}) for i in range(1_900)])
    body = json.dumps(big).encode()
    assert 900_000 < len(body) <= 1024 * 1024
    with CollectorProcess(tmp_path / "c.db") as collector:
        port = collector.port
        assert port is not None
        upload: list[int] = []
        uploader = threading.Thread(
            target=lambda: upload.append(_slow_upload(collector.url, body, 8.0))
        )
        uploader.start()
        trickler = socket.create_connection(("127.0.0.1", port), timeout=5)
        staller = socket.create_connection(("127.0.0.1", port), timeout=5)
        try:
            staller.sendall(
                b"POST /2/httpapi HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                b"Content-Length: 5000\r\n\r\n" + b'{"api_key": "'
            )
            trickler.sendall(b"POST /2/httpapi HTTP/1.1\r\n")
            limit = max(HEADER_TIMEOUT_SECONDS, BODY_GRACE_SECONDS) + CUT_SLACK_SECONDS
            trickled = _closed_within(trickler, limit, trickle=b"X")
            stalled = _closed_within(staller, limit)
        finally:
            trickler.close()
            staller.close()
            uploader.join(60)
    print(f"trickling header cut after {trickled} s, stalled body after {stalled} s")
    assert trickled is not None and stalled is not None
    assert upload == [200]


def _empty_events_body(count: int) -> bytes:
    return gzip.compress(json.dumps({"api_key": PROJECT, "events": [{}] * count}).encode())


def test_event_count_is_enforced_while_parsing() -> None:
    text = json.dumps({"api_key": PROJECT, "events": [{}] * 115_000}).encode()
    with pytest.raises(TooManyEvents) as raised:
        load_batch_json(text, 2_000)
    assert raised.value.parsed == 2_001


def test_many_empty_events_get_413_without_materialising_them(tmp_path: Path) -> None:
    body = _empty_events_body(115_000)
    assert len(body) < 4096
    headers = {"Content-Type": "application/json", "Content-Encoding": "gzip"}
    # One process: its memory and CPU time are the ones measured.
    with CollectorProcess(tmp_path / "c.db", extra_args=["--workers", "1"]) as collector:
        proc = psutil.Process(collector.pid)
        rss_before, cpu_before = proc.memory_info().rss, sum(proc.cpu_times()[:2])
        statuses: list[int] = []

        def send() -> None:
            for _ in range(4):
                r = httpx.post(f"{collector.url}/2/httpapi", content=body, headers=headers)
                statuses.append(r.status_code)

        senders = [threading.Thread(target=send) for _ in range(16)]
        for sender in senders:
            sender.start()
        for sender in senders:
            sender.join(120)
        rss_growth = proc.memory_info().rss - rss_before
        cpu = (sum(proc.cpu_times()[:2]) - cpu_before) / len(statuses)
        metrics = httpx.get(f"{collector.url}/metrics").text
    print(f"CPU {cpu * 1000:.1f} ms per request, RSS growth {rss_growth / 2**20:.1f} MiB")
    assert statuses == [413] * 64
    assert "collector_batches_over_event_limit_total 64" in metrics
    assert rss_growth < 200 * 2**20


def test_repeated_log_records_are_summarised() -> None:
    stream = io.StringIO()
    handler = RateLimitedStreamHandler(stream)
    handler.setFormatter(JsonLogFormatter())
    log = logging.getLogger("tests.collector.bounds")
    log.addHandler(handler)
    log.propagate = False
    try:
        for _ in range(100):
            try:
                raise ConnectionResetError("reset by peer")
            except ConnectionResetError:
                log.exception("connection from %s failed", "10.1.2.3")
        log.warning("something else")
        handler.flush_summaries()
    finally:
        log.removeHandler(handler)
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [line["message"] for line in lines] == [
        *["connection from [ip] failed"] * 5,
        "something else",
        "95 more like this in the last minute: connection from %s failed (ConnectionResetError)",
    ]
