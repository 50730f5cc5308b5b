"""The dashboard's panels: for each, the read-only query over the summaries (or the events and
reports tables) that answers it for one project, date range and filter, as a small table of
columns and rows (what the charts draw and the CSV export holds)."""

from __future__ import annotations

import datetime as dt
import statistics
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from telemetry.collector._dashboard_db import DashboardDB
from telemetry.collector._dashboard_summaries import DAY_MS, FUNNEL_STEPS

__all__ = ["PANELS", "Filters", "Panel", "Table", "day_number", "filter_options"]

_EPOCH: Final = dt.date(1970, 1, 1)


def day_number(date: dt.date) -> int:
    """Days since 1970-01-01."""
    return (date - _EPOCH).days


def _date(day: int) -> str:
    return (_EPOCH + dt.timedelta(days=int(day))).isoformat()


@dataclass(frozen=True)
class Filters:
    """One project, an inclusive range of days (UTC), and optionally one app version and OS."""

    project: str
    first_day: int
    last_day: int
    app_version: str | None = None
    os_name: str | None = None

    def where(self, day_column: str = "day", *, prefix: str = "") -> tuple[str, list[object]]:
        """``WHERE`` conditions (no keyword) and parameters for a summary table."""
        sql = f"{prefix}project = ? AND {prefix}{day_column} BETWEEN ? AND ?"
        params: list[object] = [self.project, self.first_day, self.last_day]
        if self.app_version is not None:
            sql += f" AND {prefix}app_version = ?"
            params.append(self.app_version)
        if self.os_name is not None:
            sql += f" AND {prefix}os_name = ?"
            params.append(self.os_name)
        return sql, params


@dataclass(frozen=True)
class Table:
    """A panel's answer: column names and rows (plus a note shown instead of an empty chart)."""

    columns: tuple[str, ...]
    rows: list[tuple[Any, ...]]
    note: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "columns": list(self.columns),
            "rows": [list(r) for r in self.rows],
            "note": self.note,
        }


@dataclass(frozen=True)
class Panel:
    """One chart of the dashboard."""

    name: str
    title: str
    #: How the page draws it: line, stacked, bar, hbar, doughnut, funnel, table.
    chart: str
    query: Callable[[DashboardDB, Filters], Table]
    help: str = ""


def _every_day(rows: list[tuple[Any, ...]], f: Filters) -> list[tuple[Any, ...]]:
    """(date, count) for every day of the range, 0 where ``rows`` (day number, count) has none."""
    counts = {int(d): int(n) for d, n in rows}
    return [(_date(d), counts.get(d, 0)) for d in range(f.first_day, f.last_day + 1)]


def _active(db: DashboardDB, f: Filters) -> Table:
    where, params = f.where()
    rows = db.read(
        f"SELECT day, count(DISTINCT device_id) FROM dash_device_days WHERE {where} "
        "GROUP BY day ORDER BY day",
        params,
    )
    return Table(("day", "active_devices"), _every_day(rows, f))


def _active_weekly(db: DashboardDB, f: Filters) -> Table:
    where, params = f.where()
    # Day 4 (1970-01-05) is a Monday: weeks run Monday to Sunday.
    rows = db.read(
        f"SELECT (day + 3) / 7 AS week, count(DISTINCT device_id) FROM dash_device_days "
        f"WHERE {where} GROUP BY (day + 3) / 7 ORDER BY week",
        params,
    )
    return Table(("week_from", "active_devices"), [(_date(w * 7 - 3), int(n)) for w, n in rows])


def _active_monthly(db: DashboardDB, f: Filters) -> Table:
    where, params = f.where()
    month = db.month("day")
    rows = db.read(
        f"SELECT {month} AS month, count(DISTINCT device_id) FROM dash_device_days "
        f"WHERE {where} GROUP BY {month} ORDER BY month",
        params,
    )
    return Table(("month", "active_devices"), [(str(m), int(n)) for m, n in rows])


def _new_devices(db: DashboardDB, f: Filters) -> Table:
    where, params = f.where("first_day")
    rows = db.read(
        f"SELECT first_day, count(*) FROM dash_devices WHERE {where} "
        "GROUP BY first_day ORDER BY first_day",
        params,
    )
    return Table(("day", "new_devices"), _every_day(rows, f))


def _events_by_type(db: DashboardDB, f: Filters) -> Table:
    where, params = f.where()
    rows = db.read(
        f"SELECT day, event_type, sum(events) FROM dash_event_days WHERE {where} "
        "GROUP BY day, event_type ORDER BY day, event_type",
        params,
    )
    return Table(("day", "event_type", "events"), [(_date(d), t, int(n)) for d, t, n in rows])


