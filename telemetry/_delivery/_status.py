"""The upload status: the row the uploader saves under the ``upload`` state key after each
outcome, and the summary ``telemetry status`` and ``Client.status()`` read from a store."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Final

from telemetry._delivery._clock import Clock
from telemetry._delivery._connectivity import Connectivity
from telemetry._store import EventStore

log = logging.getLogger("telemetry.uploader")

#: The state key of the upload status row.
STATE_KEY: Final = "upload"


class StatusWriter:
    """Saves the uploader's last outcome (with the time, the next attempt, the connectivity)
    and tells ``on_status`` about it."""

    def __init__(
        self,
        store: EventStore,
        clock: Clock,
        connectivity: Connectivity,
        on_status: Callable[[], None] | None,
        *,
        url: str | None = None,
        deletion_url: str | None = None,
    ) -> None:
        self._store = store
        #: Where events and deletion requests go: saved with a success as ``last_success_url``.
        self._url = url
        self._deletion_url = deletion_url
        self._clock = clock
        self._connectivity = connectivity
        self._on_status = on_status
        self._last_outcome: str | None = None

    def read(self) -> dict[str, Any]:
        """The saved row (empty before the first save)."""
        result: dict[str, Any] = self._store.get_state(STATE_KEY, {})
        return result

    def save(
        self,
        outcome: str,
        status: int | None,
        *,
        failures: int,
        success: bool = False,
        deletion: bool = False,
        delay: float = 0.0,
        changed_only: bool = False,
    ) -> None:
        """Save ``outcome`` (``changed_only``: unless it is the last one saved again); a
        ``success`` also saves its time and where it went (``deletion``: the deletion URL)."""
        if changed_only and outcome == self._last_outcome:
            return
        self._last_outcome = outcome
        now_ms = self._clock.time_ms()
        state: dict[str, Any] = dict(self.read())
        state.update(
            last_attempt_at=now_ms,
            last_result=outcome,
            last_status=status,
            failures=failures,
            connectivity=self._connectivity.state,
            next_attempt_at=now_ms + int(delay * 1000) if delay else None,
        )
        if success:
            state["last_success_at"] = now_ms
            url = self._deletion_url if deletion else self._url
            if url is not None:
                state["last_success_url"] = url
        self._store.set_state(STATE_KEY, state)
        if self._on_status is not None:
            try:
                self._on_status()
            except Exception:
                log.exception("upload status listener failed")


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
