"""Tests of the collector as a real child process (``python -m telemetry.collector``)."""

from __future__ import annotations

import json
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import zlib
from pathlib import Path

import httpx
import psutil
import pytest

from telemetry.collector import SCHEMA_VERSION
from tests.collector_process import CollectorProcess

from ._support import batch, event, post

MiB = 1024 * 1024


def test_stop_and_start_again_on_the_same_port_keeps_rows(tmp_path: Path) -> None:
    database = tmp_path / "collector.db"
    with CollectorProcess(database) as collector:
        url = collector.url
        assert url == f"http://127.0.0.1:{collector.port}"
        assert post(url, batch([event(i) for i in range(10)])).status_code == 200
        assert len(collector.rows()) == 10

        assert collector.stop() == 0
        assert not collector.running
        with pytest.raises(httpx.ConnectError):
            post(url, batch([event(99)]))
        assert len(collector.rows()) == 10

        collector.start()
        assert collector.url == url
        response = post(url, batch([event(i) for i in range(5, 15)]))
        assert response.status_code == 200
        assert response.json()["duplicates"] == 5
        stored = collector.rows()
        assert [json.loads(r["event"])["event_type"] for r in stored] == [
            f"Test Event {i}" for i in range(15)
        ]
    assert collector.returncode == 0
    assert collector.stdout.splitlines() == [f"listening on {url}"] * 2


def test_acknowledged_events_survive_a_crash(tmp_path: Path) -> None:
    # One process: SIGKILL must hit the process that committed (a worker outlives its parent's
    # SIGKILL for up to half a second, see test_workers).
    with CollectorProcess(tmp_path / "c.db", extra_args=["--workers", "1"]) as collector:
        assert post(collector.url, batch([event(i) for i in range(30)])).status_code == 200
        assert collector.kill() == -signal.SIGKILL
        collector.start()
        assert len(collector.rows()) == 30
        assert post(collector.url, batch([event(0)])).json()["duplicates"] == 1


def test_client_ip_is_stored_nowhere(tmp_path: Path) -> None:
    database = tmp_path / "c.db"
    with CollectorProcess(database) as collector:
        spoofed = {"X-Forwarded-For": "198.51.100.23", "X-Real-IP": "198.51.100.23"}
        ok = post(collector.url, batch([event(i) for i in range(5)]), headers=spoofed)
        assert ok.status_code == 200
        with_ip = batch([event(10, ip="198.51.100.24"), event(11, ip="127.0.0.1")])
        assert post(collector.url, with_ip, gzipped=True).status_code == 200
        assert post(collector.url, batch([event(20, device_id="nil")])).status_code == 400
        assert post(collector.url, b"{broken").status_code == 400
        assert httpx.get(f"{collector.url}/healthz", timeout=10).status_code == 200
        assert httpx.get(f"{collector.url}/nowhere", timeout=10).status_code == 404
        assert len(collector.rows()) == 7
    assert collector.returncode == 0

    stored_files = [p for p in tmp_path.iterdir() if p.name.startswith("c.db")]
    assert stored_files
    for path in stored_files:
        content = path.read_bytes()
        for address in (b"127.0.0.1", b"198.51.100.23", b"198.51.100.24"):
            assert address not in content, f"{address!r} found in {path.name}"
    logs = collector.stderr
    assert "Application startup complete" in logs  # the logs were captured
    for text in ("127.0.0.1", "198.51.100."):
        assert text not in logs
    # stdout holds only the collector's own listening address.
    assert collector.stdout.splitlines() == [f"listening on {collector.url}"]


def _peak_rss(process: psutil.Process) -> int | None:
    """Peak resident set size (Linux VmHWM), or None where unavailable."""
    try:
        status = Path(f"/proc/{process.pid}/status").read_text()
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return None


def test_gzip_bomb_is_refused_without_inflating_it(tmp_path: Path) -> None:
    compressor = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    bomb = b"".join(compressor.compress(bytes(MiB)) for _ in range(50)) + compressor.flush()
    assert len(bomb) < 100_000  # 50 MiB of zeros

    # One process: its memory is the one that would inflate the bomb.
    with CollectorProcess(tmp_path / "c.db", extra_args=["--workers", "1"]) as collector:
        assert collector.pid is not None
        process = psutil.Process(collector.pid)
        warm_up = post(collector.url, batch([event(i) for i in range(50)]), gzipped=True)
        assert warm_up.status_code == 200
        rss_before = process.memory_info().rss

        started = time.monotonic()
        for _ in range(3):
            response = post(collector.url, bomb, headers={"Content-Encoding": "gzip"})
            assert response.status_code == 413
            assert response.json() == {"code": 413, "error": "Payload too large"}
        # Memory is what proves it was not inflated; the time is printed (bench/ measures).
        print(f"3 bombs refused in {time.monotonic() - started:.2f} s")

        growth = process.memory_info().rss - rss_before
        assert growth < 30 * MiB, f"RSS grew by {growth / MiB:.1f} MiB"
        peak = _peak_rss(process)
        if peak is not None:
            assert peak - rss_before < 30 * MiB, f"peak RSS {peak / MiB:.1f} MiB"
        assert httpx.get(f"{collector.url}/healthz", timeout=10).status_code == 200
        assert len(collector.rows()) == 50


def test_unusable_database_exits_with_code_1(tmp_path: Path) -> None:
    collector = CollectorProcess(tmp_path / "no-such-dir" / "c.db")
    with pytest.raises(RuntimeError, match="did not become ready"):
        collector.start(timeout=60)  # ends as soon as the child exits
    assert collector.returncode == 1
    assert "cannot open database" in collector.stderr or "cannot prepare" in collector.stderr


def test_port_in_use_exits_with_code_4(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "telemetry.collector",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--database",
                str(tmp_path / "c.db"),
            ],
            capture_output=True,
            text=True,
            timeout=30,
        )
    assert result.returncode == 4
    assert result.stdout == ""


def test_cli_sigint_stops_gracefully_and_ready_file_has_url(tmp_path: Path) -> None:
    ready = tmp_path / "ready.txt"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "telemetry.collector",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--database",
            str(tmp_path / "c.db"),
            "--ready-file",
            str(ready),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()  # bounded by the pytest timeout; the line comes first
        assert line.startswith("listening on http://127.0.0.1:")
        url = line.removeprefix("listening on ").strip()
        assert ready.read_text() == url + "\n"
        assert httpx.get(f"{url}/healthz", timeout=10).json() == {"status": "ok"}
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=15)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    assert proc.returncode == 0, err
    assert out == ""
    assert "Traceback" not in err
    conn = sqlite3.connect(tmp_path / "c.db")
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    conn.close()
