"""The dashboard in a real headless Chromium (Debian's ``chromium`` and ``chromium-driver``,
driven by Selenium): without a login only the login page and 401s; after it, the seeded
figures as the charts draw them, equal to SQL on the events table, after changing the date range
and a filter; a CSV download; screenshots in ``tests/collector/screenshots/`` (git-ignored)."""

from __future__ import annotations

import csv
import json
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from selenium import webdriver
from selenium.common.exceptions import (
    NoSuchElementException,
    StaleElementReferenceException,
    WebDriverException,
)
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import Select, WebDriverWait

from telemetry.collector import EventStore
from telemetry.collector._postgres_store import PostgresStore
from telemetry.collector._reports import parse_report
from telemetry.collector._storage import Storage
from tests.collector._dashboard_support import (
    DAYS,
    END_DAY,
    PROJECT,
    TOKEN,
    dashboard_config,
    date_of,
    day_sql,
    seed,
    sql,
)
from tests.collector._reports_support import sentry_event
from tests.collector_process import start_in_thread

SCREENSHOTS = Path(__file__).parent / "screenshots"
FIRST_DAY = END_DAY - DAYS + 1
DATA_ENDPOINTS = (
    "/dashboard/api/panels/top_events?project=etcher",
    "/dashboard/api/panels/top_events.csv?project=etcher",
    "/dashboard/api/panels/live?project=etcher",
    "/dashboard/api/options",
    "/dashboard/api/status",
)


def _executable(name: str) -> str:
    found = shutil.which(name) or shutil.which(name, path="/usr/bin:/usr/lib/chromium")
    if found is None:
        pytest.fail(
            f"{name} is required (Debian: apt-get install chromium chromium-driver)",
            pytrace=False,
        )
    return found


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[WebDriver]:
    """Headless Chromium with a 1366x768 window, downloading into ``tmp_path/downloads``."""
    options = Options()
    options.binary_location = _executable("chromium")
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--window-size=1366,768",
        "--no-proxy-server",
        "--no-first-run",
        "--disable-extensions",
    ):
        options.add_argument(argument)
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    options.add_experimental_option(
        "prefs",
        {"download.default_directory": str(downloads), "download.prompt_for_download": False},
    )
    try:
        driver = webdriver.Chrome(
            options=options, service=Service(executable_path=_executable("chromedriver"))
        )
    except WebDriverException as exc:
        pytest.fail(f"headless Chromium did not start: {exc.msg}", pytrace=False)
    driver.set_window_size(1366, 768)
    try:
        yield driver
    finally:
        driver.quit()


def _wait(driver: WebDriver, predicate: Callable[[WebDriver], Any], what: str) -> Any:
    """Wait for ``predicate``; an element gone with the page it was on (a form's answer loading
    after a click) or not there yet is a state to wait past, not a failure."""
    ignored = (NoSuchElementException, StaleElementReferenceException)
    wait = WebDriverWait(driver, 60, poll_frequency=0.05, ignored_exceptions=ignored)
    return wait.until(predicate, message=what)


