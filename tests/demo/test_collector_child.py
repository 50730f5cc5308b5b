"""The demo's collector child dies with the demo, however the demo ends: real processes (the
demo, or ``collector_parent.py`` playing it), a real collector child, polled until it is gone."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import psutil
import pytest

from telemetry.collector import stored_events

REPO = Path(__file__).resolve().parents[2]
#: How long the child may outlive the demo.
GONE_WITHIN = 15.0
#: Bound on every wait for the demo's own progress (start-up on a loaded machine).
STARTUP = 90.0


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie, waiting for a reaper that may never come, is gone)."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _wait_until(predicate: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


class Parent:
    """A process playing the demo; its stdout lines are read on a thread."""

    def __init__(self, argv: list[str], database: Path, log: Path) -> None:
        env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1"}
        env.pop("DO_NOT_TRACK", None)
        self.database = database
        self.log = log
        self.stderr_path = database.parent.parent / "parent.stderr"
        self.stderr_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.stderr_path, "wb") as stderr:
            self.proc = subprocess.Popen(
                [sys.executable, *argv],
                cwd=REPO,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=stderr,
                text=True,
            )
        self.child_pid: int | None = None
        self._lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._lines.put(line.rstrip("\n"))
        self._lines.put(None)

    def wait_line(self, prefix: str, timeout: float = STARTUP) -> str:
        """The first stdout line starting with ``prefix`` (bounded wait)."""
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                line = self._lines.get(timeout=left)
            except queue.Empty:
                break
            if line is None:
                break
            if line.startswith(prefix):
                return line
        raise AssertionError(f"no line {prefix!r}; stderr:\n{self.stderr()}")

    def find_child(self) -> int:
        """The collector child's pid: the parent's child process serving ``database``."""
        for child in psutil.Process(self.proc.pid).children():
            try:
                if str(self.database) in " ".join(child.cmdline()):
                    self.child_pid = child.pid
                    return child.pid
            except psutil.NoSuchProcess:
                continue
        raise AssertionError(f"no collector child; stderr:\n{self.stderr()}")

    def stderr(self) -> str:
        return self.stderr_path.read_text(encoding="utf-8", errors="replace")[-4000:]

    def collector_log(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")


@pytest.fixture
def start_parent(tmp_path: Path) -> Iterator[Callable[[list[str]], Parent]]:
    """Start processes playing the demo; any still running at the end (parent or collector
    child) is killed."""
    started: list[Parent] = []

    def start(args: list[str]) -> Parent:
        root = tmp_path / f"p{len(started)}"
        database = root / "collector" / "collector.db"
        argv = [a.replace("{root}", str(root)).replace("{db}", str(database)) for a in args]
        parent = Parent(argv, database, database.with_suffix(".log"))
        started.append(parent)
        return parent

    yield start
    for parent in started:
        if parent.proc.poll() is None:
            parent.proc.kill()
        parent.proc.wait(30)
        pid = parent.child_pid
        if pid is not None and _alive(pid):
            with_database = str(parent.database) in " ".join(psutil.Process(pid).cmdline())
            if with_database:  # not a reused pid
                os.kill(pid, signal.SIGKILL)


def _start_demo(start_parent: Callable[[list[str]], Parent]) -> tuple[Parent, int]:
    demo = start_parent(["-m", "demo_app", "--data-dir", "{root}"])
    demo.wait_line("demo: local collector on ")
    return demo, demo.find_child()


def _assert_stopped_gracefully(parent: Parent, child: int) -> None:
    assert _wait_until(lambda: not _alive(child), GONE_WITHIN), (
        f"the collector child {child} outlived the demo\n{parent.collector_log()[-2000:]}"
    )
    log = parent.collector_log()
    assert '"collector stopped"' in log, log[-2000:]
    stored_events(parent.database)  # the database is whole


def test_sigkill_of_the_demo_stops_the_collector_child(
    start_parent: Callable[[list[str]], Parent],
) -> None:
    demo, child = _start_demo(start_parent)
    demo.wait_line("demo: window open")
    demo.proc.kill()
    assert demo.proc.wait(30) == -signal.SIGKILL
    _assert_stopped_gracefully(demo, child)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_sigterm_or_sigint_ends_the_demo_cleanly_and_stops_the_child(
    start_parent: Callable[[list[str]], Parent], signum: signal.Signals
) -> None:
    demo, child = _start_demo(start_parent)
    demo.wait_line("demo: window open")
    demo.proc.send_signal(signum)
    # The demo's own clean-up ran (exit code 128 + signal, not death by the signal).
    assert demo.proc.wait(30) == 128 + signum, demo.stderr()
    _assert_stopped_gracefully(demo, child)


def test_sigterm_while_the_demo_starts_ends_it_cleanly(
    start_parent: Callable[[list[str]], Parent],
) -> None:
    demo, child = _start_demo(start_parent)
    demo.proc.terminate()  # before its window is up, perhaps before Qt is
    assert demo.proc.wait(30) == 128 + signal.SIGTERM, demo.stderr()
    _assert_stopped_gracefully(demo, child)


def test_an_unhandled_exception_in_the_demo_stops_the_child(
    start_parent: Callable[[list[str]], Parent],
) -> None:
    parent = start_parent(["tests/demo/collector_parent.py", "raise", "{db}"])
    parent.wait_line("child ")
    child = parent.find_child()
    assert parent.proc.wait(30) == 1
    assert "RuntimeError: the demo crashed" in parent.stderr()
    _assert_stopped_gracefully(parent, child)


def test_a_normal_exit_of_the_demo_stops_the_child(
    start_parent: Callable[[list[str]], Parent],
) -> None:
    parent = start_parent(["tests/demo/collector_parent.py", "exit", "{db}"])
    parent.wait_line("child ")
    child = parent.find_child()
    assert parent.proc.wait(30) == 0
    _assert_stopped_gracefully(parent, child)


def test_the_stdin_pipe_alone_stops_the_child(
    start_parent: Callable[[list[str]], Parent],
) -> None:
    """Started from a worker thread, the child gets no Linux death signal (it would fire when
    that thread ends): it outlives the thread, and the pipe alone stops it with the demo."""
    parent = start_parent(["tests/demo/collector_parent.py", "thread-wait", "{db}"])
    url = parent.wait_line("child ").split()[2]
    child = parent.find_child()
    cmdline = psutil.Process(child).cmdline()
    assert "--parent" in cmdline and "--death-signal" not in cmdline
    assert httpx.get(f"{url}/healthz", timeout=10).status_code == 200
    parent.proc.kill()
    assert parent.proc.wait(30) == -signal.SIGKILL
    _assert_stopped_gracefully(parent, child)


def test_a_child_whose_demo_is_already_gone_exits_at_once(tmp_path: Path) -> None:
    """The race the death signal leaves open: the demo died before the child asked for it."""
    database = tmp_path / "c.db"
    not_the_parent = psutil.Process(os.getpid()).ppid()
    proc = subprocess.run(
        [sys.executable, "-m", "demo_app", "--collector-child", "--parent", str(not_the_parent),
         "--death-signal", "--host", "127.0.0.1", "--port", "0", "--database", str(database)],
        cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, input="", capture_output=True,
        text=True, timeout=60, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "the demo is already gone" in proc.stderr
    assert not database.exists()


def test_the_child_serves_while_the_demo_lives(
    start_parent: Callable[[list[str]], Parent],
) -> None:
    demo = start_parent(["-m", "demo_app", "--data-dir", "{root}"])
    line = demo.wait_line("demo: local collector on ")
    url = line.split()[4]
    demo.wait_line("demo: window open")
    assert httpx.get(f"{url}/healthz", timeout=10).status_code == 200
    assert f"(pid {demo.find_child()}," in line
