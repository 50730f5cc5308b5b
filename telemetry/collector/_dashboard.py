"""The collector's dashboard (``/dashboard``, with ``[dashboard]`` configured): its routes (login,
page, panel data as JSON and CSV, static files), and the background task that keeps the
summaries up to date. Nothing but the login page and the static files answers without a valid
session: the page redirects to the login, the data endpoints answer 401."""

from __future__ import annotations

import asyncio
import contextlib
import csv
import datetime as dt
import html
import io
import logging
import string
import urllib.parse
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Final

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import (
    FileResponse,
    HTMLResponse,
    JSONResponse,
    PlainTextResponse,
    RedirectResponse,
    Response,
)
from starlette.routing import BaseRoute, Route

from telemetry.collector._dashboard_auth import LOGIN_BURST, LOGIN_PER_SECOND, DashboardAuth
from telemetry.collector._dashboard_db import DashboardDB, open_dashboard_db
from telemetry.collector._dashboard_queries import PANELS, Filters, day_number, filter_options
from telemetry.collector._dashboard_settings import DashboardSettings
from telemetry.collector._dashboard_summaries import expire_summaries, refresh_summaries
from telemetry.collector._state import CollectorState
from telemetry.collector._storage import StorageUnavailable

__all__ = ["Dashboard"]

logger = logging.getLogger("telemetry.collector")

_HERE: Final = Path(__file__).parent
_STATIC: Final = _HERE / "static"
_TEMPLATES: Final = _HERE / "templates"
_STATIC_FILES: Final = {
    "chart.umd.min.js": ("chartjs/chart.umd.min.js", "text/javascript"),
    "chartjs-LICENSE.md": ("chartjs/LICENSE.md", "text/plain"),
    "dashboard.js": ("dashboard.js", "text/javascript"),
    "dashboard.css": ("dashboard.css", "text/css"),
}
#: How often summary rows past the retention age are deleted (with ``[retention]``).
EXPIRE_EVERY_SECONDS: Final = 3600.0
#: Methods the catch-all API route takes (so none of them tells an unknown path from a known one).
_ANY_METHOD: Final = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
#: The default date range: the last 30 days (today included).
DEFAULT_DAYS: Final = 30
#: The longest date range a panel answers for.
MAX_DAYS: Final = 3660
_MAX_FORM_BYTES: Final = 4096
_SECURITY_HEADERS: Final = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


class _BadQuery(ValueError):
    """A query parameter is wrong (answered 400)."""


def _secure(response: Response) -> Response:
    for name, value in _SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    return response


def _template(name: str) -> string.Template:
    return string.Template((_TEMPLATES / name).read_text(encoding="utf-8"))


