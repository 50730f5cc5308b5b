"""DriveMonitor's debouncing, diffing, safety-net re-scan and shutdown, with fake sources."""

from __future__ import annotations

import dataclasses
import os
import threading
import time
from collections.abc import Callable

import pytest

from telemetry.drives import Drive, DriveEvent, DriveMonitor

from .test_classify import make_drive


class FakeSource:
    """An event source backed by a pipe, fed by the test."""

    def __init__(self) -> None:
        self.r, self.w = os.pipe()
        self.pending: list[tuple[str, str, str]] = []
        self.lock = threading.Lock()
        self.closed = False

    def push(self, *events: tuple[str, str, str]) -> None:
        with self.lock:
            self.pending.extend(events)
        os.write(self.w, b"e")

    def filenos(self) -> tuple[int, ...]:
        return (self.r,)

    def read_pending(self) -> list[tuple[str, str, str]]:
        os.read(self.r, 4096)
        with self.lock:
            out, self.pending = self.pending, []
        return out

    def close(self) -> None:
        self.closed = True
        os.close(self.r)
        os.close(self.w)


class Lister:
    def __init__(self, drives: list[Drive]) -> None:
        self.drives = list(drives)
        self.calls = 0
        self.fail = False

    def __call__(self) -> list[Drive]:
        self.calls += 1
        if self.fail:
            raise OSError("sysfs went away")
        return list(self.drives)


class Recorder:
    def __init__(self) -> None:
        self.events: list[DriveEvent] = []
        self.cond = threading.Condition()
        self.threads: set[str] = set()

    def __call__(self, event: DriveEvent) -> None:
        with self.cond:
            self.events.append(event)
            self.threads.add(threading.current_thread().name)
            self.cond.notify_all()

    def wait(self, pred: Callable[[list[DriveEvent]], bool], timeout: float = 15.0) -> bool:
        with self.cond:
            return self.cond.wait_for(lambda: pred(self.events), timeout)


STICK = make_drive("/dev/sdb", drive_type="usb-flash", size=8_000_000_000)
READER_EMPTY = make_drive("/dev/sdf", drive_type="usb-card-reader", size=0)
READER_CARD = dataclasses.replace(READER_EMPTY, size=32_000_000_000, has_media=True)
NVME = make_drive("/dev/nvme0n1", drive_type="nvme", size=500_000_000_000, is_system=True)


@pytest.fixture
def parts() -> tuple[FakeSource, Lister, Recorder]:
    return FakeSource(), Lister([NVME]), Recorder()


def _monitor(
    parts: tuple[FakeSource, Lister, Recorder], **kw: float
) -> tuple[DriveMonitor, FakeSource, Lister, Recorder]:
    source, lister, rec = parts
    mon = DriveMonitor(rec, lister=lister, event_source=lambda: source, **kw)
    return mon, source, lister, rec


def test_initial_drives_are_a_snapshot_not_events(
    parts: tuple[FakeSource, Lister, Recorder],
) -> None:
    mon, _source, _lister, rec = _monitor(parts)
    mon.start()
    try:
        assert [d.device for d in mon.drives] == ["/dev/nvme0n1"]
        assert mon.has_event_source
        time.sleep(0.3)
        assert rec.events == []
    finally:
        assert mon.stop(timeout=15.0)


