"""The client: the one door to an app's local telemetry.

``create_client()`` gives the object an app records with; ``open_client()`` gives the same
object to a tool that inspects an existing data dir (the ``telemetry`` command), with the same
consent decision (both are in ``_factory``). Everything that reads or changes local telemetry
(the CLI, the Qt widgets, URL linking, experiments, the demo) goes through the public methods
below, so a consent rule or a store guarantee lives in exactly one place. The facade only
delegates: the consent flow decides, the recorder builds events, the store keeps them, the
uploader sends them.

Programming errors (a malformed event) raise :class:`~telemetry.errors.InvalidEventError`;
runtime faults are logged and counted, never raised into the host app.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from telemetry._client_parts import make_uploader, save_client_info
from telemetry._consent_flow import ConsentFlow
from telemetry._delivery import status_dict
from telemetry._housekeeping import Housekeeper
from telemetry._identity import Identity, check_id
from telemetry._options import (
    ClientOptions,
)
from telemetry._platform import library_version
from telemetry._recorder import INTERNAL_ERRORS, Recorder
from telemetry._store import (
    EventStore,
    QueueStats,
    StoredEvent,
    peek_state,
)
from telemetry.consent import (
    ConsentPolicy,
    ConsentState,
)
from telemetry.errors import StoreError

if TYPE_CHECKING:
    from telemetry._reporter import Reporter
    from telemetry.catalogue import EventCatalogue

log = logging.getLogger("telemetry")

USER_PROP_COMPONENT_NAME: Final = "ComponentName"
USER_PROP_ANALYTICS_CLIENT_VERSION: Final = "AnalyticsClientVersion"


class Client:
    """Records events durably and delivers them in the background.

    Create it with :func:`create_client` (an app) or :func:`open_client` (a tool). Use it as
    a context manager, or call :meth:`close` when the app exits (it waits at most
    ``close_timeout`` seconds).
    """

    def __init__(self, options: ClientOptions, *, blocked_by: str | None = None) -> None:
        self._options = options
        self._closed = False
        self._listeners: list[Callable[[], None]] = []
        directory = None if blocked_by is not None else options.data_dir
        self._store = EventStore(
            directory,
            max_events=options.max_events,
            max_bytes=options.max_bytes,
            max_age_days=options.max_age_days,
        )
        if blocked_by is not None:
            # The store runs in memory: read the stored choice without touching the file.
            found = peek_state(options.data_dir, ConsentFlow.STORED_KEYS)
            stored = ConsentFlow.read_stored(found.get)
        else:
            stored = ConsentFlow.read_stored(self._store.get_state)
        self._flow = flow = ConsentFlow(
            self._store,
            policy=options.consent_policy,
            project_name=options.project_name,
            blocked_by=blocked_by,
            stored=stored,
        )
        self._identity = Identity(
            self._store,
            device_id=options.device_id,
            session_timeout_ms=options.session_timeout_ms,
            create=flow.decision.record and not options.inspector,
        )
        flow.identity = self._identity
        self._recorder = Recorder(
            self._store,
            self._identity,
            options,
            may_record=lambda: flow.decision.record,
            record_lock=flow.record_lock,
            on_appended=self._appended,
        )
        self._reporter_part: Reporter | None = None  # made on first use: start-up stays lean
        self._reporter_lock = threading.Lock()
        flow.on_forget = self._recorder.forget
        flow.on_granted = self._on_granted
        self._housekeeper = Housekeeper(self._housekeeping, interval=1.0, burst=200)
        self._housekeeper.start()
        self._uploader = (
            make_uploader(options, self._store, self._notify)
            if options.upload and blocked_by is None
            else None
        )
        flow.uploader = self._uploader
        if flow.decision.record and not options.inspector:
            save_client_info(options, self._store)
            self._identify_component()
        flow.apply_upload_decision()
        if self._uploader is not None:
            self._uploader.start()

    def _on_granted(self) -> None:
        if not self._options.inspector:
            save_client_info(self._options, self._store)
            self._identify_component()

    # ------------------------------------------------------------------ configuration

    @property
    def project_name(self) -> str:
        """The backend's project (sent as ``api_key``)."""
        return self._options.project_name

    @property
    def component_name(self) -> str:
        """The app's short name."""
        return self._options.component_name

    @property
    def component_version(self) -> str | None:
        """Sent as ``app_version`` on every event."""
        return self._options.component_version

    @property
    def endpoint(self) -> str | None:
        """The collector host or base URL (``None``: Amplitude's own API)."""
        return self._options.endpoint

    @property
    def endpoint_url(self) -> str:
        """Where batches are posted."""
        return self._options.endpoint_url

    @property
    def data_dir(self) -> Path:
        """The directory holding ``telemetry.db``."""
        return self._options.data_dir

    @property
    def catalogue(self) -> EventCatalogue | None:
        """The app's declared events and properties (``None``: not declared)."""
        return self._options.catalogue

    # ------------------------------------------------------------------ consent

    @property
    def consent_state(self) -> ConsentState:
        """The user's stored choice (``unknown`` until they chose)."""
        return self._flow.state

    @property
    def consent_policy(self) -> ConsentPolicy:
        """What the app does before the user chose (``opt_out`` or ``opt_in``)."""
        return self._flow.policy

    @property
    def disabled_by_environment(self) -> str | None:
        """``"DO_NOT_TRACK"`` or ``"TELEMETRY_DISABLED"`` when the environment turned
        telemetry off (the stored choice is kept for later runs), else ``None``."""
        return self._flow.blocked_by

    @property
    def enabled(self) -> bool:
        """Whether events are being recorded now."""
        return self._flow.decision.record and not self._closed

    @property
    def uploading(self) -> bool:
        """Whether queued events may be uploaded now."""
        return self._flow.decision.upload_events and self._uploader is not None

    @property
    def notice_shown(self) -> bool:
        """Whether the first-run notice was shown (persisted)."""
        return self._flow.notice_shown

    @property
    def notice_answered(self) -> bool:
        """Whether the user answered the first-run notice (persisted)."""
        return self._flow.notice_answered

    def mark_notice_shown(self) -> None:
        """The app showed the first-run notice. This alone allows nothing: uploads wait for
        :meth:`mark_notice_answered` (or a choice made with :meth:`set_consent`)."""
        if self._flow.mark_notice_shown():
            self._notify()

    def mark_notice_answered(self) -> None:
        """The user answered the first-run notice (OK, or dismissed it): under the
        ``opt_out`` policy, uploads may start now. Apps without the Qt notice call this when
        their own notice is acknowledged."""
        if self._flow.mark_notice_answered():
            self._notify()

    def set_consent(self, granted: bool) -> None:
        """Apply the user's choice at once (never raises); it also answers the notice.

        Off: recording stops, an upload in flight is cancelled, queued events, counters, the
        sent log, linked ids, experiment assignments and the device id are deleted, and one
        deletion request for each device id whose events may have left the machine is queued
        (retried until delivered, kept across restarts); nothing is written while off. On: a
        new random device id when there was none (after an opt-out, the old one is never
        used again).
        """
        try:
            self._flow.set_consent(granted)
        except Exception:
            log.exception("telemetry could not apply the consent choice")
            self._store.increment(INTERNAL_ERRORS)
        self._notify()

    def add_listener(self, callback: Callable[[], None]) -> Callable[[], None]:
        """Call ``callback()`` (from any thread) after consent, notice or upload status
        changes; returns a function that removes it."""
        self._listeners.append(callback)

        def remove() -> None:
            if callback in self._listeners:
                self._listeners.remove(callback)

        return remove

    def _notify(self) -> None:
        reporter = self._reporter_part
        if reporter is not None:  # native crashes follow the consent switch
            try:
                reporter.sync_recording()
            except Exception:
                log.exception("telemetry could not follow the consent switch for crashes")
        for callback in list(self._listeners):
            try:
                callback()
            except Exception:
                log.exception("telemetry listener failed")

    def set_online(self, online: bool | None) -> None:
        """Connectivity hint from the app (``None``: detect it); no effect without uploads."""
        if self._uploader is not None:
            self._uploader.set_online(online)

    def status(self) -> dict[str, Any]:
        """What ``telemetry status --json`` shows, plus the live consent and upload state."""
        info = status_dict(self._store)
        upload = info.get("upload") or {}
        connectivity = upload.get("connectivity")
        if self._uploader is not None:
            connectivity = self._uploader.connectivity.state
        flow = self._flow
        info.update(
            consent=str(flow.state),
            consent_policy=str(flow.policy),
            notice_shown=flow.notice_shown,
            notice_answered=flow.notice_answered,
            enabled=self.enabled,
            uploading=self.uploading,
            disabled_by_environment=flow.blocked_by,
            device_id=self.device_id or None,
            queued=info["queue"]["events"],
            queued_bytes=info["queue"]["bytes"],
            last_upload=upload.get("last_success_at"),
            last_result=upload.get("last_result"),
            online=None if connectivity is None else connectivity.startswith("online"),
            connectivity=connectivity,
        )
        return info

    # ------------------------------------------------------------------ identity

    @property
    def device_id(self) -> str:
        """The random device id sent with every event (``''`` while telemetry is off)."""
        return self._identity.device_id

    @property
    def user_id(self) -> str | None:
        """The user id set with :meth:`set_user_id`, if any."""
        return self._identity.user_id

    @property
    def session_id(self) -> int:
        """The current session's start time in ms (a new session after 30 minutes idle)."""
        return self._identity.session_id if self._flow.decision.record else -1

    def set_device_id(self, device_id: str) -> None:
        """Use another device id from now on (for example one passed in a link).

        Ignored while telemetry is off (no device id may exist then)."""
        if not self._flow.decision.record:
            return
        self._identity.set_device_id(device_id)
        self._flow.apply_upload_decision()

    def regenerate_device_id(self) -> str:
        """Switch to a new random device id, keeping the user id; returns the new id
        (``''`` while telemetry is off)."""
        if not self._flow.decision.record:
            return ""
        new = self._identity.regenerate_device_id()
        self._flow.apply_upload_decision()
        return new

    def set_user_id(self, user_id: str | None) -> None:
        """Identify the signed-in user (``None`` signs out). Persisted across restarts;
        checked, then ignored while telemetry is off (nothing is written)."""
        if user_id is not None:
            check_id(user_id, "user_id")
        if self._flow.decision.record:
            self._identity.set_user_id(user_id)

    def set_session_id(self, session_id: int) -> None:
        """Continue session ``session_id`` (ms), e.g. one passed by a link's ``s_id``;
        ignored while telemetry is off."""
        if self._flow.decision.record:
            self._identity.set_session_id(session_id)

    # ------------------------------------------------------------------ recording

    def track(self, event_type: str, properties: Mapping[str, Any] | None = None) -> str | None:
        """Record an event; it is on disk when this returns.

        Returns the event's ``insert_id``, or ``None`` when the event was not recorded
        (telemetry off, throttled, or the client is closed).

        Raises:
            InvalidEventError: the name or properties are malformed (nothing is stored).
        """
        return self._recorder.track(event_type, properties)

    def identify(self, operations: Mapping[str, Mapping[str, Any]]) -> str | None:
        """Send a raw ``$identify`` with user-property operations (``$set``, ``$setOnce``...).

        Raises:
            InvalidEventError: a value is not strict JSON (as in :meth:`track`), or, with a
                catalogue, a user property is not declared in its ``user_properties`` (or
                a ``$set``/``$setOnce`` value is not of the declared type); nothing is stored.
        """
        return self._recorder.identify(operations)

    def set_user_properties(
        self,
        set: Mapping[str, Any] | None = None,
        set_once: Mapping[str, Any] | None = None,
    ) -> str | None:
        """One ``$identify`` with ``$set`` and ``$setOnce`` user properties."""
        ops: dict[str, Mapping[str, Any]] = {}
        if set:
            ops["$set"] = set
        if set_once:
            ops["$setOnce"] = set_once
        return self.identify(ops)

    def link_devices(self, user_id: str, device_ids: Iterable[str]) -> None:
        """Link the timelines of ``device_ids`` to ``user_id`` (analytics-client semantics).

        An identify is recorded under the current device and under each given id; afterwards
        the device id is the first usable one (never equal to the user id), or a new one.
        Ignored while telemetry is off.
        """
        check_id(user_id, "user_id")
        ids = [check_id(d, "device_id") for d in device_ids]
        if not self._flow.decision.record:
            return
        current = self.device_id
        final: str | None = current if current != user_id else None
        self.set_user_id(user_id)
        self._identify_component(force=True)
        for device_id in ids:
            if final is None and device_id != user_id:
                final = device_id
            self._identity.set_device_id(device_id)
            version = {USER_PROP_ANALYTICS_CLIENT_VERSION: library_version()}
            self._recorder.identify({"$set": version}, library=True)
            self._flow.apply_upload_decision()
        if final is None:
            self.regenerate_device_id()
        else:
            self._identity.set_device_id(final)

    def _identify_component(self, *, force: bool = False) -> None:
        values = {
            USER_PROP_COMPONENT_NAME: self.component_name,
            USER_PROP_ANALYTICS_CLIENT_VERSION: library_version(),
        }
        marker = {"device_id": self.device_id, **values}
        if force or self._store.get_state("identified") != marker:
            self._recorder.identify({"$set": values}, library=True)
            self._store.set_state("identified", marker)

    def _appended(self) -> None:
        self._housekeeper.notify()
        if self._uploader is not None:
            self._uploader.notify_appended()

    def _reported(self) -> None:
        if self._uploader is not None:
            self._uploader.wake()

    @property
    def _reporter(self) -> Reporter:
        with self._reporter_lock:
            if self._reporter_part is not None:
                return self._reporter_part
            from telemetry._reporter import Reporter

            flow = self._flow
            self._reporter_part = Reporter(
                self._store,
                self._identity,
                self._recorder,
                self._options,
                may_record=lambda: flow.decision.record,
                record_lock=flow.record_lock,
                on_reported=self._reported,
            )
            return self._reporter_part

    # ------------------------------------------------------------------ error reports

    def capture_errors(
        self,
        *,
        logging_level: int | None = logging.ERROR,
        native_crashes: bool = True,
        app_root: str | Path | None = None,
    ) -> None:
        """Report the app's errors from now on, under the same switch as events.

        Installs process-wide hooks (chained to the ones they replace, undone by
        :meth:`close`): uncaught exceptions on any thread, exceptions in Qt slots (PySide6
        hands them to ``sys.excepthook``), records logged at ``logging_level`` or above
        (``None``: none; the ``telemetry`` loggers never), and with ``native_crashes`` a
        fault file that the next start turns into a crash report (segfaults and other fatal
        signals, with every thread's Python stack). ``app_root``: the folder of the app's own
        code; frames there are ``in_app`` and their paths relative to it.

        Each report is anonymised, passes ``before_send`` and is on disk before the hook
        returns; repeats of one error are one report with a count. Reports are kept and sent
        only when events are (nothing while off, before the notice is answered or with
        ``DO_NOT_TRACK``), and an opt-out deletes those waiting.
        """
        if self._closed:
            return
        root = None if app_root is None else str(Path(app_root).resolve())
        self._reporter.enable(
            logging_level=logging_level, native_crashes=native_crashes, app_root=root
        )

    def capture_exception(
        self, exc: BaseException | None = None, *, handled: bool = True
    ) -> str | None:
        """Report ``exc`` (default: the exception being handled) now; returns the report's
        fingerprint, or ``None`` when nothing was kept (telemetry off, no exception, dropped
        by ``before_send``). Never raises."""
        if exc is None:
            import sys

            exc = sys.exception()
        if exc is None:
            return None
        return self._reporter.capture_exception(exc, handled=handled)

    def capture_message(self, message: str, *, level: str = "error") -> str | None:
        """Report a message without an exception (``level``: ``fatal``, ``error``,
        ``warning``, ``info``); returns its fingerprint or ``None``. Never raises."""
        return self._reporter.capture_message(message, level=level)

    def queued_reports(self) -> list[dict[str, Any]]:
        """The error reports waiting to be sent, oldest first, each exactly as it will be sent
        (with ``contexts.telemetry.count``: how many times it happened)."""
        import json

        from telemetry._delivery import report_json

        return [json.loads(report_json(r)) for r in self._store.pending_reports(1_000)]

    def sent_reports(self, limit: int = 50) -> list[dict[str, Any]]:
        """The last error reports sent, newest first: ``sent_at``, ``status``, ``report``."""
        return self._store.sent_reports(limit)

    # ------------------------------------------------------------------ linking, experiments

    def linked_device_ids(self) -> list[str]:
        """Device ids linked through URLs, newest first (``[]`` while telemetry is off)."""
        if not self._flow.decision.record:
            return []
        return self._store.linked_device_ids()

    def save_linked_device_ids(self, device_ids: Sequence[str]) -> None:
        """Persist the linked device ids (newest first; empty ids are left out); nothing is
        written while telemetry is off."""
        if not self._flow.decision.record:
            return
        self._store.replace_linked_device_ids([d for d in device_ids if d])

    def experiment_variation(
        self, experiment: str, device_id: str, choose: Callable[[], str]
    ) -> str | None:
        """The variation of ``experiment`` kept for ``device_id``; the first time, the one
        ``choose()`` returns is stored (a second process racing keeps the first stored).
        ``None`` while telemetry is off (nothing is read or written)."""
        if not self._flow.decision.record:
            return None
        stored = self._store.experiment_assignment(experiment, device_id)
        if stored is not None:
            return stored
        return self._store.assign_experiment(experiment, device_id, choose())

    # ------------------------------------------------------------------ inspecting

    def queued_events(self, after_id: int = 0) -> Iterator[StoredEvent]:
        """The events waiting to be sent (queue id above ``after_id``), oldest first, each
        with its JSON exactly as it will be sent."""
        return self._store.iter_events(after_id)

    def queue_stats(self) -> QueueStats:
        """How many events wait, their bytes and the oldest one's time."""
        return self._store.stats()

    def sent_batches(self, limit: int = 100) -> list[dict[str, Any]]:
        """The last sent batches, newest first: ``id``, ``sent_at``, ``status``, ``events``."""
        return self._store.sent_batches(limit)

    def dropped_events(self, limit: int = 100) -> list[dict[str, Any]]:
        """The most recently dropped events, newest first, with the reason."""
        return self._store.dropped(limit)

    def purge(self) -> int:
        """Delete every queued event (counted as ``dropped_purged``); consent, the device id
        and the sent log are kept. Returns how many events were deleted."""
        return self._store.purge()

    def query(
        self, sql: str, params: Sequence[Any] | Mapping[str, Any] = ()
    ) -> list[dict[str, Any]]:
        """Rows of one read-only SQL statement over the local database.

        Raises:
            StoreError: the statement is invalid or would change something.
        """
        try:
            return self._store.read_query(sql, params)
        except ValueError as exc:  # sqlite-utils refuses a statement that returns no rows
            raise StoreError(f"query refused: {exc}") from None

    # ------------------------------------------------------------------ delivery and lifecycle

    def flush(self, timeout: float = 10.0) -> bool:
        """Send what is queued now, if the user's choice allows it; True when the queue was
        empty within ``timeout`` s. Sends nothing (and returns False if events wait) while
        uploads are not allowed."""
        self._store.flush_overflow()
        if self._uploader is None or not self.uploading:
            return self._store.stats().events == 0
        return self._uploader.flush(timeout)

    def upload_status(self) -> dict[str, Any]:
        """The uploader's last result, next attempt and connectivity (``{}`` without one).

        ``connectivity`` (``online``, ``offline`` or ``unreachable``) is always there when
        there is an uploader, also before its first attempt."""
        if self._uploader is None:
            return {}
        return {**self._uploader.status(), "connectivity": self._uploader.connectivity.state}

    def close(self, timeout: float | None = None) -> None:
        """Stop background work, waiting at most ``timeout`` s (default 2); unsent events stay
        on disk for the next launch."""
        if self._closed:
            return
        self._closed = True
        self._recorder.closed = True
        if self._reporter_part is not None:
            self._reporter_part.disable()
        budget = self._options.close_timeout if timeout is None else timeout
        deadline = time.monotonic() + budget
        # What follows the uploader (housekeeping's last pass, saving, closing the store) keeps
        # a quarter of the budget (at most 0.5 s), so that a loaded machine stays within it.
        rest = min(0.5, budget / 4)
        if self._uploader is not None:
            self._uploader.stop(max(0.0, deadline - rest - time.monotonic()))
        self._housekeeper.stop(max(0.0, deadline - time.monotonic()))
        self._save_session()
        self._store.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _housekeeping(self) -> None:
        if self._flow.follow_stored_choice():
            self._notify()
        self._store.maintain()
        self._save_session()

    def _save_session(self) -> None:
        if self._flow.decision.record:  # nothing is written while telemetry is off
            self._identity.save()
