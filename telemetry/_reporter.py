"""The reporter behind ``capture_errors()`` and ``capture_exception()``: error and crash
reports under the same consent, anonymiser and ``before_send`` hook as events.

A report is built (:mod:`telemetry._reports`), shown to the app's ``before_send`` hook (as a
Sentry event dict: ``"exception"`` or ``"message"`` instead of ``"event_type"``), and written
to the store in its own transaction before the call returns, under the consent flow's record
lock: nothing is kept while telemetry is off, and an opt-out erases what waits. Repeats of one
fingerprint become one waiting report with a count. Nothing here ever raises into the app:
failures are logged and counted.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

from telemetry._anonymise import current as current_anonymiser
from telemetry._identity import Identity
from telemetry._options import ClientOptions
from telemetry._platform import platform_info
from telemetry._recorder import Recorder
from telemetry._reports import (
    Capture,
    FaultFiles,
    ReportContext,
    exception_report,
    fault_report,
    message_report,
)
from telemetry._store import EventStore

log = logging.getLogger("telemetry")

# Counter names.
REPORTS_DROPPED_BEFORE_SEND: Final = "reports_dropped_before_send"
REPORTS_BEFORE_SEND_ERRORS: Final = "reports_before_send_errors"
REPORTS_DROPPED_OVERSIZE: Final = "reports_dropped_oversize"
REPORTS_INTERNAL_ERRORS: Final = "reports_internal_errors"
NATIVE_CRASHES: Final = "native_crashes_found"
#: Largest report kept (JSON bytes); a bigger one loses frames, then is dropped.
MAX_REPORT_BYTES: Final = 64 * 1024

_LEVELS: Final = {
    logging.CRITICAL: "fatal",
    logging.ERROR: "error",
    logging.WARNING: "warning",
    logging.INFO: "info",
}


class Reporter:
    """Builds and keeps the error reports of one client."""

    def __init__(
        self,
        store: EventStore,
        identity: Identity,
        recorder: Recorder,
        options: ClientOptions,
        *,
        may_record: Callable[[], bool],
        record_lock: threading.Lock,
        on_reported: Callable[[], None],
    ) -> None:
        self._store = store
        self._identity = identity
        self._recorder = recorder
        self._options = options
        self._may_record = may_record
        self._record_lock = record_lock
        self._on_reported = on_reported
        self._capture = Capture(self._on_exception, self._on_log)
        self._faults: FaultFiles | None = None
        #: Native crashes were asked for (``enable``); the fault file exists only while
        #: reports may be kept (:meth:`sync_recording`).
        self._native_wanted = False
        self._recording_seen: bool | None = None  # what sync_recording last acted on
        self._faults_lock = threading.Lock()
        self._app_root: str | None = None
        self._context_cache: ReportContext | None = None

    @property
    def capturing(self) -> bool:
        """Whether the process-wide hooks are installed."""
        return self._capture.installed

    def enable(
        self, *, logging_level: int | None, native_crashes: bool, app_root: str | None
    ) -> None:
        """Install the hooks, start recording native crashes, and turn the crash files left
        by earlier processes into reports."""
        self._app_root = app_root
        self._context_cache = None
        self._capture.install(logging_level=logging_level)
        self._native_wanted = (
            native_crashes and not self._store.in_memory and self._store.path is not None
        )
        self.sync_recording()

    def sync_recording(self) -> None:
        """Follow the consent switch for native crashes (called after every change of it):
        while reports may be kept, this process has a fault file and the crash files left by
        processes that are gone become reports; while they may not, there is no fault file
        (nothing is written while off) and such leftovers are deleted unread."""
        with self._faults_lock:
            if not self._native_wanted or self._store.path is None:
                return
            recording = self._may_record()
            if recording == self._recording_seen:
                return
            self._recording_seen = recording
            folder = Path(self._store.path).parent
            if recording:
                if self._faults is None:
                    self._faults = FaultFiles(folder)
                    self._faults.enable()
                self._faults.harvest(self._on_fault)
                return
            if self._faults is not None:
                self._faults.disable()
                self._faults = None
            FaultFiles(folder).harvest(_discard)

    def disable(self) -> None:
        """Remove the hooks and this process's (empty) crash file."""
        self._capture.uninstall()
        with self._faults_lock:
            self._native_wanted = False
            if self._faults is not None:
                self._faults.disable()
                self._faults = None

    # ------------------------------------------------------------------ capture

    def capture_exception(
        self, exc: BaseException, *, mechanism: str = "capture", handled: bool = True
    ) -> str | None:
        """Report ``exc``; returns its fingerprint, or None when nothing was kept."""
        return self._safely(
            lambda: self._keep(
                *exception_report(exc, self._context(), mechanism=mechanism, handled=handled)
            )
        )

    def capture_message(self, message: str, *, level: str = "error") -> str | None:
        """Report a message without an exception; returns its fingerprint or None."""
        return self._safely(
            lambda: self._keep(*message_report(str(message), self._context(), level=level))
        )

    def _on_exception(
        self, exc: BaseException, mechanism: str, handled: bool, thread: str | None
    ) -> None:
        self._safely(
            lambda: self._keep(
                *exception_report(
                    exc,
                    self._context(),
                    mechanism=mechanism,
                    handled=handled,
                    level="fatal" if mechanism == "excepthook" else "error",
                    thread=thread,
                )
            )
        )

    def _on_log(self, record: logging.LogRecord) -> None:
        level = _LEVELS.get(record.levelno, "error")
        exc = record.exc_info[1] if record.exc_info else None
        if exc is not None:
            fingerprint, event = exception_report(
                exc, self._context(), mechanism="logging", handled=True, level=level
            )
            event["logentry"] = {"formatted": self._context().anonymise(record.getMessage())}
            event["logger"] = record.name
        else:
            fingerprint, event = message_report(
                record.getMessage(), self._context(), level=level, logger=record.name
            )
        self._safely(lambda: self._keep(fingerprint, event))

    def _on_fault(self, error: str, frames: list[tuple[str, int, str]], at: float) -> None:
        if not self._may_record():  # turned off meanwhile: nothing is kept, not even a count
            return
        self._store.increment(NATIVE_CRASHES)
        self._safely(lambda: self._keep(*fault_report(error, frames, at, self._context())))

    # ------------------------------------------------------------------ keeping

    def _safely(self, work: Callable[[], str | None]) -> str | None:
        try:
            return work()
        except Exception:
            log.warning("telemetry could not make an error report", exc_info=True)
            self._store.increment(REPORTS_INTERNAL_ERRORS)
            return None

    def _keep(self, fingerprint: str, event: dict[str, Any]) -> str | None:
        with self._record_lock:  # an opt-out waits for a report in progress, then none starts
            if not self._may_record() or self._recorder.closed:
                return None
            device_id = self._identity.device_id
            if device_id:
                event["user"] = {"id": device_id}
            event = self._hooked(event)  # type: ignore[assignment]
            if event is None:
                return None
            hooked = event.get("fingerprint")
            if isinstance(hooked, list) and hooked and isinstance(hooked[0], str):
                fingerprint = hooked[0][:64]
            payload = _fitted(event)
            if payload is None:
                self._store.increment(REPORTS_DROPPED_OVERSIZE)
                return None
            kept = self._store.add_report(fingerprint, payload)
        if kept:
            self._on_reported()
        return fingerprint if kept else None

    def _hooked(self, event: dict[str, Any]) -> dict[str, Any] | None:
        hook = self._options.before_send
        if hook is None:
            return event
        try:
            result = hook(event)
        except Exception:
            log.exception("telemetry before_send raised on an error report; it is dropped")
            self._store.increment(REPORTS_BEFORE_SEND_ERRORS)
            return None
        if result is None:
            self._store.increment(REPORTS_DROPPED_BEFORE_SEND)
            return None
        if not isinstance(result, dict):
            self._store.increment(REPORTS_BEFORE_SEND_ERRORS)
            return None
        return result

    def _context(self) -> ReportContext:
        if self._context_cache is None:
            info = platform_info()
            anonymiser = current_anonymiser()
            recorder = self._recorder
            self._context_cache = ReportContext(
                release=self._options.component_version or "",
                component=self._options.component_name,
                os_name=info.os_name,
                os_version=info.os_version,
                library=info.library,
                anonymise=anonymiser.text,
                app_root=self._app_root,
                breadcrumbs=lambda: [
                    {
                        "timestamp": at / 1000,
                        "category": "telemetry.event",
                        "message": name,
                        "level": "info",
                    }
                    for at, name in list(recorder.recent)
                ],
            )
        return self._context_cache


def _discard(error: str, frames: list[tuple[str, int, str]], at: float) -> None:
    """A harvest's sink that keeps nothing (the crash files are deleted unread)."""


def _fitted(event: dict[str, Any]) -> str | None:
    """The report's strict JSON, trimmed to :data:`MAX_REPORT_BYTES` (frames, then
    breadcrumbs go first); None when it still does not fit or is not JSON."""
    for attempt in range(3):
        try:
            text = json.dumps(event, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
        except (TypeError, ValueError):
            return None
        if len(text.encode("utf-8", "surrogatepass")) <= MAX_REPORT_BYTES:
            try:
                text.encode("utf-8")
            except UnicodeEncodeError:
                return None
            return text
        if attempt == 0:
            for value in event.get("exception", {}).get("values", []):
                frames = value.get("stacktrace", {}).get("frames", [])
                del frames[:-10]
        else:
            event["breadcrumbs"] = {"values": []}
    return None
