"""This library's own client sends error reports to the collector (its Sentry envelope endpoint):
repeats of one error arrive as one report with a count, stored once, in one group."""

from __future__ import annotations

from pathlib import Path

import telemetry
from telemetry.collector import EventStore
from telemetry.collector._config import parse_config
from tests.collector_process import start_in_thread

from ._reports_support import report_rows, wait_until

PROJECT = "client-reports"


def fail_to_write(block: int) -> None:
    raise OSError(f"write failed at block {block}")


def test_the_clients_reports_are_stored_once_with_their_count(tmp_path: Path) -> None:
    store = EventStore(tmp_path / "c.db")
    url, stop = start_in_thread(store, config=parse_config({"projects": {PROJECT: {}}}))
    try:
        client = telemetry.create_client(PROJECT, "demo", "2.0.1", url, data_dir=tmp_path / "d")
        try:
            client.mark_notice_answered()
            for block in range(25):
                try:
                    fail_to_write(block)
                except OSError as exc:
                    client.capture_exception(exc)
            assert client.flush(timeout=30)
            wait_until(lambda: client.queued_reports() == [])
        finally:
            client.close()
        wait_until(lambda: store.report_count() >= 1)
        [group] = store.report_groups(PROJECT)
    finally:
        stop()
        rows = report_rows(store)
        store.close()
    assert group.count == 25
    assert group.reports == len(rows)
    assert group.releases == ("2.0.1",)
    assert group.exception_type is not None and "OSError" in group.exception_type
    assert len({r["event_id"] for r in rows}) == len(rows)
