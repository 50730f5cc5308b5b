"""The public surface of ``telemetry`` and ``telemetry.qt`` is pinned: names, and the
parameters (names, order, keyword-only, defaulted) of every public callable and of each
public method of the client. A change here is a change of contract: make it on purpose."""

from __future__ import annotations

import inspect
from typing import Any

import pytest

import telemetry
from telemetry._noop import NoopClient

TELEMETRY = {
    "AMPLITUDE_URL": None,
    "AnalyticsUrlParams": "client=",
    "Client": "options, *, blocked_by=",
    "ConfigError": None,
    "ConsentPolicy": None,
    "ConsentState": None,
    "EventCatalogue": "events, *, user_properties=",
    "InvalidEventError": "message, key=",
    "LocalExperiment": "name, client=, *, rand=",
    "NoopClient": "log_events=",
    "PRODUCTION_ENDPOINT": None,
    "QueueStats": "events, bytes, oldest_time",
    "STAGING_ENDPOINT": None,
    "StoreError": None,
    "StoredEvent": "id, insert_id, event_type, time, size, json",
    "TelemetryClient": None,
    "TelemetryError": None,
    "Tracker": "client, prefix=",
    "UploadPolicy": (
        "max_batch_events=, max_batch_bytes=, flush_interval=, connect_timeout=, "
        "total_timeout=, backoff_initial=, backoff_cap=, max_requests_per_minute=, "
        "retry_after_default=, retry_after_max=, config_error_pause=, lease_ttl=, "
        "idle_check_interval=, offline_check_interval=, after_success_delay=, "
        "min_id_length="
    ),
    "__version__": None,
    "create_client": (
        "project_name, component_name, component_version=, endpoint=, device_id=, "
        "data_dir=, *, max_events=, max_bytes=, max_age_days=, session_timeout=, "
        "property_allowlist=, throttle=, upload=, upload_policy=, close_timeout=, "
        "consent_policy=, catalogue=, destination=, clock=, before_send="
    ),
    "create_noop_client": "log_events=",
    "default_data_dir": "component_name",
    "endpoint_url": "endpoint",
    "open_client": "data_dir, *, upload=, close_timeout=",
    "url_params": None,
}

QT = {
    "ConsentNotice": "client, parent=",
    "EventInspector": "client, parent=, *, page_size=, refresh_interval=",
    "QtConnectivity": "client, parent=, *, backend=, poll_interval=, detector=",
    "QtDriveWatcher": "parent=, *, rescan_interval=, all_drives=, debounce=, lister=",
    "TelemetrySettingsWidget": "client, parent=",
}

CLIENT_METHODS = {
    "capture_errors": "*, logging_level=, native_crashes=, app_root=",
    "capture_exception": "exc=, *, handled=",
    "capture_message": "message, *, level=",
    "queued_reports": "",
    "sent_reports": "limit=",
    "add_listener": "callback",
    "close": "timeout=",
    "dropped_events": "limit=",
    "experiment_variation": "experiment, device_id, choose",
    "flush": "timeout=",
    "identify": "operations",
    "link_devices": "user_id, device_ids",
    "linked_device_ids": "",
    "mark_notice_answered": "",
    "mark_notice_shown": "",
    "purge": "",
    "query": "sql, params=",
    "queue_stats": "",
    "queued_events": "after_id=",
    "regenerate_device_id": "",
    "save_linked_device_ids": "device_ids",
    "sent_batches": "limit=",
    "set_consent": "granted",
    "set_device_id": "device_id",
    "set_online": "online",
    "set_session_id": "session_id",
    "set_user_id": "user_id",
    "set_user_properties": "set=, set_once=",
    "status": "",
    "track": "event_type, properties=",
    "upload_status": "",
}

CLIENT_PROPERTIES = [
    "catalogue",
    "component_name",
    "component_version",
    "consent_policy",
    "consent_state",
    "data_dir",
    "device_id",
    "disabled_by_environment",
    "enabled",
    "endpoint",
    "endpoint_url",
    "notice_answered",
    "notice_shown",
    "project_name",
    "session_id",
    "uploading",
    "user_id",
]


def shape(obj: Any) -> str | None:
    """The parameters of ``obj`` as ``"a, b=, *, c="`` (``self`` left out)."""
    try:
        signature = inspect.signature(obj)
    except (TypeError, ValueError):
        return None
    parts: list[str] = []
    star = False
    for p in signature.parameters.values():
        if p.name == "self":
            continue
        if p.kind is p.KEYWORD_ONLY and not star:
            parts.append("*")
            star = True
        if p.kind is p.VAR_POSITIONAL:
            parts.append("*" + p.name)
            star = True
        elif p.kind is p.VAR_KEYWORD:
            parts.append("**" + p.name)
        else:
            parts.append(p.name + ("=" if p.default is not p.empty else ""))
    return ", ".join(parts)


def surface(module: Any, pinned: dict[str, str | None]) -> dict[str, str | None]:
    found: dict[str, str | None] = {}
    for name in module.__all__:
        value = getattr(module, name)
        if inspect.ismodule(value) or not callable(value) or pinned.get(name, "") is None:
            found[name] = None
        else:
            found[name] = shape(value)
    return found


def test_telemetry_surface_is_pinned() -> None:
    assert surface(telemetry, TELEMETRY) == TELEMETRY
    assert sorted(dir(telemetry)) == sorted({*dir(telemetry), *telemetry.__all__})


def test_qt_surface_is_pinned() -> None:
    import telemetry.qt

    assert surface(telemetry.qt, QT) == QT


def test_client_methods_and_properties_are_pinned() -> None:
    public = [n for n in dir(telemetry.Client) if not n.startswith("_")]
    methods = {
        n: shape(getattr(telemetry.Client, n))
        for n in public
        if callable(getattr(telemetry.Client, n))
    }
    assert methods == CLIENT_METHODS
    assert sorted(n for n in public if n not in methods) == CLIENT_PROPERTIES


@pytest.mark.parametrize("name", sorted(CLIENT_METHODS))
def test_the_noop_client_and_the_protocol_offer_the_same_methods(name: str) -> None:
    assert shape(getattr(NoopClient, name)) == CLIENT_METHODS[name]
    assert hasattr(telemetry.TelemetryClient, name)


def test_enums_are_pinned() -> None:
    assert [str(s) for s in telemetry.ConsentState] == ["unknown", "granted", "denied"]
    assert [str(p) for p in telemetry.ConsentPolicy] == ["opt_out", "opt_in"]


def test_one_exception_tree() -> None:
    for error in (telemetry.ConfigError, telemetry.InvalidEventError, telemetry.StoreError):
        assert issubclass(error, telemetry.TelemetryError)
    from telemetry.errors import TransportError

    assert issubclass(TransportError, telemetry.TelemetryError)
