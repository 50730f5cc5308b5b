"""``--workers N``: several collector processes on one port, as a real child process tree.

Every event is stored exactly once whichever worker takes it, and forwarded exactly once;
SIGTERM stops every worker (exit 0, no orphan); a worker that dies is replaced; workers whose
parent is killed stop by themselves. A device's rate limit answers as one process would, and
``/metrics`` from any worker counts every worker's requests, also after a worker was killed.
Requests go on fresh connections (``post``), which the kernel spreads over the workers."""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable
from pathlib import Path

import httpx

from tests.collector_process import CollectorProcess

from ._amplitude_fake import fake_amplitude
from ._reports_support import metric, wait_until
from ._support import PROJECT, batch, event, post

TOKEN = "prd-8b7e6d5c4b3a29181716"
OK_REQUESTS = 'collector_requests_total{status="200"}'


def _rate_limited_config(tmp_path: Path, burst: int) -> Path:
    """A configuration giving each device ``burst`` events, refilled too slowly to matter."""
    config = tmp_path / "collector.toml"
    config.write_text(
        f"[rate_limit]\ndevice_events_per_second = 0.001\ndevice_burst_events = {burst}\n"
    )
    return config


def _in_threads(count: int, target: Callable[[int], None]) -> None:
    threads = [threading.Thread(target=target, args=(k,)) for k in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)


def _children(pid: int) -> list[int]:
    """The child processes of ``pid`` (Linux ``/proc``)."""
    found: list[int] = []
    for task in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{task}/children", encoding="ascii") as handle:
            found += [int(p) for p in handle.read().split()]
    return found


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie waiting for its reaper counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as handle:
            state = handle.read().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state not in ("Z", "X")


def test_workers_share_the_port_and_store_each_event_once(tmp_path: Path) -> None:
    with CollectorProcess(tmp_path / "c.db", extra_args=["--workers", "3"]) as collector:
        assert collector.pid is not None
        workers = _children(collector.pid)
        assert len(workers) == 3
        answers: list[int] = []

        def send(start: int) -> None:
            # A new connection per request: the kernel spreads them over the workers. Every
            # sender also resends the first batch, which must be stored once.
            for n in range(start, start + 10):
                for body in (
                    batch([event(i) for i in range(n * 20, n * 20 + 20)]),
                    batch([event(0)]),
                ):
                    answers.append(post(collector.url, body).status_code)

        senders = [threading.Thread(target=send, args=(k * 10,)) for k in range(4)]
        for thread in senders:
            thread.start()
        for thread in senders:
            thread.join()
        assert answers == [200] * 80
        ids = [row["insert_id"] for row in collector.rows()]
        assert sorted(ids) == sorted({event(i)["insert_id"] for i in range(800)})
        assert collector.stop() == 0
    assert not any(_alive(pid) for pid in workers)


def test_each_event_is_forwarded_once_with_workers(tmp_path: Path) -> None:
    with fake_amplitude() as fake:
        config = tmp_path / "collector.toml"
        config.write_text(
            f'[forwarding]\nurl = "{fake.url}"\n\n[projects.{PROJECT}]\nproduction = "{TOKEN}"\n'
        )
        args = ["--config", str(config), "--forward-interval", "0.05", "--workers", "2"]
        with CollectorProcess(tmp_path / "c.db", extra_args=args) as collector:
            for n in range(10):
                answer = post(collector.url, batch([event(i) for i in range(n * 30, n * 30 + 30)]))
                assert answer.status_code == 200
            wait_until(lambda: len(fake.delivered()) >= 300)
            wait_until(lambda: httpx.get(collector.url + "/metrics", timeout=10).is_success)
        # Stopped: nothing more can come. Each event arrived exactly once.
        assert sorted(fake.delivered()) == sorted(event(i)["insert_id"] for i in range(300))


def test_workers_stop_when_their_parent_is_killed(tmp_path: Path) -> None:
    collector = CollectorProcess(tmp_path / "c.db", extra_args=["--workers", "2"]).start()
    try:
        assert collector.pid is not None
        workers = _children(collector.pid)
        assert len(workers) == 2
        os.kill(collector.pid, signal.SIGKILL)
        wait_until(lambda: not any(_alive(pid) for pid in workers), timeout=30)
    finally:
        collector.kill()


