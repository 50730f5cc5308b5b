"""Error reports from the client: content, anonymising, grouping, the queue's bound, the
hooks, and delivery as Sentry envelopes (a real store file, a RecordingDestination)."""

from __future__ import annotations

import getpass
import logging
import os
import platform
import threading
from pathlib import Path

import pytest

from telemetry.testing import RecordingDestination
from tests.reports._support import make_client, raise_from_here


def _caught(message: str) -> ValueError:
    try:
        raise_from_here(message)
    except ValueError as exc:
        return exc
    raise AssertionError("unreachable")


def test_a_captured_exception_is_sent_once_as_an_envelope_with_relative_frames(data_dir: Path):
    destination = RecordingDestination()
    with make_client(data_dir, destination) as client:
        client.track("Flash")
        fingerprint = client.capture_exception(_caught("bad image"))
        assert fingerprint is not None
        assert client.flush(10)
    [report] = destination.reports
    [value] = report["exception"]["values"]
    assert (value["type"], value["value"]) == ("ValueError", "bad image")
    frames = value["stacktrace"]["frames"]
    assert [f["function"] for f in frames][-2:] == ["_caught", "raise_from_here"]
    assert frames[-1]["module"] == "tests.reports._support"
    assert frames[-1]["filename"] == "tests/reports/_support.py"
    assert all(not f["filename"].startswith("/") for f in frames)
    assert report["fingerprint"] == [fingerprint]
    assert report["release"] == "3.1.4"
    assert report["contexts"]["telemetry"]["count"] == 1
    assert report["contexts"]["os"]["name"]
    assert [b["message"] for b in report["breadcrumbs"]["values"]][-1] == "Flash"
    request = next(r for r in destination.requests if r.is_report)
    assert request.url.startswith("http://127.0.0.1:9/api/reports-test/envelope/?")
    assert "sentry_key=reports-test" in request.url
    assert request.payload["header"]["event_id"] == report["event_id"]


def test_10000_raises_of_one_error_are_one_report_with_count_10000(data_dir: Path):
    destination = RecordingDestination()
    with make_client(data_dir, destination, answered=False) as client:  # nothing sent yet
        for _ in range(10_000):
            try:
                raise_from_here("again")
            except ValueError as exc:
                client.capture_exception(exc)
        assert client._store.report_count() == 1  # the queue holds one row, not 10,000
        [queued] = client.queued_reports()
        assert queued["contexts"]["telemetry"]["count"] == 10_000
        client.mark_notice_answered()
        assert client.flush(10)
        counters = client.status()["counters"]
    assert [r["contexts"]["telemetry"]["count"] for r in destination.reports] == [10_000]
    assert counters["reports_captured"] == counters["reports_sent"] == 10_000


def test_the_queue_holds_at_most_100_distinct_reports_and_counts_the_rest(data_dir: Path):
    destination = RecordingDestination()
    with make_client(data_dir, destination, answered=False) as client:
        for i in range(150):
            # A distinct fingerprint each: a message without an exception, 150 texts.
            client.capture_message(f"distinct failure {i}")
        assert client._store.report_count() == 100
        assert client.status()["counters"]["reports_dropped_cap"] == 50


def test_repeats_during_a_send_stay_queued_as_a_new_report(data_dir: Path):
    destination = RecordingDestination()
    with make_client(data_dir, destination, answered=False) as client:
        for _ in range(3):
            client.capture_exception(_caught("x"))
        [report] = client._store.pending_reports()
        # Two more arrive while those three are in flight, then the answer comes.
        client.capture_exception(_caught("x"))
        client.capture_exception(_caught("x"))
        client._store.report_delivered(report, 200, "{}")
        [left] = client._store.pending_reports()
        assert left.count == 2
        assert left.event_id != report.event_id  # another report: the collector keeps both


def test_paths_user_home_and_host_never_reach_a_report(data_dir: Path):
    destination = RecordingDestination()
    home = os.path.expanduser("~")
    user = getpass.getuser()
    host = platform.node()
    message = f"cannot open '{home}/My Images/{user}-{host}.img' on {host} for {user}"
    with make_client(data_dir, destination) as client:
        client.capture_exception(_caught(message))
        logging.getLogger("app.flash").error("write failed: %s", f"{home}/disk.img")
        client.capture_errors(native_crashes=False)
        logging.getLogger("app.flash").error("write failed: %s", f"{home}/disk.img")
        assert client.flush(10)
    import json

    sent = json.dumps(destination.reports)
    assert len(destination.reports) == 2
    for secret in {home, f"{home}/My Images"} | ({user, host} - {"root", ""}):
        if len(secret) >= 3:
            assert secret not in sent
    for report in destination.reports:
        for value in report.get("exception", {}).get("values", []):
            for frame in value["stacktrace"]["frames"]:
                assert not Path(frame["filename"]).is_absolute()


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_uncaught_exceptions_on_threads_and_errors_logged_are_captured(data_dir: Path):
    destination = RecordingDestination()
    with make_client(data_dir, destination) as client:
        client.capture_errors(native_crashes=False)

        def worker() -> None:
            raise_from_here("in a worker")

        thread = threading.Thread(target=worker, name="worker-1")
        thread.start()
        thread.join()
        try:
            raise_from_here("logged")
        except ValueError:
            logging.getLogger("app").exception("it failed")
        logging.getLogger("telemetry").error("telemetry's own errors are not reported")
        logging.getLogger("app").warning("below the level")
        assert client.flush(10)
    reports = destination.reports
    assert len(reports) == 2
    by_mechanism = {r["exception"]["values"][-1]["mechanism"]["type"]: r for r in reports}
    assert set(by_mechanism) == {"threading", "logging"}
    threaded = by_mechanism["threading"]["exception"]["values"][-1]
    assert threaded["thread_id"] == "worker-1"
    assert threaded["mechanism"]["handled"] is False
    assert by_mechanism["logging"]["logentry"]["formatted"] == "it failed"