def _screenshot(driver: WebDriver, name: str) -> Path:
    SCREENSHOTS.mkdir(exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    assert driver.save_screenshot(str(path))
    print(f"screenshot: {path}")
    return path


def _statuses(driver: WebDriver, url: str) -> list[int]:
    """HTTP statuses of the data endpoints, fetched by the page (with its cookies)."""
    script = """
        const done = arguments[arguments.length - 1];
        Promise.all(arguments[0].map((u) => fetch(u, {redirect: "manual"}).then((r) => r.status)))
            .then(done, (e) => done(String(e)));
    """
    return list(driver.execute_async_script(script, [url + p for p in DATA_ENDPOINTS]))


def _loaded(driver: WebDriver, before: str) -> str:
    """Wait until the page has loaded every panel again (a new generation); return it."""

    def ready(d: WebDriver) -> str | bool:
        value = d.find_element(By.ID, "status").get_attribute("data-loaded") or "0"
        return value if value not in ("0", before) else False

    return str(_wait(driver, ready, "the panels did not load"))


def _chart(driver: WebDriver, name: str) -> dict[str, Any]:
    """What the chart of panel ``name`` draws: labels and each dataset's label and data."""
    data = driver.execute_script(
        "const c = Chart.getChart('chart-' + arguments[0]);"
        "return c ? {labels: c.data.labels, datasets: c.data.datasets.map("
        "(d) => ({label: d.label, data: d.data}))} : null;",
        name,
    )
    assert data is not None, f"panel {name} drew no chart"
    return dict(data)


def _apply(driver: WebDriver, *, first: int, last: int, os_name: str = "") -> None:
    before = driver.find_element(By.ID, "status").get_attribute("data-loaded") or "0"
    driver.execute_script(
        "document.getElementById('from').value = arguments[0];"
        "document.getElementById('to').value = arguments[1];",
        date_of(first),
        date_of(last),
    )
    Select(driver.find_element(By.ID, "os")).select_by_value(os_name)
    driver.find_element(By.ID, "apply").click()
    _loaded(driver, before)


def _where(first: int, last: int, os_name: str) -> tuple[str, list[object]]:
    cond, params = day_sql(first, last)
    cond = f"project = ? AND {cond}"
    params = [PROJECT, *params]
    if os_name:
        cond += " AND json(event, 'os_name') = ?"
        params.append(os_name)
    return cond, params


def _expected_top_events(store: Storage, first: int, last: int, os_name: str = "") -> dict:
    cond, params = _where(first, last, os_name)
    rows = sql(store, f"SELECT event_type, count(*) FROM events WHERE {cond} GROUP BY 1", params)
    return {t: int(n) for t, n in rows}


def _expected_active(store: Storage, first: int, last: int, os_name: str = "") -> dict:
    cond, params = _where(first, last, os_name)
    rows = sql(
        store,
        f"SELECT event_time / 86400000, count(DISTINCT device_id) FROM events WHERE {cond} "
        "GROUP BY 1",
        params,
    )
    return {date_of(int(d)): int(n) for d, n in rows}


def _expected_funnel(store: Storage, first: int, last: int) -> list[int]:
    rows = sql(
        store,
        "SELECT json(event, 'event_properties.flashingWorkflowUuid'), event_type, event_time "
        "FROM events WHERE project = ? "
        "AND json(event, 'event_properties.flashingWorkflowUuid') IS NOT NULL",
        [PROJECT],
    )
    bits = {
        "[Etcher] Select image": 1,
        "[Etcher] Toggle drive": 2,
        "[Etcher] Flash": 4,
        "[Etcher] Done": 8,
    }
    steps: dict[str, int] = {}
    day: dict[str, int] = {}
    for workflow, event_type, event_time in rows:
        steps[workflow] = steps.get(workflow, 0) | bits.get(event_type, 0)
        day[workflow] = min(day.get(workflow, 10**9), int(event_time) // 86_400_000)
    inside = [s for w, s in steps.items() if first <= day[w] <= last]
    return [sum(1 for s in inside if s & m == m) for m in (1, 3, 7, 15)]


def _drawn(chart: dict[str, Any]) -> dict[str, int]:
    """Label -> value of a chart's first dataset (days without a count, drawn as 0, left out:
    SQL has no row for them)."""
    pairs = zip(chart["labels"], chart["datasets"][0]["data"], strict=True)
    return {label: value for label, value in pairs if value}


def _add_reports(store: Storage) -> None:
    for i, (kind, value) in enumerate(
        [
            ("OSError", "No space left on device"),
            ("OSError", "No space left on device"),
            ("PermissionError", "Permission denied: '<path>'"),
        ]
    ):
        event = sentry_event(
            f"r{i}", kind=kind, value=value, release="2.0.0", timestamp=(END_DAY - 2) * 86_400 + i
        )
        report = parse_report(
            PROJECT,
            json.dumps(event).encode(),
            envelope_event_id=None,
            received_at=(END_DAY - 2) * 86_400_000,
        )
        store.insert_report(report)


def _log_in(driver: WebDriver, url: str) -> None:
    driver.get(url + "/dashboard")
    _wait(driver, lambda d: d.current_url.endswith("/dashboard/login"), "no login page")
    driver.find_element(By.ID, "token").send_keys(TOKEN)
    driver.find_element(By.ID, "login-button").click()
    _wait(driver, lambda d: d.current_url.split("?")[0].endswith("/dashboard"), "no dashboard")
    _loaded(driver, "0")


def _download_csv(driver: WebDriver, downloads: Path, panel: str) -> list[list[str]]:
    link = driver.find_element(By.ID, f"csv-{panel}")
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'});", link)
    link.click()

    def finished(_: WebDriver) -> Path | bool:
        done = [p for p in downloads.glob("*.csv") if p.stat().st_size > 0]
        partial = list(downloads.glob("*.crdownload"))
        return done[0] if done and not partial else False

    path = _wait(driver, finished, "the CSV was not downloaded")
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.reader(handle))


def test_dashboard_in_chromium_on_sqlite(tmp_path: Path, browser: WebDriver) -> None:
    store = EventStore(tmp_path / "collector.db")
    seed(store)
    _add_reports(store)
    url, stop = start_in_thread(store, config=dashboard_config())
    try:
        # Without a login: only the login page, and every data endpoint answers 401.
        browser.get(url + "/dashboard")
        _wait(browser, lambda d: d.current_url.endswith("/dashboard/login"), "no redirect")
        assert browser.find_elements(By.TAG_NAME, "canvas") == []
        assert "[Etcher]" not in browser.page_source
        assert _statuses(browser, url) == [401] * len(DATA_ENDPOINTS)
        browser.get(url + "/dashboard/api/panels/top_events?project=etcher")
        assert "[Etcher]" not in browser.page_source
        browser.get(url + "/dashboard/login")
        browser.find_element(By.ID, "token").send_keys("not the token at all")
        browser.find_element(By.ID, "login-button").click()
        _wait(
            browser,
            lambda d: d.find_element(By.ID, "login-message").text == "Wrong token.",
            "no refusal",
        )
        _screenshot(browser, "dashboard_login_refused")
        assert _statuses(browser, url) == [401] * len(DATA_ENDPOINTS)

        _log_in(browser, url)
        session = browser.get_cookie("dashboard_session")
        assert session is not None
        assert session["httpOnly"] is True and session["sameSite"] == "Strict"
        assert browser.execute_script("return document.cookie") == ""

        # The whole seeded range, all versions and systems.
        _apply(browser, first=FIRST_DAY, last=END_DAY)
        assert _drawn(_chart(browser, "top_events")) == _expected_top_events(
            store, FIRST_DAY, END_DAY
        )
        assert _drawn(_chart(browser, "active_daily")) == _expected_active(
            store, FIRST_DAY, END_DAY
        )
        assert _chart(browser, "funnel")["datasets"][0]["data"] == _expected_funnel(
            store, FIRST_DAY, END_DAY
        )
        errors = browser.find_element(By.ID, "table-errors").text
        assert "OSError: No space left on device" in errors
        assert "PermissionError" in errors
        _screenshot(browser, "dashboard_sqlite_all")

        # A shorter range and one operating system.
        first = END_DAY - 6
        _apply(browser, first=first, last=END_DAY, os_name="Windows")
        windows = _expected_top_events(store, first, END_DAY, "Windows")
        assert windows and windows != _expected_top_events(store, first, END_DAY)
        assert _drawn(_chart(browser, "top_events")) == windows
        assert _drawn(_chart(browser, "active_daily")) == _expected_active(
            store, first, END_DAY, "Windows"
        )
        assert set(_drawn(_chart(browser, "os_split"))) == {"Windows"}
        assert "os=Windows" in browser.current_url
        _screenshot(browser, "dashboard_sqlite_windows_last_7_days")

        # CSV of a chart: what the chart shows.
        rows = _download_csv(browser, tmp_path / "downloads", "top_events")
        assert rows[0] == ["event_type", "events"]
        assert {t: int(n) for t, n in rows[1:]} == windows

        # The demo's panels, further down.
        browser.execute_script(
            "document.getElementById('panel-drive_types').scrollIntoView({block: 'start'});"
        )
        _screenshot(browser, "dashboard_sqlite_demo_panels")
        browser.execute_script(
            "document.getElementById('panel-errors').scrollIntoView({block: 'start'});"
        )
        _screenshot(browser, "dashboard_sqlite_errors_live")
    finally:
        stop()
        store.close()


def test_dashboard_in_chromium_on_postgresql(
    tmp_path: Path, browser: WebDriver, postgres_dsn: str
) -> None:
    store = PostgresStore(postgres_dsn)
    seed(store, devices=40, seed_value=11)
    url, stop = start_in_thread(store, config=dashboard_config())
    try:
        browser.get(url + "/dashboard")
        _wait(browser, lambda d: d.current_url.endswith("/dashboard/login"), "no redirect")
        assert _statuses(browser, url) == [401] * len(DATA_ENDPOINTS)
        _log_in(browser, url)
        first = END_DAY - 13
        _apply(browser, first=first, last=END_DAY, os_name="Linux")
        linux = _expected_top_events(store, first, END_DAY, "Linux")
        assert linux
        assert _drawn(_chart(browser, "top_events")) == linux
        assert _drawn(_chart(browser, "active_daily")) == _expected_active(
            store, first, END_DAY, "Linux"
        )
        assert browser.find_element(By.ID, "note-errors").text == "no error reports"
        rows = _download_csv(browser, tmp_path / "downloads", "top_events")
        assert {t: int(n) for t, n in rows[1:]} == linux
        browser.execute_script("window.scrollTo(0, 0);")
        _screenshot(browser, "dashboard_postgresql_linux_last_14_days")
    finally:
        stop()
        store.close()
