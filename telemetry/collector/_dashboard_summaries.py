"""The dashboard's summaries (the ``dash_*`` tables of schema 6): how new events are folded into
them, and how a deleted device leaves them.

Events are read in order of ``received_at``, in chunks of about :data:`CHUNK_ROWS` rows, each
chunk in its own short write transaction, up to ``now - settle`` (a batch's ``received_at`` is
taken when its request starts, so a batch still being received or committed may carry an older
one; ``settle_seconds`` leaves it time to land). The watermark is ``dash_state.received_at``.

Each chunk is parsed once into a temporary table, then added to:

- ``dash_device_days``: one row per project, day, device and (app version, OS, language);
- ``dash_devices``: each device's first day (with its app version and OS that day);
- ``dash_event_days``: events per project, day, type, app version and OS;
- ``dash_flashes``: one row per finished, failed or cancelled flash of the demo (drive type,
  image compression, MB/s), and ``dash_flash_days`` their count per day and kind;
- ``dash_workflows``: per flashing workflow of the demo, the funnel steps it reached.

A deletion request (a tombstone newer than ``dash_state.tombstones``) removes the device's rows
from the device-keyed tables; ``dash_flash_days`` of its project is counted again from
``dash_flashes``, and ``dash_event_days`` from the events that remain (read without holding the
write lock, then swapped in by a short write).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Final

from telemetry.collector._dashboard_db import DashboardDB, Executor

__all__ = [
    "ANALYZE_AFTER",
    "CHUNK_ROWS",
    "DAY_MS",
    "FLASH_OUTCOMES",
    "FUNNEL_STEPS",
    "SUMMARY_TABLES",
    "RefreshResult",
    "expire_summaries",
    "refresh_summaries",
]

logger = logging.getLogger("telemetry.collector")

DAY_MS: Final = 86_400_000
#: A refresh adding at least this many events updates the summaries' planner statistics.
ANALYZE_AFTER: Final = 100_000
SUMMARY_TABLES: Final = (
    "dash_device_days",
    "dash_devices",
    "dash_event_days",
    "dash_flashes",
    "dash_flash_days",
    "dash_workflows",
)
CHUNK_ROWS: Final = 20_000

#: The demo's funnel: (bit, event type, label).
FUNNEL_STEPS: Final = (
    (1, "[Etcher] Select image", "Select image"),
    (2, "[Etcher] Toggle drive", "Select target"),
    (4, "[Etcher] Flash", "Flash"),
    (8, "[Etcher] Done", "Done"),
)

#: The demo's event ending a flash -> outcome.
FLASH_OUTCOMES: Final = {
    "[Etcher] Done": "finished",
    "[Etcher] Write failed": "failed",
    "[Etcher] Cancel": "cancelled",
}


@dataclass(frozen=True)
class RefreshResult:
    """What one :func:`refresh_summaries` did."""

    events: int
    deleted_devices: int
    watermark: int


def _state(execute: Executor, name: str) -> int:
    rows = execute("SELECT value FROM dash_state WHERE name = ?", (name,))
    return int(rows[0][0]) if rows else 0


def _set_state(execute: Executor, name: str, value: int) -> None:
    execute(
        "INSERT INTO dash_state (name, value) VALUES (?, ?) "
        "ON CONFLICT (name) DO UPDATE SET value = excluded.value",
        (name, value),
    )


def _quoted(values: Iterable[str]) -> str:
    return ", ".join("'" + v.replace("'", "''") + "'" for v in values)


def _stage_sql(db: DashboardDB) -> str:
    """SELECT of the staged columns of the events with ``received_at`` in ``(?, ?]``
    (and, with a third ``?`` of 1, only those of project ``?``)."""
    pg = db.dialect == "postgresql"
    src = "j.doc" if pg else "e.event"
    lateral = " CROSS JOIN LATERAL (SELECT e.event::jsonb AS doc) AS j" if pg else ""
    demo = _quoted([*FLASH_OUTCOMES, *(t for _, t, _ in FUNNEL_STEPS)])
    flashes = _quoted(FLASH_OUTCOMES)

    def text(*path: str | int) -> str:
        return db.json_text(src, *path)

    mbps = db.json_number(src, "event_properties", "mbPerSecond")
    outcome = " ".join(f"WHEN '{t}' THEN '{o}'" for t, o in FLASH_OUTCOMES.items())
    step = " ".join(f"WHEN '{t}' THEN {bit}" for bit, t, _ in FUNNEL_STEPS)
    drive = (
        f"CASE WHEN {text('event_properties', 'targetType')} = 'file' THEN 'file' "
        f"ELSE coalesce({text('event_properties', 'drives', 0, 'drive_type')}, 'unknown') END"
    )
    return f"""
        SELECT e.id, e.project, e.device_id,
               coalesce(e.event_time, e.received_at) / {DAY_MS} AS day, e.event_type,
               coalesce({text("app_version")}, '') AS app_version,
               coalesce({text("os_name")}, '') AS os_name,
               coalesce({text("language")}, '') AS language,
               CASE WHEN e.event_type IN ({demo})
                    THEN {text("event_properties", "flashingWorkflowUuid")} END AS workflow,
               CASE e.event_type {step} ELSE 0 END AS step,
               CASE e.event_type {outcome} END AS outcome,
               CASE WHEN e.event_type IN ({flashes}) THEN {drive} END AS drive_type,
               CASE WHEN e.event_type IN ({flashes}) THEN
                    coalesce({text("event_properties", "image", "compression")}, 'none') END
                    AS compression,
               CASE WHEN e.event_type = '[Etcher] Done' THEN {mbps} END AS mbps
        FROM events AS e{lateral}
        WHERE e.received_at > ? AND e.received_at <= ? AND (? = 0 OR e.project = ?)
    """


_STAGE_COLUMNS: Final = (
    "id BIGINT, project TEXT, device_id TEXT, day INTEGER, event_type TEXT, app_version TEXT, "
    "os_name TEXT, language TEXT, workflow TEXT, step INTEGER, outcome TEXT, drive_type TEXT, "
    "compression TEXT, mbps DOUBLE PRECISION"
)


def _stage(db: DashboardDB, execute: Executor, params: tuple[object, ...]) -> int:
    if db.dialect == "sqlite":
        execute("DROP TABLE IF EXISTS temp.dash_stage")
        execute(f"CREATE TEMP TABLE dash_stage ({_STAGE_COLUMNS})")
    else:
        execute("DROP TABLE IF EXISTS pg_temp.dash_stage")
        execute(f"CREATE TEMP TABLE dash_stage ({_STAGE_COLUMNS}) ON COMMIT DROP")
    execute(f"INSERT INTO dash_stage {_stage_sql(db)}", params)
    return int(execute("SELECT count(*) FROM dash_stage")[0][0])


def _fold_event_days(execute: Executor) -> None:
    execute(
        "INSERT INTO dash_event_days (project, day, event_type, app_version, os_name, events) "
        "SELECT project, day, event_type, app_version, os_name, count(*) FROM dash_stage "
        "WHERE true GROUP BY project, day, event_type, app_version, os_name "
        "ON CONFLICT (project, day, event_type, app_version, os_name) "
        "DO UPDATE SET events = dash_event_days.events + excluded.events"
    )


def _fold_flash_days(execute: Executor, source: str) -> None:
    execute(
        "INSERT INTO dash_flash_days (project, day, drive_type, compression, outcome, "
        "app_version, os_name, flashes) SELECT project, day, drive_type, compression, outcome, "
        f"app_version, os_name, count(*) FROM {source} "
        "GROUP BY project, day, drive_type, compression, outcome, app_version, os_name "
        "ON CONFLICT (project, day, drive_type, compression, outcome, app_version, os_name) "
        "DO UPDATE SET flashes = dash_flash_days.flashes + excluded.flashes"
    )


def _fold(db: DashboardDB, execute: Executor) -> None:
    """Add the staged events to every summary."""
    execute(
        "INSERT INTO dash_device_days "
        "(project, day, device_id, app_version, os_name, language, events) "
        "SELECT project, day, device_id, app_version, os_name, language, count(*) "
        "FROM dash_stage WHERE device_id IS NOT NULL "
        "GROUP BY project, day, device_id, app_version, os_name, language "
        "ON CONFLICT (project, day, device_id, app_version, os_name, language) "
        "DO UPDATE SET events = dash_device_days.events + excluded.events"
    )
    if db.dialect == "sqlite":
        # A bare column next to min() comes from the row holding the minimum.
        firsts = (
            "SELECT project, device_id, min(day), app_version, os_name FROM dash_stage "
            "WHERE device_id IS NOT NULL GROUP BY project, device_id"
        )
    else:
        firsts = (
            "SELECT DISTINCT ON (project, device_id) project, device_id, day, app_version, "
            "os_name FROM dash_stage WHERE device_id IS NOT NULL "
            "ORDER BY project, device_id, day"
        )
    execute(
        "INSERT INTO dash_devices (project, device_id, first_day, app_version, os_name) "
        f"SELECT * FROM ({firsts}) AS f WHERE true "
        "ON CONFLICT (project, device_id) DO UPDATE SET first_day = excluded.first_day, "
        "app_version = excluded.app_version, os_name = excluded.os_name "
        "WHERE excluded.first_day < dash_devices.first_day"
    )
    _fold_event_days(execute)
    execute(
        "INSERT INTO dash_flashes (event_row, project, day, device_id, outcome, drive_type, "
        "compression, mbps, app_version, os_name) "
        "SELECT id, project, day, device_id, outcome, drive_type, compression, mbps, "
        "app_version, os_name FROM dash_stage WHERE outcome IS NOT NULL "
        "ON CONFLICT (event_row) DO NOTHING"
    )
    _fold_flash_days(execute, "dash_stage WHERE outcome IS NOT NULL")
    bits = " + ".join(
        f"max(CASE WHEN step = {bit} THEN {bit} ELSE 0 END)" for bit, _, _ in FUNNEL_STEPS
    )
    execute(
        "INSERT INTO dash_workflows "
        "(project, workflow, day, device_id, app_version, os_name, steps) "
        f"SELECT project, workflow, min(day), max(device_id), max(app_version), max(os_name), "
        f"{bits} FROM dash_stage WHERE workflow IS NOT NULL GROUP BY project, workflow "
        "ON CONFLICT (project, workflow) DO UPDATE SET "
        f"day = {db.least('dash_workflows.day', 'excluded.day')}, "
        "steps = dash_workflows.steps | excluded.steps"
    )


def _next_bound(db: DashboardDB, low: int, limit: int) -> int:
    """The ``received_at`` closing a chunk of about :data:`CHUNK_ROWS` rows after ``low``."""
    rows = db.read(
        "SELECT received_at FROM events WHERE received_at > ? AND received_at <= ? "
        "ORDER BY received_at LIMIT 1 OFFSET ?",
        (low, limit, CHUNK_ROWS),
    )
    return min(int(rows[0][0]), limit) if rows else limit


def _forget_deleted(execute: Executor, seen: int) -> tuple[int, int]:
    """Remove the devices tombstoned after ``seen`` from the device-keyed summaries, count
    their projects' flashes per day again, and mark the projects' event counts for a recount.
    Returns (devices, newest deleted_at)."""
    rows = execute(
        "SELECT project, device_id, deleted_at FROM tombstones WHERE deleted_at > ?", (seen,)
    )
    if not rows:
        return 0, seen
    projects = sorted({str(r[0]) for r in rows})
    for project, device, _ in rows:
        for table in ("dash_device_days", "dash_devices", "dash_flashes", "dash_workflows"):
            execute(f"DELETE FROM {table} WHERE project = ? AND device_id = ?", (project, device))
    for project in projects:
        execute("DELETE FROM dash_flash_days WHERE project = ?", (project,))
        quoted = project.replace("'", "''")
        _fold_flash_days(execute, f"dash_flashes WHERE project = '{quoted}'")
        _set_state(execute, _RECOUNT + project, 1)
    return len(rows), max(seen, *(int(r[2]) for r in rows))


#: ``dash_state`` names of the projects whose ``dash_event_days`` must be counted again.
_RECOUNT: Final = "recount:"


def _recount_events(db: DashboardDB) -> None:
    """Count again, from the events table, the events per day and type of each project marked
    for a recount. The counting is a read (no write lock is held while the events are scanned);
    the short write that replaces the project's rows checks that the watermark has not moved."""
    marked = db.read("SELECT name FROM dash_state WHERE name LIKE 'recount:%'")
    for (name,) in marked:
        project = str(name)[len(_RECOUNT) :]
        watermark = int(
            db.read("SELECT coalesce(max(value), 0) FROM dash_state WHERE name = 'received_at'")[0][
                0
            ]
        )
        pg = db.dialect == "postgresql"
        src = "j.doc" if pg else "e.event"
        lateral = " CROSS JOIN LATERAL (SELECT e.event::jsonb AS doc) AS j" if pg else ""
        counts = db.read(
            f"SELECT coalesce(e.event_time, e.received_at) / {DAY_MS} AS day, e.event_type, "
            f"coalesce({db.json_text(src, 'app_version')}, '') AS v, "
            f"coalesce({db.json_text(src, 'os_name')}, '') AS o, count(*) "
            f"FROM events AS e{lateral} WHERE e.project = ? AND e.received_at <= ? "
            "GROUP BY 1, 2, 3, 4",
            (project, watermark),
        )

        def replace(
            execute: Executor,
            project: str = project,
            watermark: int = watermark,
            counts: list[tuple[object, ...]] = counts,
        ) -> None:
            if _state(execute, "received_at") != watermark:
                return  # another refresh moved on: recount next time
            execute("DELETE FROM dash_event_days WHERE project = ?", (project,))
            for start in range(0, len(counts), 200):
                part = counts[start : start + 200]
                execute(
                    "INSERT INTO dash_event_days "
                    "(project, day, event_type, app_version, os_name, events) VALUES "
                    + ", ".join(["(?, ?, ?, ?, ?, ?)"] * len(part)),
                    [v for row in part for v in (project, *row)],
                )
            execute("DELETE FROM dash_state WHERE name = ?", (_RECOUNT + project,))

        db.write(replace)


