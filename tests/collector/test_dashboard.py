"""The dashboard over HTTP on a real collector (uvicorn on 127.0.0.1): its configuration, the
login (CSRF, cookie, limit), that nothing answers data without it, that each panel's figures
equal SQL on the events table (both databases), that a deleted device leaves the figures, and
that events arriving later reach them through the background refresh."""

from __future__ import annotations

import csv
import io
import json
import sqlite3
import statistics
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from telemetry.collector import EventStore, _dashboard_summaries
from telemetry.collector._config import ConfigError, parse_config
from telemetry.collector._dashboard_auth import LOGIN_BURST
from telemetry.collector._dashboard_db import open_dashboard_db
from telemetry.collector._dashboard_queries import PANELS, Filters
from telemetry.collector._dashboard_summaries import expire_summaries, refresh_summaries
from telemetry.collector._storage import Storage
from tests.collector._dashboard_support import (
    DAYS,
    END_DAY,
    PROJECT,
    TOKEN,
    dashboard_config,
    date_of,
    day_sql,
    log_in,
    seed,
    sql,
)
from tests.collector._reports_support import wait_until
from tests.collector_process import start_in_thread

FIRST_DAY = END_DAY - DAYS + 1
PRIVATE = (
    "/dashboard/api/options",
    "/dashboard/api/status",
    *(f"/dashboard/api/panels/{name}?project={PROJECT}" for name in PANELS),
    *(f"/dashboard/api/panels/{name}.csv?project={PROJECT}" for name in PANELS),
)


@pytest.fixture
def seeded(tmp_path: Path) -> EventStore:
    store = EventStore(tmp_path / "collector.db")
    seed(store, devices=30)
    return store


def test_config_needs_a_long_token_and_never_shows_it() -> None:
    settings = dashboard_config().dashboard
    assert settings is not None
    assert TOKEN not in repr(settings) and TOKEN not in repr(dashboard_config())
    with pytest.raises(ConfigError, match=r"\[dashboard\]\.token must be a string of at least"):
        parse_config({"dashboard": {"token": "short"}})
    with pytest.raises(ConfigError, match=r"unknown key\(s\) in \[dashboard\]: password"):
        parse_config({"dashboard": {"token": TOKEN, "password": "x"}})
    with pytest.raises(ConfigError, match="settle_seconds"):
        parse_config({"dashboard": {"token": TOKEN, "settle_seconds": -1}})


def test_no_dashboard_without_its_config(seeded: EventStore) -> None:
    url, stop = start_in_thread(seeded)
    try:
        assert httpx.get(f"{url}/dashboard").status_code == 404
        assert httpx.get(f"{url}/dashboard/api/panels/top_events?project=etcher").status_code == 404
    finally:
        stop()
        seeded.close()


def test_without_a_login_only_the_login_page(seeded: EventStore) -> None:
    url, stop = start_in_thread(seeded, config=dashboard_config())
    try:
        page = httpx.get(f"{url}/dashboard")
        assert page.status_code == 303 and page.headers["location"] == "/dashboard/login"
        login = httpx.get(f"{url}/dashboard/login")
        assert login.status_code == 200 and 'name="token"' in login.text
        assert "[Etcher]" not in login.text
        assert "frame-ancestors 'none'" in login.headers["content-security-policy"]
        for path in PRIVATE:
            answer = httpx.get(url + path)
            assert answer.status_code == 401, path
            assert "[Etcher]" not in answer.text and "Linux" not in answer.text, path
        forged = {"dashboard_session": "99999999999.00.0000"}
        assert httpx.get(f"{url}{PRIVATE[2]}", cookies=forged).status_code == 401
        # The charting library is public (it holds no data) and served from the package.
        library = httpx.get(f"{url}/dashboard/static/chart.umd.min.js")
        assert library.status_code == 200 and b"Chart.js v4" in library.content[:200]
    finally:
        stop()
        seeded.close()