def test_a_worker_that_dies_is_replaced(tmp_path: Path) -> None:
    with CollectorProcess(tmp_path / "c.db", extra_args=["--workers", "2"]) as collector:
        assert collector.pid is not None
        parent = collector.pid
        first = _children(parent)
        os.kill(first[0], signal.SIGKILL)
        wait_until(lambda: len(set(_children(parent)) - set(first)) == 1, timeout=30)
        wait_until(lambda: len(_children(parent)) == 2, timeout=30)
        for n in range(6):  # new connections: some reach the new worker
            assert post(collector.url, batch([event(n)])).status_code == 200
        assert len(collector.rows()) == 6
        assert collector.stop() == 0


def test_a_device_gets_its_burst_and_no_more_whichever_worker_answers(tmp_path: Path) -> None:
    """One process would accept the burst (40 events) and refuse the rest: so do 2 workers,
    although the requests (one event each, 4 senders) reach both."""
    args = ["--config", str(_rate_limited_config(tmp_path, 40)), "--workers", "2"]
    with CollectorProcess(tmp_path / "c.db", extra_args=args) as collector:
        answers: list[int] = []

        def send(k: int) -> None:
            for i in range(k * 20, k * 20 + 20):
                answers.append(post(collector.url, batch([event(i)])).status_code)

        _in_threads(4, send)
        assert sorted(answers) == [200] * 40 + [429] * 40
        assert len(collector.rows()) == 40
        later = [post(collector.url, batch([event(100 + i)])).status_code for i in range(6)]
        assert later == [429] * 6


def test_metrics_from_any_worker_count_every_request(tmp_path: Path) -> None:
    with CollectorProcess(tmp_path / "c.db", extra_args=["--workers", "2"]) as collector:

        def send(k: int) -> None:
            for n in range(k * 10, k * 10 + 10):  # 3 events per batch
                answer = post(collector.url, batch([event(3 * n + j) for j in range(3)]))
                assert answer.status_code == 200
            assert post(collector.url, b"{broken").status_code == 400

        _in_threads(3, send)
        for _ in range(8):  # new connections: both workers answer some of them
            text = httpx.get(collector.url + "/metrics", timeout=10).text
            assert f"{OK_REQUESTS} 30\n" in text
            assert 'collector_requests_total{status="400"} 3\n' in text
            assert "collector_events_accepted_total 90\n" in text
            assert 'collector_ingest_latency_seconds_bucket{le="+Inf"} 33\n' in text
            assert "collector_ingest_latency_seconds_count 33\n" in text


def test_a_worker_killed_amid_requests_leaves_limits_and_metrics_working(tmp_path: Path) -> None:
    """SIGKILL a worker while 3 senders post: the other answers, the replacement shares the
    limits (a device still gets exactly its burst) and continues the killed worker's counts."""
    burst = 25
    args = ["--config", str(_rate_limited_config(tmp_path, burst)), "--workers", "2"]
    with CollectorProcess(tmp_path / "c.db", extra_args=args) as collector:
        assert collector.pid is not None
        parent, url = collector.pid, collector.url
        first = _children(parent)
        answers: list[int] = []
        failed: list[str] = []

        def send(k: int) -> None:
            for n in range(40):  # a device per request: none is throttled
                body = batch([event(k * 1000 + n, device_id=f"device-flow-{k}-{n}")])
                try:
                    answers.append(post(url, body).status_code)
                except httpx.TransportError as exc:  # in flight on the killed worker
                    failed.append(repr(exc))

        senders = threading.Thread(target=_in_threads, args=(3, send))
        senders.start()
        wait_until(lambda: len(answers) >= 20)
        before = metric(url, OK_REQUESTS)
        os.kill(first[0], signal.SIGKILL)
        senders.join(120)
        assert answers == [200] * len(answers)
        assert len(failed) <= 3, failed  # at most each sender's request in flight
        wait_until(lambda: len(set(_children(parent)) - set(first)) == 1, timeout=30)
        wait_until(lambda: len(_children(parent)) == 2, timeout=30)

        device = "device-after-the-kill"
        after = [
            post(url, batch([event(5000 + i, device_id=device)])).status_code for i in range(35)
        ]
        assert after == [200] * burst + [429] * 10
        sent = len(answers) + burst
        for _ in range(8):
            counted = metric(url, OK_REQUESTS)
            # The killed worker may have counted a request whose answer it could not send.
            assert before <= sent <= counted <= sent + len(failed)
        assert collector.stop() == 0
