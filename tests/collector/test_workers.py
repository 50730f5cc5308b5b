"""``--workers N``: several collector processes on one port, as a real child process tree.

Every event is stored exactly once whichever worker takes it, and forwarded exactly once;
SIGTERM stops every worker (exit 0, no orphan); a worker that dies is replaced; workers whose
parent is killed stop by themselves."""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path

import httpx

from tests.collector_process import CollectorProcess

from ._amplitude_fake import fake_amplitude
from ._reports_support import wait_until
from ._support import PROJECT, batch, event, post

TOKEN = "prd-8b7e6d5c4b3a29181716"


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