class Dashboard:
    """The dashboard of one collector app: routes, login and the summaries' refresh task."""

    def __init__(self, state: CollectorState, settings: DashboardSettings) -> None:
        self._state = state
        self._settings = settings
        self.auth = DashboardAuth(
            settings,
            clock=state.clock,
            limiter=state.rate_limiter("dashboard-login", LOGIN_PER_SECOND, LOGIN_BURST),
        )
        self._db: DashboardDB | None = None
        self._expired_at: float | None = None

    @property
    def db(self) -> DashboardDB:
        if self._db is None:
            self._db = open_dashboard_db(self._state.storage)
        return self._db

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/dashboard", self.page, methods=["GET"]),
            Route("/dashboard/", self.page, methods=["GET"]),
            Route("/dashboard/login", self.login_form, methods=["GET"]),
            Route("/dashboard/login", self.login, methods=["POST"]),
            Route("/dashboard/logout", self.logout, methods=["POST"]),
            Route("/dashboard/api/options", self.options, methods=["GET"]),
            Route("/dashboard/api/status", self.status, methods=["GET"]),
            Route("/dashboard/api/panels/{name}", self.panel, methods=["GET"]),
            Route("/dashboard/static/{name}", self.static, methods=["GET"]),
            # Any other API path: 401 without a session (not even whether it exists), else 404.
            Route("/dashboard/api/{rest:path}", self.unknown_api, methods=_ANY_METHOD),
        ]

    # ------------------------------------------------------------------ summaries

    def refresh(self) -> int:
        """Fold the settled new events into the summaries (and, at most hourly, delete the
        summary rows past the retention age); how many events were added."""
        now = self._state.clock()
        result = refresh_summaries(
            self.db,
            now_ms=int(now * 1000),
            settle_ms=int(self._settings.settle_seconds * 1000),
        )
        if self._expired_at is None or now - self._expired_at >= EXPIRE_EVERY_SECONDS:
            expire_summaries(
                self.db, now_ms=int(now * 1000), rules=self._state.config.retention_rules()
            )
            self._expired_at = now
        return result.events

    @contextlib.asynccontextmanager
    async def run_refresh(self) -> AsyncIterator[None]:
        """Refresh the summaries every ``refresh_seconds`` while the app serves; close the
        dashboard's connections after."""

        async def loop() -> None:
            while True:
                try:
                    await run_in_threadpool(self.refresh)
                except StorageUnavailable as exc:
                    logger.warning("dashboard summaries not refreshed: %s", exc)
                except Exception:
                    logger.exception("dashboard summaries not refreshed")
                await asyncio.sleep(self._settings.refresh_seconds)

        task = asyncio.create_task(loop())
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            if self._db is not None:
                self._db.close()

    @contextlib.asynccontextmanager
    async def closing(self) -> AsyncIterator[None]:
        """Close the dashboard's connections when the app stops (a worker that does not run
        the refresh)."""
        try:
            yield
        finally:
            if self._db is not None:
                self._db.close()

    # ------------------------------------------------------------------ login

    def _login_page(self, request: Request, message: str, status: int) -> Response:
        token = self.auth.csrf_token(request)
        body = _template("login.html").substitute(
            csrf=html.escape(token), message=html.escape(message)
        )
        response = HTMLResponse(body, status_code=status)
        self.auth.set_csrf(response, request, token)
        return _secure(response)

    async def login_form(self, request: Request) -> Response:
        if self.auth.is_logged_in(request):
            return _secure(RedirectResponse("/dashboard", status_code=303))
        return self._login_page(request, "", 200)

    async def login(self, request: Request) -> Response:
        wait = self.auth.login_wait(request)
        if wait > 0:
            response = self._login_page(request, "Too many attempts: wait a minute.", 429)
            response.headers["Retry-After"] = str(max(1, int(wait + 0.999)))
            return response
        form = await _form(request)
        if form is None:
            return self._login_page(request, "The form could not be read.", 400)
        if not self.auth.csrf_matches(request, form.get("csrf", "")):
            return self._login_page(request, "The form expired: please try again.", 403)
        if not self.auth.token_matches(form.get("token", "")):
            logger.warning("dashboard login refused")
            return self._login_page(request, "Wrong token.", 401)
        response = RedirectResponse("/dashboard", status_code=303)
        self.auth.set_session(response, request)
        return _secure(response)

    async def logout(self, request: Request) -> Response:
        form = await _form(request)
        if form is None or not self.auth.csrf_matches(request, form.get("csrf", "")):
            return _secure(PlainTextResponse("Forbidden", status_code=403))
        response = RedirectResponse("/dashboard/login", status_code=303)
        self.auth.clear_session(response)
        return _secure(response)

    # ------------------------------------------------------------------ page and data

    async def page(self, request: Request) -> Response:
        if not self.auth.is_logged_in(request):
            return _secure(RedirectResponse("/dashboard/login", status_code=303))
        token = self.auth.csrf_token(request)
        cards = "\n".join(
            _template("panel.html").substitute(
                name=p.name, title=html.escape(p.title), help=html.escape(p.help), chart=p.chart
            )
            for p in PANELS.values()
        )
        body = _template("dashboard.html").substitute(panels=cards, csrf=html.escape(token))
        response = HTMLResponse(body)
        self.auth.set_csrf(response, request, token)
        return _secure(response)

    def _unauthorised(self) -> Response:
        return _secure(JSONResponse({"error": "log in at /dashboard/login"}, status_code=401))

    async def unknown_api(self, request: Request) -> Response:
        if not self.auth.is_logged_in(request):
            return self._unauthorised()
        return _secure(JSONResponse({"error": "no such dashboard API"}, status_code=404))

    async def options(self, request: Request) -> Response:
        if not self.auth.is_logged_in(request):
            return self._unauthorised()
        project = request.query_params.get("project") or None
        try:
            data = await run_in_threadpool(filter_options, self.db, project)
        except StorageUnavailable as exc:
            logger.warning("dashboard options failed: %s", exc)
            return _secure(JSONResponse({"error": "database unavailable"}, status_code=503))
        today = dt.datetime.fromtimestamp(self._state.clock(), dt.UTC).date()
        data["default_from"] = [(today - dt.timedelta(days=DEFAULT_DAYS - 1)).isoformat()]
        data["default_to"] = [today.isoformat()]
        return _secure(JSONResponse(data))

    async def status(self, request: Request) -> Response:
        if not self.auth.is_logged_in(request):
            return self._unauthorised()

        def read() -> int:
            rows = self.db.read("SELECT value FROM dash_state WHERE name = 'received_at'")
            return int(rows[0][0]) if rows else 0

        try:
            watermark = await run_in_threadpool(read)
        except StorageUnavailable:
            return _secure(JSONResponse({"error": "database unavailable"}, status_code=503))
        settled = self._state.now_ms() - int(self._settings.settle_seconds * 1000)
        return _secure(JSONResponse({"summarised_until": watermark, "settled_until": settled}))

    async def panel(self, request: Request) -> Response:
        if not self.auth.is_logged_in(request):
            return self._unauthorised()
        name = request.path_params["name"]
        csv_wanted = name.endswith(".csv")
        panel = PANELS.get(name.removesuffix(".csv"))
        if panel is None:
            return _secure(JSONResponse({"error": "no such panel"}, status_code=404))
        try:
            filters = self._filters(request)
        except _BadQuery as exc:
            return _secure(JSONResponse({"error": str(exc)}, status_code=400))
        try:
            table = await run_in_threadpool(panel.query, self.db, filters)
        except StorageUnavailable as exc:
            logger.warning("dashboard panel %s failed: %s", panel.name, exc)
            return _secure(JSONResponse({"error": "database unavailable"}, status_code=503))
        if not csv_wanted:
            return _secure(JSONResponse(table.as_json()))
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\r\n")
        writer.writerow(table.columns)
        writer.writerows([_csv_cell(v) for v in row] for row in table.rows)
        filename = f"{panel.name}_{filters.project}_{request.query_params.get('from', '')}"
        safe = urllib.parse.quote(filename, safe="")
        response = Response(
            out.getvalue(),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f"attachment; filename*=UTF-8''{safe}.csv"},
        )
        return _secure(response)

    def _filters(self, request: Request) -> Filters:
        q = request.query_params
        project = q.get("project", "")
        if not project:
            raise _BadQuery("project is required")
        today = dt.datetime.fromtimestamp(self._state.clock(), dt.UTC).date()
        try:
            last = dt.date.fromisoformat(q["to"]) if q.get("to") else today
            first = (
                dt.date.fromisoformat(q["from"])
                if q.get("from")
                else last - dt.timedelta(days=DEFAULT_DAYS - 1)
            )
        except (ValueError, OverflowError):  # OverflowError: a range before year 1
            raise _BadQuery("from and to must be dates (YYYY-MM-DD)") from None
        if first > last or (last - first).days >= MAX_DAYS:
            raise _BadQuery(f"from must not be after to, and at most {MAX_DAYS} days before it")
        return Filters(
            project=project,
            first_day=day_number(first),
            last_day=day_number(last),
            app_version=q.get("version") or None,
            os_name=q.get("os") or None,
        )

    async def static(self, request: Request) -> Response:
        entry = _STATIC_FILES.get(request.path_params["name"])
        if entry is None:
            return PlainTextResponse("Not found", status_code=404)
        path, media_type = entry
        response = FileResponse(_STATIC / path, media_type=media_type)
        response.headers["Cache-Control"] = "public, max-age=3600"
        response.headers["X-Content-Type-Options"] = "nosniff"
        return response


def _csv_cell(value: object) -> object:
    """A cell a spreadsheet will not run as a formula (text starting =, +, -, @ gets a ')."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return "" if value is None else value


async def _form(request: Request) -> dict[str, str] | None:
    """The urlencoded form of a small POST, or ``None`` when it is not one."""
    if request.headers.get("content-type", "").split(";")[0].strip() != (
        "application/x-www-form-urlencoded"
    ):
        return None
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > _MAX_FORM_BYTES:
            return None
    try:
        pairs = urllib.parse.parse_qsl(body.decode("utf-8"), keep_blank_values=True)
    except (UnicodeDecodeError, ValueError):
        return None
    return dict(pairs)
