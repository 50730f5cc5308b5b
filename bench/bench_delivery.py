"""Benchmark (not a test): drain a 20,000-event backlog into a local collector.

Queues the backlog with uploads off (as an app that was offline), then starts a client on the
same data dir and times the start-up replay into the collector, run as a real child process
on 127.0.0.1 (its CPU is not counted). Prints, for each policy:

* the time from the client's start to the last batch acknowledged;
* bytes sent per event: the gzip request body, the JSON before compression, and the HTTP
  request head (request line and headers as httpx sends them);
* the client's CPU seconds (this process, every thread) per 1,000 events delivered.

Policies: the default one, whose 15 requests a minute make a 40-batch backlog take two
minutes, and the same with the per-minute cap lifted (the raw cost). ``--quick`` runs only
the latter.

    uv run python bench/bench_delivery.py [--events 20000] [--quick]
"""

from __future__ import annotations

import argparse
import gzip
import logging
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import telemetry
from telemetry import transport
from telemetry._delivery import Uploader
from tests.collector_process import CollectorProcess

PROPS = {"driveCount": 1, "status": "started", "image": {"extension": "img", "size": 1048576}}


@dataclass
class Result:
    policy: str
    events: int
    requests: int
    drain_s: float
    gzip_bytes: int
    json_bytes: int
    head_bytes: int
    cpu_s: float


@contextmanager
def recording() -> Iterator[dict[str, Any]]:
    """Record each request body and when the last 2xx came back; signal when idle."""
    seen: dict[str, Any] = {"bodies": [], "last_ok": 0.0, "idle": threading.Event()}
    post, go_idle = transport.HttpTransport.post, Uploader._go_idle

    def recorded_post(
        self: transport.HttpTransport, url: str, body: bytes, **kw: Any
    ) -> transport.Response:
        response = post(self, url, body, **kw)
        seen["bodies"].append(body)
        if 200 <= response.status < 300:
            seen["last_ok"] = time.perf_counter()
        return response

    def recorded_idle(self: Uploader, now: float, seen: tuple[int, int], **kw: Any) -> str:
        outcome = go_idle(self, now, seen, **kw)
        seen["idle"].set()
        return outcome

    transport.HttpTransport.post = recorded_post  # type: ignore[method-assign]
    Uploader._go_idle = recorded_idle  # type: ignore[method-assign]
    try:
        yield seen
    finally:
        transport.HttpTransport.post = post  # type: ignore[method-assign]
        Uploader._go_idle = go_idle  # type: ignore[method-assign]


def request_head_bytes(url: str, body_size: int) -> int:
    """Size of the request line and headers the uploader's HTTP transport sends for one
    upload."""
    with transport.HttpTransport()._new_client() as c:
        request = c.build_request(
            "POST",
            url,
            content=b"x" * body_size,
            headers={"Content-Type": "application/json", "Content-Encoding": "gzip"},
        )
    head = f"POST {request.url.raw_path.decode()} HTTP/1.1\r\n"
    head += "".join(f"{k.decode()}: {v.decode()}\r\n" for k, v in request.headers.raw)
    return len((head + "\r\n").encode())


def run(label: str, policy: telemetry.UploadPolicy, events: int, workdir: Path) -> Result:
    data_dir = workdir / label.replace(" ", "-") / "client"
    with telemetry.create_client("bench", "bench-app", "1.0", data_dir=data_dir, upload=False) as c:
        for i in range(events):
            c.track("Flash", {**PROPS, "i": i})
        c._store.enforce_limits()
        queued = c._store.stats().events
    collector = CollectorProcess(data_dir.parent / "collector.db").start()
    try:
        with recording() as seen:
            cpu0, t0 = time.process_time(), time.perf_counter()
            client = telemetry.create_client(
                "bench", "bench-app", "1.0", collector.url, data_dir=data_dir, upload_policy=policy
            )
            if not seen["idle"].wait(900):
                raise RuntimeError(f"{label}: backlog not drained within 15 minutes")
            cpu = time.process_time() - cpu0
            drain = seen["last_ok"] - t0
            delivered = client._store.counters().get("sent_events", 0)
            client.close()
        stored = len(collector.rows())
    finally:
        collector.stop()
    if delivered != queued or stored != queued:
        raise RuntimeError(f"{label}: {queued} queued, {delivered} delivered, {stored} stored")
    bodies: list[bytes] = seen["bodies"]
    return Result(
        policy=label,
        events=delivered,
        requests=len(bodies),
        drain_s=drain,
        gzip_bytes=sum(len(b) for b in bodies),
        json_bytes=sum(len(gzip.decompress(b)) for b in bodies),
        head_bytes=sum(request_head_bytes(client.endpoint_url, len(b)) for b in bodies),
        cpu_s=cpu,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--quick", action="store_true", help="skip the rate-limited run")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    runs = [("cap lifted", telemetry.UploadPolicy(max_requests_per_minute=1_000_000))]
    if not args.quick:
        runs.append(("default policy", telemetry.UploadPolicy()))
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for label, policy in runs:
            results.append(run(label, policy, args.events, Path(tmp)))
    print(f"Draining a {args.events:,}-event backlog into the collector (child process, loopback)")
    print(
        f"{'policy':<16}{'events':>8}{'requests':>10}{'drain s':>9}{'gzip B/ev':>11}"
        f"{'JSON B/ev':>11}{'head B/ev':>11}{'CPU s/1k ev':>13}"
    )
    for r in results:
        print(
            f"{r.policy:<16}{r.events:>8}{r.requests:>10}{r.drain_s:>9.2f}"
            f"{r.gzip_bytes / r.events:>11.1f}{r.json_bytes / r.events:>11.1f}"
            f"{r.head_bytes / r.events:>11.2f}{r.cpu_s / r.events * 1000:>13.4f}"
        )
    print(
        "drain s: client start to the last batch acknowledged; CPU: this process, all threads"
        " (the collector runs in its own process)"
    )


if __name__ == "__main__":
    main()