def _top_events(db: DashboardDB, f: Filters) -> Table:
    where, params = f.where()
    rows = db.read(
        f"SELECT event_type, sum(events) AS n FROM dash_event_days WHERE {where} "
        "GROUP BY event_type ORDER BY n DESC, event_type LIMIT 20",
        params,
    )
    return Table(("event_type", "events"), [(t, int(n)) for t, n in rows])


def _versions(db: DashboardDB, f: Filters) -> Table:
    where, params = f.where()
    rows = db.read(
        f"SELECT day, app_version, count(DISTINCT device_id) FROM dash_device_days "
        f"WHERE {where} GROUP BY day, app_version ORDER BY day, app_version",
        params,
    )
    return Table(
        ("day", "app_version", "devices"), [(_date(d), v or "(none)", int(n)) for d, v, n in rows]
    )


def _split(column: str) -> Callable[[DashboardDB, Filters], Table]:
    def query(db: DashboardDB, f: Filters) -> Table:
        where, params = f.where()
        rows = db.read(
            f"SELECT {column}, count(DISTINCT device_id) AS n FROM dash_device_days "
            f"WHERE {where} GROUP BY {column} ORDER BY n DESC, {column}",
            params,
        )
        return Table((column, "devices"), [(v or "(none)", int(n)) for v, n in rows])

    return query


def _drive_types(db: DashboardDB, f: Filters) -> Table:
    where, params = f.where()
    rows = db.read(
        f"SELECT drive_type, sum(flashes) AS n FROM dash_flash_days WHERE {where} "
        "GROUP BY drive_type ORDER BY n DESC, drive_type",
        params,
    )
    return Table(("drive_type", "flashes"), [(d, int(n)) for d, n in rows])


def _flash_success(db: DashboardDB, f: Filters) -> Table:
    where, params = f.where()
    rows = db.read(
        "SELECT drive_type, compression, "
        "sum(CASE WHEN outcome = 'finished' THEN flashes ELSE 0 END), "
        "sum(CASE WHEN outcome = 'failed' THEN flashes ELSE 0 END), "
        "sum(CASE WHEN outcome = 'cancelled' THEN flashes ELSE 0 END) "
        f"FROM dash_flash_days WHERE {where} GROUP BY drive_type, compression "
        "ORDER BY drive_type, compression",
        params,
    )
    out = []
    for drive, compression, ok, failed, cancelled in rows:
        ended = int(ok) + int(failed)
        rate = round(100.0 * int(ok) / ended, 1) if ended else None
        out.append((drive, compression, int(ok), int(failed), int(cancelled), rate))
    return Table(
        ("drive_type", "compression", "finished", "failed", "cancelled", "success_percent"), out
    )


def _funnel(db: DashboardDB, f: Filters) -> Table:
    where, params = f.where()
    masks = []
    mask = 0
    for bit, _, _ in FUNNEL_STEPS:
        mask |= bit
        masks.append(mask)
    sums = ", ".join(f"sum(CASE WHEN (steps & {m}) = {m} THEN 1 ELSE 0 END)" for m in masks)
    row = db.read(f"SELECT {sums} FROM dash_workflows WHERE {where}", params)[0]
    counts = [int(v or 0) for v in row]
    first = counts[0]
    return Table(
        ("step", "workflows", "percent_of_first"),
        [
            (label, n, round(100.0 * n / first, 1) if first else None)
            for (_, _, label), n in zip(FUNNEL_STEPS, counts, strict=True)
        ],
    )


def _speed(db: DashboardDB, f: Filters) -> Table:
    where, params = f.where()
    cond = f"outcome = 'finished' AND {where} AND mbps IS NOT NULL"
    if db.dialect == "postgresql":
        # One scan: each drive type, and (drive type NULL) all of them.
        rows = db.read(
            "SELECT drive_type, count(*), percentile_cont(0.5) WITHIN GROUP (ORDER BY mbps) "
            f"FROM dash_flashes WHERE {cond} GROUP BY GROUPING SETS ((drive_type), ()) "
            "ORDER BY drive_type NULLS LAST",
            params,
        )
        out = [
            ("(all)" if d is None else d, int(n), round(float(m), 2)) for d, n, m in rows if int(n)
        ]
    else:
        values: dict[str, list[float]] = {}
        for drive, mbps in db.read(
            f"SELECT drive_type, mbps FROM dash_flashes WHERE {cond}", params
        ):
            values.setdefault(drive, []).append(float(mbps))
        out = [(d, len(v), round(statistics.median(v), 2)) for d, v in sorted(values.items())]
        every = [x for v in values.values() for x in v]
        if every:
            out.append(("(all)", len(every), round(statistics.median(every), 2)))
    return Table(("drive_type", "finished_flashes", "median_mb_per_s"), out)