def test_attach_change_remove_with_debounce(parts: tuple[FakeSource, Lister, Recorder]) -> None:
    mon, source, lister, rec = _monitor(parts, debounce=0.1)
    mon.start()
    try:
        calls = lister.calls
        lister.drives = [NVME, STICK]
        # a burst of uevents (usb device, interface, scsi, disk, partition) ...
        source.push(*[("add", "sdb", "disk")] * 3, ("add", "sdb", "partition"))
        assert rec.wait(lambda ev: len(ev) >= 1)
        assert [(e.action, e.device) for e in rec.events] == [("attached", "/dev/sdb")]
        assert lister.calls - calls == 1  # ... is answered by one scan
        # card inserted: the same device changes
        lister.drives = [NVME, STICK, READER_EMPTY]
        source.push(("add", "sdf", "disk"))
        assert rec.wait(lambda ev: len(ev) >= 2)
        lister.drives = [NVME, STICK, READER_CARD]
        source.push(("change", "sdf", "disk"))
        assert rec.wait(lambda ev: len(ev) >= 3)
        change = rec.events[2]
        assert change.action == "changed"
        assert change.previous == READER_EMPTY
        assert change.drive == READER_CARD
        # unplugged: the remove uevent counts even if sysfs still lists the disk (race)
        source.push(("remove", "sdb", "partition"), ("remove", "sdb", "disk"))
        assert rec.wait(lambda ev: len(ev) >= 4)
        assert (rec.events[3].action, rec.events[3].device) == ("removed", "/dev/sdb")
        assert rec.events[3].drive == STICK
        assert rec.threads == {"telemetry-drives-monitor"}
    finally:
        assert mon.stop(timeout=15.0)
    assert source.closed


def test_events_arrive_after_the_debounce_delay(
    parts: tuple[FakeSource, Lister, Recorder],
) -> None:
    """The scan waits out the debounce, then comes on its own (the periodic re-scan is 30 s
    away, beyond the wait). Only the lower bound is asserted: a loaded machine can only make
    the event later; the latency itself is printed (timings belong to bench/)."""
    mon, source, lister, rec = _monitor(parts, debounce=0.2)
    mon.start()
    try:
        lister.drives = [NVME, STICK]
        t0 = time.monotonic()
        source.push(("add", "sdb", "disk"))
        assert rec.wait(lambda ev: len(ev) >= 1)
        elapsed = time.monotonic() - t0
        print(f"event {elapsed * 1000:.0f} ms after the uevent (debounce 200 ms)")
        assert elapsed >= 0.15
    finally:
        mon.stop(timeout=15.0)


def test_a_steady_stream_of_events_does_not_starve_the_scan(
    parts: tuple[FakeSource, Lister, Recorder],
) -> None:
    """Uevents every 50 ms with a 5 s debounce: each one pushes the debounce deadline further,
    so only the cap on the total delay lets the scan happen (a 20 ms pause here cannot end a
    5 s debounce, however loaded the machine). The periodic re-scan is 30 s away, beyond the
    stream's 20 s bound. The delay is printed, not asserted (timings belong to bench/)."""
    mon, source, lister, rec = _monitor(parts, debounce=5.0)
    mon.start()
    try:
        lister.drives = [NVME, STICK]
        t0 = time.monotonic()
        stop = time.monotonic() + 20
        while time.monotonic() < stop and not rec.events:
            source.push(("change", "sdb", "disk"))
            time.sleep(0.05)
        assert rec.events, "a never-ending burst must not starve the scan"
        print(f"scanned {(time.monotonic() - t0) * 1000:.0f} ms into the stream")
    finally:
        mon.stop(timeout=15.0)


def test_periodic_rescan_is_the_safety_net(parts: tuple[FakeSource, Lister, Recorder]) -> None:
    mon, _source, lister, rec = _monitor(parts, rescan_interval=0.2)
    mon.start()
    try:
        lister.drives = [NVME, STICK]  # a lost uevent: nothing is pushed
        assert rec.wait(lambda ev: len(ev) >= 1)
        assert rec.events[0].action == "attached"
    finally:
        mon.stop(timeout=15.0)


