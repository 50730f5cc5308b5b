"""The dashboard's summary tables, declared once for both backends (the statements are the
same in SQLite and PostgreSQL): :data:`DASHBOARD_SUMMARY_TABLES` is a migration of each backend's
schema (SQLite version 6, PostgreSQL version 6), so it is frozen: a change is a new migration."""

from __future__ import annotations

from typing import Final

__all__ = ["DASHBOARD_SUMMARY_TABLES"]

#: Creates the summary tables and their indexes (a migration: never edit it).
DASHBOARD_SUMMARY_TABLES: Final[tuple[str, ...]] = (
    # The dashboard's summaries (telemetry/collector/_dashboard_summaries.py keeps them up to
    # date from the events table; device-keyed ones lose a device's rows when it is deleted).
    """
        CREATE TABLE dash_device_days (
            project TEXT NOT NULL,
            day INTEGER NOT NULL,
            device_id TEXT NOT NULL,
            app_version TEXT NOT NULL,
            os_name TEXT NOT NULL,
            language TEXT NOT NULL,
            events BIGINT NOT NULL,
            PRIMARY KEY (project, day, device_id, app_version, os_name, language)
        )
        """,
    "CREATE INDEX dash_device_days_device ON dash_device_days (project, device_id)",
    """
        CREATE TABLE dash_devices (
            project TEXT NOT NULL,
            device_id TEXT NOT NULL,
            first_day INTEGER NOT NULL,
            app_version TEXT NOT NULL,
            os_name TEXT NOT NULL,
            PRIMARY KEY (project, device_id)
        )
        """,
    "CREATE INDEX dash_devices_first ON dash_devices (project, first_day)",
    """
        CREATE TABLE dash_event_days (
            project TEXT NOT NULL,
            day INTEGER NOT NULL,
            event_type TEXT NOT NULL,
            app_version TEXT NOT NULL,
            os_name TEXT NOT NULL,
            events BIGINT NOT NULL,
            PRIMARY KEY (project, day, event_type, app_version, os_name)
        )
        """,
    """
        CREATE TABLE dash_flashes (
            event_row BIGINT PRIMARY KEY,
            project TEXT NOT NULL,
            day INTEGER NOT NULL,
            device_id TEXT,
            outcome TEXT NOT NULL,
            drive_type TEXT NOT NULL,
            compression TEXT NOT NULL,
            mbps DOUBLE PRECISION,
            app_version TEXT NOT NULL,
            os_name TEXT NOT NULL
        )
        """,
    # Covers the median speed query (finished flashes of a project in a range of days).
    "CREATE INDEX dash_flashes_speed ON dash_flashes "
    "(project, outcome, day, drive_type, mbps, app_version, os_name)",
    "CREATE INDEX dash_flashes_device ON dash_flashes (project, device_id)",
    """
        CREATE TABLE dash_flash_days (
            project TEXT NOT NULL,
            day INTEGER NOT NULL,
            drive_type TEXT NOT NULL,
            compression TEXT NOT NULL,
            outcome TEXT NOT NULL,
            app_version TEXT NOT NULL,
            os_name TEXT NOT NULL,
            flashes BIGINT NOT NULL,
            PRIMARY KEY (project, day, drive_type, compression, outcome, app_version, os_name)
        )
        """,
    """
        CREATE TABLE dash_workflows (
            project TEXT NOT NULL,
            workflow TEXT NOT NULL,
            day INTEGER NOT NULL,
            device_id TEXT,
            app_version TEXT NOT NULL,
            os_name TEXT NOT NULL,
            steps INTEGER NOT NULL,
            PRIMARY KEY (project, workflow)
        )
        """,
    "CREATE INDEX dash_workflows_day ON dash_workflows (project, day, steps, app_version, os_name)",
    "CREATE INDEX dash_workflows_device ON dash_workflows (project, device_id)",
    "CREATE TABLE dash_state (name TEXT PRIMARY KEY, value BIGINT NOT NULL)",
)