def test_login_checks_csrf_sets_a_strict_cookie_and_logs_out(seeded: EventStore) -> None:
    url, stop = start_in_thread(seeded, config=dashboard_config())
    try:
        with httpx.Client(base_url=url) as client:
            # No CSRF cookie (a form posted from another site): refused, even with the token.
            assert (
                client.post("/dashboard/login", data={"token": TOKEN, "csrf": "x"}).status_code
                == 403
            )
            client.get("/dashboard/login")
            csrf = client.cookies["dashboard_csrf"]
            wrong_csrf = client.post("/dashboard/login", data={"token": TOKEN, "csrf": csrf + "x"})
            assert wrong_csrf.status_code == 403
            wrong = client.post("/dashboard/login", data={"token": TOKEN + "!", "csrf": csrf})
            assert wrong.status_code == 401 and "Wrong token." in wrong.text
            assert "dashboard_session" not in client.cookies
            right = client.post("/dashboard/login", data={"token": TOKEN, "csrf": csrf})
            assert right.status_code == 303 and right.headers["location"] == "/dashboard"
            cookie = right.headers["set-cookie"].lower()
            assert "dashboard_session=" in cookie and "httponly" in cookie
            assert "samesite=strict" in cookie and "path=/dashboard" in cookie
            assert client.get(PRIVATE[2]).status_code == 200
            session = client.cookies["dashboard_session"]
            tampered = session[:-1] + ("0" if session[-1] != "0" else "1")
            assert (
                httpx.get(url + PRIVATE[2], cookies={"dashboard_session": tampered}).status_code
                == 401
            )
            assert client.post("/dashboard/logout", data={"csrf": "nope"}).status_code == 403
            out = client.post("/dashboard/logout", data={"csrf": client.cookies["dashboard_csrf"]})
            assert out.status_code == 303
            assert client.get(PRIVATE[2]).status_code == 401
    finally:
        stop()
        seeded.close()


def test_hostile_cookies_paths_and_dates_get_answers_not_errors(seeded: EventStore) -> None:
    """Found by trying the dashboard as an attacker: a non-ASCII session cookie was a 500 on
    every page (the signature compare refused non-ASCII text), a date before year 1 was a 500,
    and an unknown API path answered 404 without a login."""
    url, stop = start_in_thread(seeded, config=dashboard_config())
    try:
        for hostile in ("1.2.\u00e9", "99999999999.x." + "\u00e9" * 64, "..", "a" * 5000):
            cookie = {"cookie": f"dashboard_session={hostile}".encode()}
            for path in ("/dashboard", "/dashboard/login", PRIVATE[0], PRIVATE[2]):
                answer = httpx.get(url + path, headers=cookie)
                assert answer.status_code in (200, 303, 401), (hostile, path, answer.text)
        for method in ("GET", "POST", "DELETE"):
            unknown = httpx.request(method, f"{url}/dashboard/api/nosuch/thing")
            assert unknown.status_code == 401, method
            assert httpx.request(method, f"{url}/dashboard/api/status").status_code == 401
        client = log_in(url)
        try:
            assert client.get("/dashboard/api/nosuch").status_code == 404
            for query in ("to=0001-01-01", "to=0001-01-29", "from=0001-01-01&to=0001-01-02"):
                answer = client.get(f"/dashboard/api/panels/top_events?project={PROJECT}&{query}")
                assert answer.status_code in (200, 400), (query, answer.text)
                assert answer.headers["cache-control"] == "no-store", query
        finally:
            client.close()
    finally:
        stop()
        seeded.close()


def test_secure_cookies_setting_marks_both_cookies_secure(seeded: EventStore) -> None:
    """Behind a TLS proxy the collector sees plain HTTP: ``secure_cookies = true`` makes the
    session and CSRF cookies ``Secure`` anyway (without it, plain HTTP gets none)."""
    for setting, expected in ((True, True), (False, False)):
        url, stop = start_in_thread(seeded, config=dashboard_config(secure_cookies=setting))
        try:
            with httpx.Client(base_url=url) as client:
                form = client.get("/dashboard/login")
                assert ("; secure" in form.headers["set-cookie"].lower()) is expected
                # A browser would not send a Secure cookie over plain HTTP: the test does, as the
                # TLS proxy would.
                csrf = client.cookies["dashboard_csrf"]
                right = client.post(
                    "/dashboard/login",
                    data={"token": TOKEN, "csrf": csrf},
                    headers={"cookie": f"dashboard_csrf={csrf}"},
                )
                assert right.status_code == 303
                session = right.headers["set-cookie"].lower()
                assert "dashboard_session=" in session
                assert ("; secure" in session) is expected
        finally:
            stop()
    with pytest.raises(ConfigError, match=r"\[dashboard\]\.secure_cookies must be true or false"):
        parse_config({"dashboard": {"token": TOKEN, "secure_cookies": "yes"}})
    seeded.close()


