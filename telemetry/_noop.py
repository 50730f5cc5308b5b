"""``NoopClient``: the client's surface, recording, storing and sending nothing."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from telemetry._store import QueueStats, StoredEvent
from telemetry.consent import ConsentPolicy, ConsentState

log = logging.getLogger("telemetry")


class NoopClient:
    """The same surface as :class:`~telemetry.Client`, recording and sending nothing.

    ``device_id`` is ``''`` and ``session_id`` is ``-1``, as in the analytics-client. With
    ``log_events=True``, each ``track`` is logged at INFO level.
    """

    project_name = ""
    component_name = ""
    component_version: str | None = None
    endpoint: str | None = None
    endpoint_url = ""
    catalogue = None
    device_id = ""
    user_id: str | None = None
    session_id = -1

    consent_state = ConsentState.DENIED
    consent_policy = ConsentPolicy.OPT_IN
    disabled_by_environment: str | None = None
    enabled = False
    uploading = False
    notice_shown = True
    notice_answered = True

    def __init__(self, log_events: bool = False) -> None:
        self._log_events = log_events

    def mark_notice_shown(self) -> None:
        """Do nothing."""

    def mark_notice_answered(self) -> None:
        """Do nothing."""

    def set_consent(self, granted: bool) -> None:
        """Do nothing (there is nothing to turn on)."""

    def add_listener(self, callback: Callable[[], None]) -> Callable[[], None]:
        """Never calls ``callback``; returns a no-op remover."""
        return lambda: None

    def set_online(self, online: bool | None) -> None:
        """Do nothing."""

    def status(self) -> dict[str, Any]:
        """A minimal status: nothing recorded, nothing queued."""
        return {"consent": str(self.consent_state), "enabled": False, "queued": 0}

    def upload_status(self) -> dict[str, Any]:
        """No uploader: ``{}``."""
        return {}

    def set_device_id(self, device_id: str) -> None:
        """Do nothing."""

    def regenerate_device_id(self) -> str:
        """Do nothing; returns ``''``."""
        return ""

    def set_user_id(self, user_id: str | None) -> None:
        """Do nothing."""

    def set_session_id(self, session_id: int) -> None:
        """Do nothing."""

    def track(self, event_type: str, properties: Mapping[str, Any] | None = None) -> str | None:
        """Log the event when asked to; record nothing."""
        if self._log_events:
            log.info("Analytics client: track [%s] %s", event_type, properties)
        return None

    def identify(self, operations: Mapping[str, Mapping[str, Any]]) -> str | None:
        """Do nothing."""
        return None

    def set_user_properties(
        self,
        set: Mapping[str, Any] | None = None,
        set_once: Mapping[str, Any] | None = None,
    ) -> str | None:
        """Do nothing."""
        return None

    def link_devices(self, user_id: str, device_ids: Iterable[str]) -> None:
        """Do nothing."""

    def linked_device_ids(self) -> list[str]:
        """Nothing is linked: ``[]``."""
        return []

    def save_linked_device_ids(self, device_ids: Sequence[str]) -> None:
        """Do nothing."""

    def experiment_variation(
        self, experiment: str, device_id: str, choose: Callable[[], str]
    ) -> str | None:
        """Nothing is kept: ``None``."""
        return None

    def queued_events(self, after_id: int = 0) -> Iterator[StoredEvent]:
        """Nothing is queued."""
        return iter(())

    def queue_stats(self) -> QueueStats:
        """Nothing is queued."""
        return QueueStats(0, 0, None)

    def sent_batches(self, limit: int = 100) -> list[dict[str, Any]]:
        """Nothing was sent."""
        return []

    def dropped_events(self, limit: int = 100) -> list[dict[str, Any]]:
        """Nothing was dropped."""
        return []

    def capture_errors(
        self,
        *,
        logging_level: int | None = logging.ERROR,
        native_crashes: bool = True,
        app_root: str | Path | None = None,
    ) -> None:
        """Nothing is captured."""

    def capture_exception(
        self, exc: BaseException | None = None, *, handled: bool = True
    ) -> str | None:
        """Nothing is reported."""
        return None

    def capture_message(self, message: str, *, level: str = "error") -> str | None:
        """Nothing is reported."""
        return None

    def queued_reports(self) -> list[dict[str, Any]]:
        """Nothing is queued."""
        return []

    def sent_reports(self, limit: int = 50) -> list[dict[str, Any]]:
        """Nothing was sent."""
        return []

    def purge(self) -> int:
        """Nothing to delete: 0."""
        return 0

    def query(
        self, sql: str, params: Sequence[Any] | Mapping[str, Any] = ()
    ) -> list[dict[str, Any]]:
        """No database: ``[]``."""
        return []

    def flush(self, timeout: float = 10.0) -> bool:
        """Nothing to send; returns True."""
        return True

    def close(self, timeout: float | None = None) -> None:
        """Do nothing."""

    def __enter__(self) -> NoopClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def create_noop_client(log_events: bool = False) -> NoopClient:
    """A client that records nothing (for builds without a project, or tests)."""
    return NoopClient(log_events)