def test_failed_scans_and_callbacks_do_not_stop_the_monitor(
    parts: tuple[FakeSource, Lister, Recorder], caplog: pytest.LogCaptureFixture
) -> None:
    source, lister, rec = parts
    seen: list[DriveEvent] = []

    def flaky(event: DriveEvent) -> None:
        seen.append(event)
        if len(seen) == 1:
            raise RuntimeError("bug in the app")
        rec(event)

    mon = DriveMonitor(flaky, lister=lister, event_source=lambda: source, debounce=0.05)
    mon.start()
    try:
        lister.fail = True
        calls = lister.calls
        source.push(("add", "sdb", "disk"))
        # Wait for the failed scan itself (it is logged after the lister raised).
        deadline = time.monotonic() + 15
        while "drive scan failed" not in caplog.text and time.monotonic() < deadline:
            time.sleep(0.02)
        assert "drive scan failed" in caplog.text
        assert lister.calls > calls
        assert seen == []  # failed scan: previous state kept, nothing reported
        lister.fail = False
        lister.drives = [NVME, STICK]
        source.push(("add", "sdb", "disk"))
        deadline = time.monotonic() + 15
        while not seen and time.monotonic() < deadline:
            time.sleep(0.02)
        assert seen
        assert seen[0].action == "attached"
        lister.drives = [NVME]
        source.push(("remove", "sdb", "disk"))
        assert rec.wait(lambda ev: len(ev) >= 1)
        assert rec.events[0].action == "removed"
        assert mon.running
    finally:
        assert mon.stop(timeout=15.0)


def test_stop_is_prompt_even_with_a_long_rescan_interval(
    parts: tuple[FakeSource, Lister, Recorder],
) -> None:
    mon, _source, _lister, _rec = _monitor(parts, rescan_interval=3600)
    mon.start()
    thread = next(t for t in threading.enumerate() if t.name == "telemetry-drives-monitor")
    assert thread.daemon
    t0 = time.monotonic()
    # Woken, not timed out: the next re-scan is an hour away, far beyond this bound.
    assert mon.stop(timeout=15.0) is True
    print(f"stopped in {(time.monotonic() - t0) * 1000:.1f} ms")
    assert not thread.is_alive()
    assert mon.stop() is True  # idempotent
    assert not mon.running


def test_start_twice_is_an_error_and_context_manager_stops(
    parts: tuple[FakeSource, Lister, Recorder],
) -> None:
    mon, *_ = _monitor(parts)
    with mon:
        assert mon.running
        with pytest.raises(RuntimeError):
            mon.start()
    assert not mon.running


def test_without_event_source_it_polls() -> None:
    lister = Lister([NVME])
    rec = Recorder()
    mon = DriveMonitor(rec, lister=lister, event_source=lambda: None, rescan_interval=0.2)
    mon.start()
    try:
        assert not mon.has_event_source
        lister.drives = [NVME, STICK]
        assert rec.wait(lambda ev: len(ev) >= 1)
    finally:
        assert mon.stop(timeout=15.0)


def test_rescan_request_wakes_the_thread(parts: tuple[FakeSource, Lister, Recorder]) -> None:
    mon, _source, lister, rec = _monitor(parts, rescan_interval=3600)
    mon.start()
    try:
        lister.drives = [NVME, STICK]
        mon.rescan()
        assert rec.wait(lambda ev: len(ev) >= 1)  # the periodic re-scan is an hour away
    finally:
        mon.stop(timeout=15.0)


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="rescan_interval"):
        DriveMonitor(lambda e: None, rescan_interval=0)
    with pytest.raises(ValueError, match="debounce"):
        DriveMonitor(lambda e: None, debounce=-1)


def test_real_udev_monitor_on_this_machine() -> None:
    """The default configuration (pyudev netlink + list_drives) starts and stops cleanly."""
    rec = Recorder()
    mon = DriveMonitor(rec)
    mon.start()
    try:
        assert mon.running
        assert mon.has_event_source  # netlink uevent sockets are available here and in CI
        assert {d.device for d in mon.drives}  # this machine has at least one disk
    finally:
        t0 = time.monotonic()
        assert mon.stop(timeout=15.0)
        print(f"stopped in {(time.monotonic() - t0) * 1000:.1f} ms")
    assert not [t for t in threading.enumerate() if t.name.startswith("telemetry-drives")]