def test_close_puts_the_hooks_back(data_dir: Path):
    import sys

    before = (sys.excepthook, threading.excepthook, list(logging.getLogger().handlers))
    with make_client(data_dir, RecordingDestination()) as client:
        client.capture_errors(native_crashes=False)
        assert sys.excepthook is not before[0]
    assert (sys.excepthook, threading.excepthook, list(logging.getLogger().handlers)) == before


def test_before_send_sees_reports_and_may_change_or_drop_them(data_dir: Path):
    destination = RecordingDestination()
    seen: list[dict] = []

    def hook(event: dict) -> dict | None:
        seen.append(event)
        if "exception" in event and event["exception"]["values"][-1]["value"] == "drop me":
            return None
        if "exception" in event:
            event["tags"]["edited"] = "yes"
        return event

    with make_client(data_dir, destination, before_send=hook) as client:
        client.capture_exception(_caught("keep me"))
        client.capture_exception(_caught("drop me"))
        assert client.flush(10)
        counters = client.status()["counters"]
    assert [r["exception"]["values"][-1]["value"] for r in destination.reports] == ["keep me"]
    assert destination.reports[0]["tags"]["edited"] == "yes"
    assert counters["reports_dropped_before_send"] == 1
    assert any("exception" in e for e in seen)


def test_a_failing_before_send_costs_the_report_never_the_app(data_dir: Path):
    def hook(event: dict) -> dict | None:
        if "exception" in event:
            raise RuntimeError("hook bug")
        return event

    with make_client(data_dir, RecordingDestination(), before_send=hook) as client:
        assert client.capture_exception(_caught("x")) is None
        assert client.status()["counters"]["reports_before_send_errors"] == 1


@pytest.mark.parametrize("answer", [400, 404, 405, 422])
def test_a_refused_report_is_dropped_and_counted(data_dir: Path, answer: int):
    destination = RecordingDestination()
    with make_client(data_dir, destination, answered=False) as client:
        client.capture_exception(_caught("x"))
        destination.respond(answer)  # the first request: reports go before events
        client.mark_notice_answered()
        assert client.flush(10)
        assert destination.requests[0].is_report
        assert client.status()["counters"]["reports_refused"] == 1
        assert client.queued_reports() == []


def test_a_collector_without_reports_never_holds_events_back(data_dir: Path):
    # An older collector (or a proxy) answers 404 to the envelope: the report is dropped and
    # counted, and the events go at once, not after the 1 h pause a 404 on events means.
    destination = RecordingDestination()
    with make_client(data_dir, destination, answered=False) as client:
        client.capture_exception(_caught("x"))
        client.track("Flash")
        destination.respond(404)
        client.mark_notice_answered()
        assert client.flush(10)
    assert [r.status for r in destination.requests] == [404, 200]
    assert destination.event_types() == ["$identify", "Flash"]


def test_a_report_the_collector_fails_on_is_retried_later_and_events_go_meanwhile(
    data_dir: Path,
):
    from telemetry.testing import FakeClock

    clock = FakeClock()
    destination = RecordingDestination()
    with make_client(data_dir, destination, answered=False, clock=clock) as client:
        client.capture_exception(_caught("x"))
        client.track("Flash")
        destination.respond(503)
        client.mark_notice_answered()
        # The events leave without waiting for the report's backoff (no fake time passes).
        assert destination.wait_for(lambda rs: any(r.is_batch and r.status == 200 for r in rs))
        assert client.queue_stats().events == 0 or destination.wait_for_events(2)
        assert destination.reports == []
        # Asleep until the report's own backoff ends (5 s at most: the first retry), not the
        # 60 s idle check; then it is delivered.
        # (fake time moves through each sleep of at most 5 s, and stops at a longer one).
        from tests.delivery._support import run_clock

        def delivered() -> bool:
            return any(r.is_report and r.status == 200 for r in destination.requests)

        assert run_clock(clock, delivered, 20, max_step=5.0)
    assert [r.status for r in destination.requests if r.is_report] == [503, 200]
    assert len(destination.reports) == 1