#: Each summary table and its day column.
_DAY_COLUMNS: Final = (
    ("dash_device_days", "day"),
    ("dash_devices", "first_day"),
    ("dash_event_days", "day"),
    ("dash_flashes", "day"),
    ("dash_flash_days", "day"),
    ("dash_workflows", "day"),
)


def expire_summaries(
    db: DashboardDB, *, now_ms: int, rules: Sequence[tuple[str | None, float]]
) -> None:
    """Delete the summary rows of days that ended before the retention cutoff of their project
    (``rules``: ``(project, days)``, ``None`` standing for every project without its own)."""
    own = [p for p, _ in rules if p is not None]

    def work(execute: Executor) -> None:
        for project, days in rules:
            first_kept = (now_ms - int(days * DAY_MS)) // DAY_MS
            if project is not None:
                cond, params = "project = ?", [project]
            elif own:
                cond, params = f"project NOT IN ({', '.join('?' * len(own))})", list(own)
            else:
                cond, params = "1 = 1", []
            for table, column in _DAY_COLUMNS:
                execute(f"DELETE FROM {table} WHERE {column} < ? AND {cond}", [first_kept, *params])

    if rules:
        db.write(work)


def refresh_summaries(db: DashboardDB, *, now_ms: int, settle_ms: int) -> RefreshResult:
    """Bring the summaries up to the events received by ``now_ms - settle_ms``, and forget the
    devices deleted since the last refresh."""
    limit = now_ms - settle_ms

    def deletions(execute: Executor) -> int:
        seen = _state(execute, "tombstones")
        count, newest = _forget_deleted(execute, seen)
        if newest != seen:
            _set_state(execute, "tombstones", newest)
        return count

    deleted = db.write(deletions)
    _recount_events(db)
    total = 0
    watermark = int(
        db.read("SELECT coalesce(max(value), 0) FROM dash_state WHERE name = 'received_at'")[0][0]
    )
    while watermark < limit:
        bound = _next_bound(db, watermark, limit)

        def chunk(execute: Executor, low: int = watermark, high: int = bound) -> int:
            if _state(execute, "received_at") != low:
                return -1  # another refresh moved on: start again from its watermark
            count = _stage(db, execute, (low, high, 0, ""))
            if count:
                _fold(db, execute)
            _set_state(execute, "received_at", high)
            return count

        done = db.write(chunk)
        if done < 0:
            watermark = int(
                db.read("SELECT value FROM dash_state WHERE name = 'received_at'")[0][0]
            )
            continue
        total += done
        watermark = bound
    if total:
        logger.info("dashboard summaries: %d events added", total)
    if total >= ANALYZE_AFTER:
        # Fresh statistics after a large catch-up, so the planner uses the covering indexes.
        db.write(lambda execute: [execute(f"ANALYZE {t}") for t in SUMMARY_TABLES])
    return RefreshResult(events=total, deleted_devices=deleted, watermark=watermark)