def test_login_attempts_are_limited_per_network(seeded: EventStore) -> None:
    url, stop = start_in_thread(seeded, config=dashboard_config())
    try:
        with httpx.Client(base_url=url) as client:
            client.get("/dashboard/login")
            csrf = client.cookies["dashboard_csrf"]
            for _ in range(LOGIN_BURST):
                wrong = client.post("/dashboard/login", data={"token": "guess" * 4, "csrf": csrf})
                assert wrong.status_code == 401
            limited = client.post("/dashboard/login", data={"token": TOKEN, "csrf": csrf})
            assert limited.status_code == 429 and int(limited.headers["retry-after"]) >= 1
            assert "dashboard_session" not in client.cookies
    finally:
        stop()
        seeded.close()


def _panel(client: httpx.Client, name: str, **params: str) -> list[list[object]]:
    answer = client.get(f"/dashboard/api/panels/{name}", params={"project": PROJECT, **params})
    assert answer.status_code == 200, answer.text
    rows: list[list[object]] = answer.json()["rows"]
    return rows


def _where(first: int, last: int, version: str | None) -> tuple[str, list[object]]:
    cond, params = day_sql(first, last)
    cond = f"project = ? AND {cond}"
    out: list[object] = [PROJECT, *params]
    if version is not None:
        cond += " AND json(event, 'app_version') = ?"
        out.append(version)
    return cond, out


def test_panels_equal_sql_on_the_events_table(storage: Storage) -> None:
    seed(storage, devices=40, seed_value=3)
    url, stop = start_in_thread(storage, config=dashboard_config())
    try:
        client = log_in(url)
        first, last, version = END_DAY - 9, END_DAY - 1, "1.2.0"
        params = {"from": date_of(first), "to": date_of(last), "version": version}
        cond, args = _where(first, last, version)

        types = sql(
            storage, f"SELECT event_type, count(*) FROM events WHERE {cond} GROUP BY 1", args
        )
        assert dict(_panel(client, "top_events", **params)) == dict(types)
        days = sql(
            storage,
            f"SELECT event_time / 86400000, count(DISTINCT device_id) FROM events WHERE {cond} "
            "GROUP BY 1",
            args,
        )
        daily = _panel(client, "active_daily", **params)
        assert [d for d, _ in daily] == [date_of(d) for d in range(first, last + 1)]
        assert {d: n for d, n in daily if n} == {date_of(int(d)): n for d, n in days}
        systems = sql(
            storage,
            f"SELECT json(event, 'os_name'), count(DISTINCT device_id) FROM events WHERE {cond} "
            "GROUP BY 1",
            args,
        )
        assert dict(_panel(client, "os_split", **params)) == dict(systems)
        month = sql(storage, f"SELECT count(DISTINCT device_id) FROM events WHERE {cond}", args)
        assert sum(n for _, n in _panel(client, "active_monthly", **params)) >= month[0][0]

        # New devices: devices whose first event (any version) is in the range and was of
        # that version.
        firsts = sql(
            storage,
            "SELECT device_id, min(event_time) FROM events WHERE project = ? GROUP BY device_id",
            [PROJECT],
        )
        expected_new = 0
        for device, at in firsts:
            if first * 86_400_000 <= at < (last + 1) * 86_400_000:
                row = sql(
                    storage,
                    "SELECT json(event, 'app_version') FROM events WHERE device_id = ? "
                    "AND event_time = ?",
                    [device, at],
                )
                expected_new += row[0][0] == version
        assert sum(n for _, n in _panel(client, "new_devices", **params)) == expected_new

        # Flashes: outcome per drive type and compression, and the median speed.
        flashes = sql(
            storage,
            "SELECT event_type, json(event, 'event_properties.drives.0.drive_type'), "
            "json(event, 'event_properties.image.compression'), "
            f"json(event, 'event_properties.mbPerSecond') FROM events WHERE {cond} "
            "AND event_type IN ('[Etcher] Done', '[Etcher] Write failed', '[Etcher] Cancel')",
            args,
        )
        outcome = {"[Etcher] Done": 2, "[Etcher] Write failed": 3, "[Etcher] Cancel": 4}
        expected: dict[tuple[str, str], list[int]] = {}
        speeds: dict[str, list[float]] = {}
        for event_type, drive, compression, mbps in flashes:
            counts = expected.setdefault((drive, compression or "none"), [0, 0, 0])
            counts[outcome[event_type] - 2] += 1
            if event_type == "[Etcher] Done":
                speeds.setdefault(drive, []).append(float(mbps))
        success = _panel(client, "flash_success", **params)
        assert {(r[0], r[1]): [r[2], r[3], r[4]] for r in success} == expected
        speed = {r[0]: r[2] for r in _panel(client, "speed", **params)}
        assert speed == {
            **{d: round(statistics.median(v), 2) for d, v in speeds.items()},
            "(all)": round(statistics.median([x for v in speeds.values() for x in v]), 2),
        }
        expected_drives: dict[str, int] = {}
        for (drive, _), counts in expected.items():
            expected_drives[drive] = expected_drives.get(drive, 0) + sum(counts)
        assert {r[0]: r[1] for r in _panel(client, "drive_types", **params)} == expected_drives

        # Every chart's CSV holds its JSON rows.
        for name in ("top_events", "flash_success", "funnel", "versions"):
            answer = client.get(
                f"/dashboard/api/panels/{name}.csv", params={"project": PROJECT, **params}
            )
            assert answer.status_code == 200
            assert answer.headers["content-type"].startswith("text/csv")
            assert "attachment" in answer.headers["content-disposition"]
            rows = list(csv.reader(io.StringIO(answer.text)))
            as_json = _panel(client, name, **params)
            assert [[str("" if v is None else v) for v in r] for r in as_json] == rows[1:]
        bad = client.get(
            "/dashboard/api/panels/top_events", params={"project": PROJECT, "from": "x"}
        )
        assert bad.status_code == 400
    finally:
        stop()


