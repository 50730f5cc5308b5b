"""The official sentry-sdk, its DSN pointed at our collector on 127.0.0.1, stores its error
reports there (SQLite and PostgreSQL): exactly once each, grouped by fingerprint."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit

import sentry_sdk

from telemetry.collector import Storage
from tests.collector_process import start_in_thread

from ._reports_support import (
    SENTRY_ID,
    SENTRY_KEY,
    metric,
    report_config,
    report_rows,
    wait_until,
)
from ._support import PROJECT


class DiskFullError(OSError):
    """The error the demo raises when an image cannot be written."""


def write_image(block: int) -> None:
    raise DiskFullError(f"no space left after block {block}")


@contextmanager
def sdk_pointed_at(url: str, **options: object) -> Iterator[None]:
    """``sentry_sdk.init`` with our collector's DSN; flushed and closed afterwards (its worker
    thread stops)."""
    host = urlsplit(url).netloc
    sentry_sdk.init(
        dsn=f"http://{SENTRY_KEY}@{host}/{SENTRY_ID}",
        default_integrations=False,
        release="demo-app@2.1.0",
        environment="test",
        **options,  # type: ignore[arg-type]
    )
    try:
        yield
        assert sentry_sdk.flush(timeout=30) is None
    finally:
        sentry_sdk.get_client().close(timeout=10)
        sentry_sdk.init()  # no DSN: the global client sends nothing any more


def test_capture_exception_is_stored_once_with_its_group(storage: Storage) -> None:
    url, stop = start_in_thread(storage, config=report_config())
    try:
        ids = []
        with sdk_pointed_at(url):
            for block in (3, 4):
                try:
                    write_image(block)
                except DiskFullError as exc:
                    ids.append(sentry_sdk.capture_exception(exc))
        wait_until(lambda: storage.report_count() == 2)
        assert metric(url, "collector_reports_accepted_total") == 2
        assert metric(url, "collector_reports_duplicates_total") == 0
    finally:
        stop()
    rows = report_rows(storage)
    assert sorted(r["event_id"] for r in rows) == sorted(ids)
    assert all(r["project"] == PROJECT for r in rows)
    assert {r["exception_type"] for r in rows} == {"DiskFullError"}
    assert [r["exception_value"] for r in rows] == [
        "no space left after block 3",
        "no space left after block 4",
    ]
    assert {r["release"] for r in rows} == {"demo-app@2.1.0"}
    assert {r["environment"] for r in rows} == {"test"}
    assert {r["platform"] for r in rows} == {"python"}
    assert {r["level"] for r in rows} == {"error"}
    # Two raises of one error at one place: one group of two reports, count 2.
    [group] = storage.report_groups(PROJECT)
    assert {r["fingerprint"] for r in rows} == {group.fingerprint}
    assert len(group.fingerprint) == 64
    assert (group.count, group.reports) == (2, 2)
    assert group.releases == ("demo-app@2.1.0",)
    assert group.exception_type == "DiskFullError"
    assert group.first_seen <= group.last_seen


def test_a_wrong_key_stores_nothing(storage: Storage) -> None:
    url, stop = start_in_thread(storage, config=report_config())
    try:
        host = urlsplit(url).netloc
        sentry_sdk.init(dsn=f"http://not-the-key@{host}/{SENTRY_ID}", default_integrations=False)
        try:
            try:
                write_image(1)
            except DiskFullError as exc:
                sentry_sdk.capture_exception(exc)
            sentry_sdk.flush(timeout=30)
        finally:
            sentry_sdk.get_client().close(timeout=10)
            sentry_sdk.init()
        wait_until(lambda: metric(url, 'collector_report_requests_total{status="403"}') >= 1)
    finally:
        stop()
    assert storage.report_count() == 0
