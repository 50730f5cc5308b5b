"""The client: the one door to an app's local telemetry.

``create_client()`` gives the object an app records with; ``open_client()`` gives the same
object to a tool that inspects an existing data dir (the ``telemetry`` command), with the same
consent decision. Everything that reads or changes local telemetry (the CLI, the Qt widgets,
URL linking, experiments, the demo) goes through the public methods below, so a consent rule
or a store guarantee lives in exactly one place. The facade only delegates: the consent flow
decides, the recorder builds events, the store keeps them, the uploader sends them.

Programming errors (a malformed event) raise :class:`~telemetry.errors.InvalidEventError`;
runtime faults are logged and counted, never raised into the host app.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from telemetry._consent_flow import ConsentFlow
from telemetry._delivery import status_dict
from telemetry._housekeeping import Housekeeper
from telemetry._options import (
    ClientOptions,
    check_name,
    default_data_dir,
    endpoint_from_url,
    load_catalogue,
    parse_policy,
)
from telemetry._platform import library_version
from telemetry._recorder import INTERNAL_ERRORS, Recorder
from telemetry._store import (
    DB_FILENAME,
    DEFAULT_MAX_AGE_DAYS,
    DEFAULT_MAX_BYTES,
    DEFAULT_MAX_EVENTS,
    EventStore,
    QueueStats,
    StoredEvent,
    peek_state,
)
from telemetry.consent import (
    ANSWERED_KEY,
    NOTICE_KEY,
    STATE_KEY,
    ConsentPolicy,
    ConsentState,
    environment_block,
    load_state,
)
from telemetry.errors import ConfigError, StoreError
from telemetry.identity import MIN_ID_LENGTH, SESSION_TIMEOUT_MS, Identity, check_id

if TYPE_CHECKING:
    from telemetry._delivery import Clock, Uploader, UploadPolicy
    from telemetry.catalogue import EventCatalogue
    from telemetry.transport import Destination

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
            found = peek_state(options.data_dir, (STATE_KEY, NOTICE_KEY, ANSWERED_KEY))
            answered = bool(found.get(ANSWERED_KEY))
            stored = (
                load_state(found.get(STATE_KEY)),
                bool(found.get(NOTICE_KEY)) or answered,
                answered,
            )
        else:
            stored = ConsentFlow.read_stored(self._store)
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
        flow.on_forget = self._recorder.forget
        flow.on_granted = self._on_granted
        self._housekeeper = Housekeeper(self._housekeeping, interval=1.0, burst=200)
        self._housekeeper.start()
        self._uploader = self._make_uploader() if options.upload and blocked_by is None else None
        flow.uploader = self._uploader
        if flow.decision.record and not options.inspector:
            self._save_client_info()
            self._identify_component()
        flow.apply_upload_decision()
        if self._uploader is not None:
            self._uploader.start()

    def _make_uploader(self) -> Uploader:
        from telemetry._delivery import Uploader, UploadPolicy

        options = self._options
        uploader = Uploader(
            self._store,
            url=options.endpoint_url,
            api_key=options.project_name,
            policy=options.upload_policy or UploadPolicy(),
            deletion_url=options.deletion_url,
            on_status=self._notify,
            destination=options.destination,
            clock=options.clock,
        )
        uploader.set_events_allowed(False)
        return uploader

    def _save_client_info(self) -> None:
        options = self._options
        info = {
            "project_name": options.project_name,
            "component_name": options.component_name,
            "component_version": options.component_version,
            "endpoint": options.endpoint,
            "endpoint_url": options.endpoint_url,
            "consent_policy": str(options.consent_policy),
        }
        declared = None if options.catalogue is None else options.catalogue.to_dict()
        if self._store.get_state("catalogue") != declared:
            self._store.set_state("catalogue", declared)
        if self._store.get_state("client") != info:
            self._store.set_state("client", info)

    def _on_granted(self) -> None:
        if not self._options.inspector:
            self._save_client_info()
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
        """Send a raw ``$identify`` with user-property operations (``$set``, ``$setOnce``...)."""
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
            self.identify({"$set": {USER_PROP_ANALYTICS_CLIENT_VERSION: library_version()}})
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
            self.identify({"$set": values})
            self._store.set_state("identified", marker)

    def _appended(self) -> None:
        self._housekeeper.notify()
        if self._uploader is not None:
            self._uploader.notify_appended()

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


def create_client(
    project_name: str,
    component_name: str,
    component_version: str | None = None,
    endpoint: str | None = None,
    device_id: str | None = None,
    data_dir: str | os.PathLike[str] | None = None,
    *,
    max_events: int = DEFAULT_MAX_EVENTS,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_age_days: float = DEFAULT_MAX_AGE_DAYS,
    session_timeout: float = SESSION_TIMEOUT_MS / 1000,
    property_allowlist: Iterable[str] | None = None,
    throttle: Mapping[str, float] | float | None = None,
    upload: bool = True,
    upload_policy: UploadPolicy | None = None,
    close_timeout: float = 2.0,
    consent_policy: ConsentPolicy | str = ConsentPolicy.OPT_OUT,
    catalogue: EventCatalogue | str | os.PathLike[str] | None = None,
    destination: Destination | None = None,
    clock: Clock | None = None,
) -> Client:
    """Create a client for ``project_name`` (the backend's project, sent as ``api_key``).

    Args:
        project_name: the project the collector maps to destination tokens.
        component_name: a short name for the app (also names its data dir).
        component_version: sent as ``app_version`` on every event.
        endpoint: the collector host (``data.balena-cloud.com``) or base URL
            (``http://127.0.0.1:8555``); ``None`` sends to Amplitude's HTTP V2 API.
        device_id: use this device id instead of the persisted or a new random one.
        data_dir: where ``telemetry.db`` lives; default: the platform's user data dir.
        max_events, max_bytes, max_age_days: caps of the local queue (oldest dropped first).
        session_timeout: seconds of inactivity that end a session.
        property_allowlist: if given, only property keys matching these patterns are stored.
        throttle: at most one event per name per interval, in seconds: one number for every
            name, or a mapping of event name to interval.
        upload: start the background uploader (False: record only).
        upload_policy: batch sizes, timeouts and backoff of the uploader.
        close_timeout: how long :meth:`Client.close` waits for an upload in flight.
        consent_policy: ``"opt_out"`` (record from the first launch, upload once the user
            answered the first-run notice) or ``"opt_in"`` (nothing until the user agrees).
            ``DO_NOT_TRACK`` (not empty or ``0``) or ``TELEMETRY_DISABLED=1`` in the
            environment turn everything off: no file written, no device id, no network.
        catalogue: the app's declared events (an :class:`~telemetry.catalogue.EventCatalogue`
            or a TOML/JSON file); undeclared events and properties are then refused.
        destination: send batches here instead of over HTTP (for an app's own tests:
            :class:`telemetry.testing.RecordingDestination`). Consent applies as usual.
        clock: the time the uploader's schedule runs on (for tests:
            :class:`telemetry.testing.FakeClock`); default: the real clock.

    Raises:
        ConfigError: a name, id, policy or catalogue is unusable.
    """
    check_name(component_name, "component_name")
    if device_id is not None:
        check_id(device_id, "device_id")
        if len(device_id) < MIN_ID_LENGTH:
            log.info("device_id shorter than %d characters; min_id_length is sent", MIN_ID_LENGTH)
    options = ClientOptions(
        project_name=project_name,
        component_name=component_name,
        component_version=component_version,
        endpoint=endpoint,
        data_dir=Path(data_dir) if data_dir is not None else default_data_dir(component_name),
        max_events=max_events,
        max_bytes=max_bytes,
        max_age_days=max_age_days,
        session_timeout_ms=int(session_timeout * 1000),
        device_id=device_id,
        property_allowlist=tuple(property_allowlist) if property_allowlist is not None else None,
        throttle=throttle,
        upload=upload,
        upload_policy=upload_policy,
        close_timeout=close_timeout,
        consent_policy=parse_policy(consent_policy),
        catalogue=load_catalogue(catalogue),
        destination=destination,
        clock=clock,
    ).check()
    return _start(options)


def open_client(
    data_dir: str | os.PathLike[str], *, upload: bool = False, close_timeout: float = 2.0
) -> Client:
    """The client of the app whose telemetry lives in ``data_dir``, for tools that work on
    it while the app may or may not run (the ``telemetry`` command).

    It applies the same consent decision as the app (the stored choice, whether the notice
    was answered, the app's policy, ``DO_NOT_TRACK``), records nothing of its own, and
    starts an uploader only with ``upload=True`` (which sends only what the decision allows).
    Its :attr:`~Client.catalogue` is the one the app declared (stored by the app).

    Raises:
        ConfigError: there is no telemetry database in ``data_dir``, or it records no
            project (the app never ran with telemetry on).
    """
    directory = Path(data_dir)
    if not (directory / DB_FILENAME).exists():
        raise ConfigError(f"no telemetry database in {directory}")
    found = peek_state(directory, ("client", "catalogue"))
    info = found.get("client")
    if not isinstance(info, dict):
        info = {}
    try:
        declared = found.get("catalogue")
        catalogue = None
        if isinstance(declared, dict):
            from telemetry.catalogue import EventCatalogue

            catalogue = EventCatalogue.from_dict(declared)
        options = ClientOptions(
            project_name=str(info.get("project_name") or "unknown-project"),
            component_name=str(info.get("component_name") or "unknown-app"),
            component_version=info.get("component_version"),
            endpoint=info.get("endpoint") or endpoint_from_url(info.get("endpoint_url")),
            data_dir=directory,
            max_events=DEFAULT_MAX_EVENTS,
            max_bytes=DEFAULT_MAX_BYTES,
            max_age_days=DEFAULT_MAX_AGE_DAYS,
            session_timeout_ms=SESSION_TIMEOUT_MS,
            upload=upload and bool(info.get("project_name")),
            close_timeout=close_timeout,
            consent_policy=parse_policy(info.get("consent_policy") or ConsentPolicy.OPT_OUT),
            catalogue=catalogue,
            inspector=True,
        ).check()
    except ConfigError as exc:
        raise ConfigError(f"the telemetry database in {directory} is unusable: {exc}") from None
    return _start(options)


def _start(options: ClientOptions) -> Client:
    blocked_by = environment_block()
    if blocked_by is not None:
        log.info("telemetry disabled by %s: nothing is recorded or sent", blocked_by)
    return Client(options, blocked_by=blocked_by)