def test_a_deleted_device_leaves_every_figure(storage: Storage) -> None:
    seed(storage, devices=20, seed_value=5)
    device = sql(storage, "SELECT device_id FROM events ORDER BY id LIMIT 1")[0][0]
    db = open_dashboard_db(storage)
    try:
        f = Filters(PROJECT, FIRST_DAY, END_DAY)
        before = dict(PANELS["top_events"].query(db, f).rows)
        storage.delete_device(PROJECT, device, "test")
        result = refresh_summaries(db, now_ms=int(time.time() * 1000), settle_ms=0)
        assert result.deleted_devices == 1
        after = dict(PANELS["top_events"].query(db, f).rows)
        remaining = sql(
            storage,
            "SELECT event_type, count(*) FROM events WHERE project = ? GROUP BY 1",
            [PROJECT],
        )
        assert after == dict(remaining) != before
        for table in ("dash_device_days", "dash_devices", "dash_flashes", "dash_workflows"):
            rows = sql(storage, f"SELECT count(*) FROM {table} WHERE device_id = ?", [device])
            assert rows[0][0] == 0, table
    finally:
        db.close()


def test_events_arriving_later_reach_the_panels(tmp_path: Path) -> None:
    store = EventStore(tmp_path / "collector.db")
    url, stop = start_in_thread(store, config=dashboard_config())
    try:
        client = log_in(url)
        today = date_of(int(time.time() // 86_400))
        assert _panel(client, "top_events", to=today) == []
        events = [
            {
                "event_type": "Later",
                "device_id": f"device-{i:04d}",
                "insert_id": f"insert-{i:04d}-later",
                "time": int(time.time() * 1000),
                "os_name": "Linux",
            }
            for i in range(3)
        ]
        posted = httpx.post(f"{url}/2/httpapi", json={"api_key": PROJECT, "events": events})
        assert posted.status_code == 200
        wait_until(lambda: _panel(client, "top_events", to=today) == [["Later", 3]])
        assert _panel(client, "active_daily", to=today)[-1] == [today, 3]
        live = _panel(client, "live")
        assert [r[1] for r in live] == ["Later"] * 3
    finally:
        stop()
        store.close()


def test_error_panel_without_a_reports_table(seeded: EventStore) -> None:
    db = open_dashboard_db(seeded)
    try:
        conn = sqlite3.connect(seeded.path)
        conn.execute("DROP TABLE reports")
        conn.close()
        table = PANELS["errors"].query(db, Filters(PROJECT, FIRST_DAY, END_DAY))
        assert table.rows == [] and table.note == "no error reports"
    finally:
        db.close()
        seeded.close()


def test_the_settle_time_holds_back_recent_events(tmp_path: Path) -> None:
    store = EventStore(tmp_path / "collector.db")
    now = int(time.time() * 1000)
    body = json.dumps(
        {"api_key": PROJECT, "events": [{"event_type": "x", "device_id": "device-0001"}]}
    )
    from telemetry.collector._validation import parse_batch

    store.insert_batch(parse_batch(body.encode()), received_at_ms=now - 1_000)
    db = open_dashboard_db(store)
    try:
        assert refresh_summaries(db, now_ms=now, settle_ms=60_000).events == 0
        assert refresh_summaries(db, now_ms=now + 60_000, settle_ms=60_000).events == 1
        assert refresh_summaries(db, now_ms=now + 120_000, settle_ms=60_000).events == 0
    finally:
        db.close()
        store.close()


def test_collectors_sharing_a_database_count_each_event_once(
    storage: Storage, monkeypatch: pytest.MonkeyPatch
) -> None:
    seed(storage, devices=20, seed_value=9)
    # Many small chunks (one per stored batch of 500), so that the two refreshers interleave.
    monkeypatch.setattr(_dashboard_summaries, "CHUNK_ROWS", 100)
    # The seed summarised everything: start again from nothing, with two refreshers at once.
    reset = open_dashboard_db(storage)
    try:

        def clear(execute: Any) -> None:
            for table in (
                "dash_device_days",
                "dash_devices",
                "dash_event_days",
                "dash_flashes",
                "dash_flash_days",
                "dash_workflows",
                "dash_state",
            ):
                execute(f"DELETE FROM {table}")

        reset.write(clear)
    finally:
        reset.close()
    dbs = [open_dashboard_db(storage) for _ in range(2)]
    try:
        now = int(time.time() * 1000)
        with ThreadPoolExecutor(2) as pool:
            results = list(pool.map(lambda db: refresh_summaries(db, now_ms=now, settle_ms=0), dbs))
        stored = sql(storage, "SELECT count(*) FROM events")[0][0]
        assert sum(r.events for r in results) == stored
        f = Filters(PROJECT, FIRST_DAY, END_DAY)
        remaining = sql(
            storage,
            "SELECT event_type, count(*) FROM events WHERE project = ? GROUP BY 1",
            [PROJECT],
        )
        assert dict(PANELS["top_events"].query(dbs[0], f).rows) == dict(remaining)
    finally:
        for db in dbs:
            db.close()


def test_retention_removes_old_days_from_the_summaries(tmp_path: Path) -> None:
    store = EventStore(tmp_path / "collector.db")
    seed(store, devices=20, seed_value=13)
    # Keep the last 10 days of the seeded range (now is the end of END_DAY).
    now_ms = (END_DAY + 1) * 86_400_000
    db = open_dashboard_db(store)
    try:
        expire_summaries(db, now_ms=now_ms, rules=[(PROJECT, 10)])
        f = Filters(PROJECT, FIRST_DAY, END_DAY)
        kept = [d for d, n in PANELS["active_daily"].query(db, f).rows if n]
        assert kept and min(kept) == date_of(END_DAY - 9)
        for table in ("dash_device_days", "dash_event_days", "dash_flashes", "dash_workflows"):
            assert sql(store, f"SELECT min(day) FROM {table}")[0][0] == END_DAY - 9, table
        assert sql(store, "SELECT min(first_day) FROM dash_devices")[0][0] >= END_DAY - 9
    finally:
        db.close()
        store.close()
