"""The collector's public surface, pinned: ``telemetry.collector.__all__``, the signature of each
public function and class constructor, the storage interface, and where the public exceptions sit
in the package's exception tree.

A failure here means the public surface changed. If that is intended, update the pin in the same
change and say so in its description; otherwise undo the change.
"""

from __future__ import annotations

import inspect

import telemetry.collector
import telemetry.errors
from telemetry.collector import Storage

ALL = [
    "SCHEMA_VERSION",
    "BatchToStore",
    "CollectorConfig",
    "ConfigError",
    "DeletionResult",
    "EventStore",
    "InsertResult",
    "Storage",
    "StorageUnavailable",
    "create_app",
    "load_config",
    "main",
    "open_storage",
    "serve",
    "stored_events",
]

#: ``str(inspect.signature(...))`` of each public function and class constructor.
SIGNATURES = {
    "BatchToStore": (
        "(batch: 'Batch', received_at_ms: 'int', skew_ms: 'int' = 0, forward: 'bool' = False) "
        "-> None"
    ),
    "CollectorConfig": (
        "(projects: 'dict[str, dict[str, Secret]] | None' = None, "
        "forward_url: 'str' = 'https://api2.amplitude.com/2/httpapi', "
        "links: 'LinkSettings | None' = None, device_events_per_second: 'float' = 1000.0, "
        "device_burst_events: 'int' = 30000, source: 'str' = '(embedded default)', "
        "reports: 'dict[str, ReportSettings]' = <factory>, "
        "retention_days: 'float | None' = None, "
        "project_retention_days: 'dict[str, float]' = <factory>, "
        "dashboard: 'DashboardSettings | None' = None) -> None"
    ),
    "DeletionResult": (
        "(deleted: 'int', forwards_deleted: 'int', verified: 'bool' = True, "
        "reports_deleted: 'int' = 0) -> None"
    ),
    "EventStore": "(path: 'str | Path', *, busy_timeout_ms: 'int' = 5000) -> 'None'",
    "InsertResult": "(inserted: 'int', duplicates: 'int', rejected: 'int' = 0) -> None",
    "Storage": "()",
    "create_app": (
        "(database: 'str | Path | Storage', *, config: 'CollectorConfig | None' = None, "
        "environment: 'str' = 'production', forward_interval: 'float' = 1.0, "
        "forward_backoff: 'float' = 5.0, background: 'bool' = True) -> 'Starlette'"
    ),
    "load_config": "(path: 'str | Path | None') -> 'CollectorConfig'",
    "main": "(argv: 'Sequence[str] | None' = None) -> 'int'",
    "open_storage": "(database: 'str | Path | Storage') -> 'Storage'",
    "serve": (
        "(host: 'str', port: 'int', database: 'str | Path', *, ready_file: 'Path | None' = None, "
        "config: 'CollectorConfig | None' = None, environment: 'str' = 'production', "
        "forward_interval: 'float' = 1.0, workers: \"int | Literal['auto']\" = 'auto') -> 'int'"
    ),
    "stored_events": "(database: 'str | Path') -> 'list[dict[str, Any]]'",
}

#: The abstract methods of :class:`Storage` (every backend implements them), with signatures.
STORAGE_METHODS = {
    "check_writable": "(self) -> 'None'",
    "claim_forwards": "(self, *, now: 'int', lease_ms: 'int', limit: 'int') -> 'list[ForwardRow]'",
    "claim_report_forwards": (
        "(self, *, now: 'int', lease_ms: 'int', limit: 'int') -> 'list[ReportForward]'"
    ),
    "close": "(self) -> 'None'",
    "count": "(self) -> 'int'",
    "delete_device": (
        "(self, project: 'str', device_id: 'str', reason: 'str', *, proof_hash: 'str | None' "
        "= None, now: 'int | None' = None, max_tombstones: 'int' = 100000) -> 'DeletionResult'"
    ),
    "forward_done": "(self, ids: 'Sequence[int]') -> 'None'",
    "forward_expire": "(self, created_before: 'int') -> 'int'",
    "forward_pending": "(self, ids: 'Sequence[int]') -> 'set[int]'",
    "forward_retry": "(self, ids: 'Sequence[int]', next_attempt_at: 'int') -> 'None'",
    "insert_batch": (
        "(self, batch: 'Batch', *, received_at_ms: 'int | None' = None, skew_ms: 'int' = 0, "
        "forward: 'bool' = False) -> 'InsertResult'"
    ),
    "insert_link_hits": "(self, hits: 'Iterable[LinkHit]') -> 'None'",
    "insert_report": (
        "(self, report: 'Report', *, received_at_ms: 'int | None' = None, "
        "forward: 'bool' = False) -> 'InsertResult'"
    ),
    "outbox_count": "(self) -> 'int'",
    "purge_expired": (
        "(self, *, cutoff_ms: 'int', project: 'str | None', excluded: 'Sequence[str]' = (), "
        "limit: 'int') -> 'int'"
    ),
    "report_count": "(self) -> 'int'",
    "report_forward_done": "(self, ids: 'Sequence[int]') -> 'None'",
    "report_forward_expire": "(self, created_before: 'int') -> 'int'",
    "report_forward_pending": "(self, ids: 'Sequence[int]') -> 'set[int]'",
    "report_forward_retry": "(self, ids: 'Sequence[int]', next_attempt_at: 'int') -> 'None'",
    "report_groups": "(self, project: 'str | None' = None) -> 'list[ReportGroup]'",
    "schema_version": "(self) -> 'int'",
}


def test_all_is_pinned() -> None:
    assert telemetry.collector.__all__ == ALL
    for name in ALL:
        assert hasattr(telemetry.collector, name), name


def test_every_callable_in_all_has_a_pinned_signature() -> None:
    exceptions = {"ConfigError", "StorageUnavailable"}
    callables = {
        name
        for name in ALL
        if callable(getattr(telemetry.collector, name)) and name not in exceptions
    }
    assert callables == set(SIGNATURES)


def test_signatures_are_pinned() -> None:
    actual = {
        name: str(inspect.signature(getattr(telemetry.collector, name))) for name in SIGNATURES
    }
    assert actual == SIGNATURES


def test_storage_interface_is_pinned() -> None:
    actual = {}
    for name in Storage.__abstractmethods__:
        member = getattr(Storage, name)
        function = member.fget if isinstance(member, property) else member
        actual[name] = str(inspect.signature(function))
    assert actual == STORAGE_METHODS


def test_schema_version_is_pinned() -> None:
    # A new migration raises it on purpose; update this pin with the migration.
    # 3: device_proofs (proof of ownership, trust on first use) and tombstones.proof_hash.
    # 4: reports and report_outbox (error reports, Sentry envelopes).
    # 5: reports_received (retention deletes reports by age).
    # 6: the dashboard's dash_* summaries.
    assert telemetry.collector.SCHEMA_VERSION == 6


def test_public_exceptions_join_the_package_exception_tree() -> None:
    assert issubclass(telemetry.collector.StorageUnavailable, telemetry.errors.TelemetryError)
    assert issubclass(telemetry.collector.ConfigError, telemetry.errors.ConfigError)
    assert issubclass(telemetry.collector.ConfigError, telemetry.errors.TelemetryError)
