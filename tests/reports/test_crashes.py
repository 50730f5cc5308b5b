"""Reports that outlive the process: an uncaught exception followed by SIGKILL, and a
segmentation fault, are delivered by the next start, once (child processes, a real store file,
a real HTTP server on 127.0.0.1 that records the envelopes)."""

from __future__ import annotations

import gzip
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

import telemetry
from telemetry._delivery._envelopes import parse_envelope

ROOT = Path(__file__).resolve().parents[2]


class EnvelopeServer:
    """Answers 200 to everything; keeps the decoded envelopes posted to ``/api/.../envelope/``."""

    def __init__(self) -> None:
        self.envelopes: list[dict[str, Any]] = []
        received = self.envelopes

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                if "/envelope/" in self.path:
                    received.append(parse_envelope(body))
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def reports(self) -> list[dict[str, Any]]:
        return [
            i["payload"]
            for e in self.envelopes
            for i in e["items"]
            if i["header"]["type"] == "event"
        ]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def server() -> Iterator[EnvelopeServer]:
    running = EnvelopeServer()
    try:
        yield running
    finally:
        running.close()


def run_child(data_dir: Path, mode: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tests.reports.crash_child", str(data_dir), mode],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def next_start(data_dir: Path, server: EnvelopeServer) -> None:
    """The app starts again: captures errors (harvesting crash files) and sends."""
    with telemetry.create_client(
        "crash-test", "crash-app", "9.9.9", server.url, data_dir=data_dir
    ) as client:
        client.capture_errors(app_root=ROOT)
        assert client.flush(30)


def test_an_uncaught_exception_then_sigkill_is_delivered_by_the_next_start_once(
    data_dir: Path, server: EnvelopeServer
):
    child = run_child(data_dir, "uncaught")
    assert child.returncode == -signal.SIGKILL, child.stderr
    assert "the image could not be verified" in child.stderr  # Python's own hook still ran
    next_start(data_dir, server)
    next_start(data_dir, server)  # and again: nothing more
    [report] = server.reports()
    [value] = report["exception"]["values"]
    assert value["type"] == "RuntimeError"
    assert value["mechanism"] == {"type": "excepthook", "handled": False}
    assert report["level"] == "fatal"
    frames = value["stacktrace"]["frames"]
    assert frames[-1]["function"] == "fail_in_app_code"
    assert frames[-1]["filename"] == "tests/reports/crash_child.py"
    assert frames[-1]["in_app"] is True
    assert [b["message"] for b in report["breadcrumbs"]["values"]][-1] == "Before the crash"


def test_a_segfault_is_delivered_by_the_next_start_with_the_faulting_stack(
    data_dir: Path, server: EnvelopeServer
):
    child = run_child(data_dir, "segfault")
    assert child.returncode == -signal.SIGSEGV, child.stderr
    assert list((data_dir / "crashes").glob("*.fault")), "the fault file was not left behind"
    next_start(data_dir, server)
    next_start(data_dir, server)
    [report] = server.reports()
    [value] = report["exception"]["values"]
    assert value["type"] == "Segmentation fault"
    assert value["mechanism"] == {"type": "faulthandler", "handled": False}
    assert report["level"] == "fatal"
    functions = [f["function"] for f in value["stacktrace"]["frames"]]
    assert functions[-3:] == ["main", "crash_in_native_code", "string_at"]
    for frame in value["stacktrace"]["frames"]:
        assert not Path(frame["filename"]).is_absolute()
    assert not list((data_dir / "crashes").glob("*.fault"))


def test_a_segfault_while_off_leaves_nothing_and_sends_nothing(
    data_dir: Path, server: EnvelopeServer
):
    """Found by an outside audit: with telemetry off, ``capture_errors()`` still opened a
    fault file, so a crash wrote every thread's stack (absolute paths included) to disk, and a
    later start with telemetry on sent it. Nothing is written while off."""
    child = run_child(data_dir, "segfault-off")
    assert child.returncode == -signal.SIGSEGV, child.stderr
    assert list((data_dir / "crashes").glob("*.fault")) == []
    with telemetry.create_client(
        "crash-test", "crash-app", "9.9.9", server.url, data_dir=data_dir
    ) as client:
        client.set_consent(True)
        client.capture_errors(app_root=ROOT)
        assert client.flush(30)
    assert server.reports() == []


def test_turning_off_removes_the_fault_file_and_deletes_crashes_left_unread(
    data_dir: Path, server: EnvelopeServer
):
    """A crash left while on, then the user turns telemetry off before the next start sends
    it: the crash file is deleted unread (not counted either), and this process keeps no fault
    file while off; turning back on opens one again."""
    child = run_child(data_dir, "segfault")
    assert child.returncode == -signal.SIGSEGV, child.stderr
    assert len(list((data_dir / "crashes").glob("*.fault"))) == 1
    with telemetry.create_client(
        "crash-test", "crash-app", "9.9.9", server.url, data_dir=data_dir
    ) as client:
        client.set_consent(False)
        client.capture_errors(app_root=ROOT)
        assert list((data_dir / "crashes").glob("*.fault")) == []
        assert "native_crashes_found" not in client.status()["counters"]
        client.set_consent(True)
        assert len(list((data_dir / "crashes").glob("*.fault"))) == 1  # this process's own
        client.set_consent(False)
        assert list((data_dir / "crashes").glob("*.fault")) == []
        client.set_consent(True)
        assert client.flush(30)
    assert server.reports() == []


def test_a_clean_exit_leaves_no_crash_file(data_dir: Path, server: EnvelopeServer):
    with telemetry.create_client(
        "crash-test", "crash-app", "9.9.9", server.url, data_dir=data_dir
    ) as client:
        client.capture_errors()
        assert len(list((data_dir / "crashes").glob("*.fault"))) == 1
    assert not list((data_dir / "crashes").glob("*.fault"))
    assert server.reports() == []