def _errors(db: DashboardDB, f: Filters) -> Table:
    columns = ("fingerprint", "exception", "occurrences", "reports", "first_seen", "last_seen")
    if not db.table_exists("reports"):
        return Table(columns, [], note="no error reports")
    sql = (
        "SELECT fingerprint, max(coalesce(exception_type, '') || ': ' || "
        "coalesce(exception_value, '')), sum(count) AS n, count(*), min(first_seen), "
        "max(last_seen) FROM reports WHERE project = ? AND last_seen >= ? AND first_seen < ?"
    )
    params: list[object] = [f.project, f.first_day * DAY_MS, (f.last_day + 1) * DAY_MS]
    if f.app_version is not None:
        sql += " AND release = ?"
        params.append(f.app_version)
    sql += " GROUP BY fingerprint ORDER BY n DESC, fingerprint LIMIT 20"
    rows = [
        (
            str(fp)[:12],
            str(text)[:120],
            int(n),
            int(reports),
            _stamp(first),
            _stamp(last),
        )
        for fp, text, n, reports, first, last in db.read(sql, params)
    ]
    return Table(columns, rows, note=None if rows else "no error reports")


def _stamp(ms: int) -> str:
    return dt.datetime.fromtimestamp(int(ms) / 1000, dt.UTC).strftime("%Y-%m-%d %H:%M")


#: How many events the live view shows.
LIVE_EVENTS: Final = 50


def _live(db: DashboardDB, f: Filters) -> Table:
    src = "e.event::jsonb" if db.dialect == "postgresql" else "e.event"
    rows = db.read(
        f"SELECT e.received_at, e.event_type, e.device_id, {db.json_text(src, 'app_version')}, "
        f"{db.json_text(src, 'os_name')} FROM events AS e WHERE e.project = ? "
        f"ORDER BY e.id DESC LIMIT {LIVE_EVENTS}",
        (f.project,),
    )
    return Table(
        ("received", "event_type", "device", "app_version", "os_name"),
        [
            (
                dt.datetime.fromtimestamp(int(r) / 1000, dt.UTC).strftime("%Y-%m-%d %H:%M:%S"),
                t,
                (d or "")[:8],
                v or "",
                o or "",
            )
            for r, t, d, v, o in rows
        ],
    )


PANELS: Final[dict[str, Panel]] = {
    p.name: p
    for p in (
        Panel("active_daily", "Active devices per day", "line", _active),
        Panel("active_weekly", "Active devices per week", "bar", _active_weekly),
        Panel("active_monthly", "Active devices per month", "bar", _active_monthly),
        Panel(
            "new_devices",
            "New devices per day",
            "line",
            _new_devices,
            "Devices whose first event fell on that day.",
        ),
        Panel("events_by_type", "Events per day by type", "stacked", _events_by_type),
        Panel("top_events", "Top events", "hbar", _top_events),
        Panel("versions", "App version adoption (devices per day)", "stacked", _versions),
        Panel("os_split", "Operating systems (devices)", "doughnut", _split("os_name")),
        Panel("languages", "Languages (devices)", "doughnut", _split("language")),
        Panel("drive_types", "Drive types used (flashes)", "hbar", _drive_types),
        Panel(
            "flash_success",
            "Flash success rate by drive type and compression",
            "success",
            _flash_success,
            "finished / (finished + failed); cancels are not failures.",
        ),
        Panel(
            "funnel",
            "Select image → Select target → Flash → Done (workflows)",
            "funnel",
            _funnel,
            "Flashing workflows (flashingWorkflowUuid) that reached each step and "
            "every step before it.",
        ),
        Panel("speed", "Median write speed (MB/s) of finished flashes", "hbar", _speed),
        Panel("errors", "Error and crash groups", "table", _errors),
        Panel(
            "live",
            "Last events (live)",
            "table",
            _live,
            "The project's newest stored events, whatever the date range and filters.",
        ),
    )
}


def filter_options(db: DashboardDB, project: str | None) -> dict[str, list[str]]:
    """The projects, and the app versions and OS names of ``project``, that the summaries know."""
    projects = [
        str(r[0]) for r in db.read("SELECT DISTINCT project FROM dash_event_days ORDER BY project")
    ]
    chosen = project if project is not None else (projects[0] if projects else "")
    versions = [
        str(r[0])
        for r in db.read(
            "SELECT DISTINCT app_version FROM dash_event_days WHERE project = ? "
            "ORDER BY app_version",
            (chosen,),
        )
        if r[0]
    ]
    systems = [
        str(r[0])
        for r in db.read(
            "SELECT DISTINCT os_name FROM dash_event_days WHERE project = ? ORDER BY os_name",
            (chosen,),
        )
        if r[0]
    ]
    return {"projects": projects, "versions": versions, "os_names": systems}
