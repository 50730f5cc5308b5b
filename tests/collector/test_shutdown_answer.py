"""A request the collector's shutdown cuts short is answered 503 with ``Retry-After``, never 500.

A real collector process (three workers) takes an upload sent slowly, but faster than the
minimum body rate; SIGTERM arrives while the body is still coming, and the upload outlasts the
server's grace period, so uvicorn cancels the request. The client must read a 503 it can retry,
the collector must exit 0, and its log must hold neither a traceback nor a 500.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import threading
from collections.abc import Callable
from pathlib import Path

from telemetry.collector import _limits as L
from tests.collector_process import CollectorProcess

from ._reports_support import wait_until
from ._support import batch, event

#: The upload: about 128 KiB sent 8 KiB every half second (16 KiB/s, above the collector's
#: 4 KiB/s minimum), so it lasts about 8 s: longer than SIGTERM (1 s in) plus the grace period.
CHUNK_BYTES = 8 * 1024
PACE_SECONDS = 0.5
SIGTERM_AFTER_CHUNKS = 3
#: Bounds of the waits (the test takes about 8 s).
ANSWER_TIMEOUT_SECONDS = 12.0
EXIT_TIMEOUT_SECONDS = 15.0


def _upload_body() -> bytes:
    """A valid batch of about 128 KiB."""
    events = [event(i, event_properties={"pad": "x" * 900}) for i in range(130)]
    body = json.dumps(batch(events)).encode()
    assert 120_000 < len(body) < 140_000
    return body


def _receive_until(sock: socket.socket, received: bytes, done: Callable[[bytes], bool]) -> bytes:
    """``received`` plus what the socket gives until ``done(received)``, it closes or resets."""
    while not done(received):
        try:
            data = sock.recv(65536)
        except ConnectionResetError:
            break
        if not data:
            break
        received += data
    return received


def _read_head(sock: socket.socket) -> tuple[bytes, bytes]:
    """The response's status line and headers, and what followed them (b"" heads: no answer)."""
    received = _receive_until(sock, b"", lambda got: b"\r\n\r\n" in got)
    head, _, rest = received.partition(b"\r\n\r\n")
    return head, rest


def _read_body(sock: socket.socket, rest: bytes, length: int) -> bytes:
    return _receive_until(sock, rest, lambda got: len(got) >= length)


def _log_without_timestamps(stderr: str) -> str:
    """The log lines without their ``ts`` fields (a millisecond count may read 500)."""
    lines = []
    for line in stderr.splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            lines.append(line)
            continue
        if isinstance(entry, dict):
            entry.pop("ts", None)
        lines.append(json.dumps(entry))
    return "\n".join(lines)


def test_a_request_cut_by_the_shutdown_gets_503_not_500(tmp_path: Path) -> None:
    body = _upload_body()
    chunks = [body[i : i + CHUNK_BYTES] for i in range(0, len(body), CHUNK_BYTES)]
    with CollectorProcess(tmp_path / "c.db", extra_args=["--workers", "3"]) as collector:
        assert collector.port is not None and collector.pid is not None
        sock = socket.create_connection(("127.0.0.1", collector.port), timeout=5)
        sock.settimeout(ANSWER_TIMEOUT_SECONDS)
        sent_enough = threading.Event()
        stop_sending = threading.Event()

        def trickle() -> None:
            try:
                for n, chunk in enumerate(chunks[1:], start=2):
                    if stop_sending.wait(PACE_SECONDS):  # the upload's pace
                        return
                    sock.sendall(chunk)
                    if n == SIGTERM_AFTER_CHUNKS:
                        sent_enough.set()
            except OSError:  # the collector answered and closed the connection
                return
            finally:
                sent_enough.set()

        try:
            sock.sendall(
                b"POST /2/httpapi HTTP/1.1\r\nHost: collector\r\n"
                b"Content-Type: application/json\r\n"
                b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + chunks[0]
            )
            sender = threading.Thread(target=trickle, name="trickling upload")
            sender.start()
            assert sent_enough.wait(10.0)
            os.kill(collector.pid, signal.SIGTERM)
            head, rest = _read_head(sock)
            stop_sending.set()
            sender.join(10.0)
            status_line, *header_lines = head.decode("latin-1").split("\r\n")
            headers = {
                name.lower(): value
                for name, _, value in (line.partition(": ") for line in header_lines)
            }
            answer = _read_body(sock, rest, int(headers.get("content-length", "0")))
        finally:
            stop_sending.set()
            sock.close()
        wait_until(lambda: not collector.running, EXIT_TIMEOUT_SECONDS)
        assert collector.returncode == 0
        log = _log_without_timestamps(collector.stderr)
    print(f"answer: {status_line!r}, headers {headers}")
    assert status_line == "HTTP/1.1 503 Service Unavailable", (status_line, log)
    assert headers["retry-after"] == str(L.RETRY_AFTER_STORAGE_SECONDS)
    assert headers["connection"] == "close"
    assert json.loads(answer) == {"code": 503, "error": L.ERROR_STOPPING}
    assert "Traceback" not in log
    assert "500" not in log
    assert "answered 503" in log
