"""The status summary (``telemetry status`` and ``Client.status()``) read from one store."""

from __future__ import annotations

from typing import Any

from telemetry._store import EventStore
from telemetry.uploader import STATE_KEY


def status_dict(store: EventStore) -> dict[str, Any]:
    """Everything ``telemetry status`` shows, as JSON-ready data."""
    stats = store.stats()
    state = store.state()
    client = state.get("client", {})
    return {
        "data_dir": str(store.data_dir),
        "database": str(store.path) if store.path else None,
        "degraded": store.degraded,
        "consent": state.get("consent", "unknown"),
        "consent_policy": client.get("consent_policy", "opt_out"),
        "notice_shown": bool(state.get("notice_shown", False)),
        "deletion_requests": len(state.get("deletion_requests") or []),
        "device_id": state.get("device_id"),
        "user_id": state.get("user_id"),
        "project_name": client.get("project_name"),
        "component_name": client.get("component_name"),
        "component_version": client.get("component_version"),
        "endpoint": client.get("endpoint_url"),
        "queue": {"events": stats.events, "bytes": stats.bytes, "oldest_time": stats.oldest_time},
        "counters": store.counters(),
        "upload": state.get(STATE_KEY, {}),
    }
