"""The client facade: ``create_client()``, :class:`Client` and :class:`NoopClient`.

Modelled on balena's analytics-client. ``track()`` validates the event, builds an Amplitude
HTTP V2 event object and commits it to the local store before returning; delivery happens on
the uploader's background thread. Programming errors (a malformed event) raise
:class:`~telemetry.errors.InvalidEventError`; runtime faults are logged and counted, never
raised into the host app.
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import platformdirs

from telemetry import events as _events
from telemetry._delivery import Uploader, UploadPolicy, status_dict
from telemetry._housekeeping import Housekeeper
from telemetry._platform import library_version, platform_info
from telemetry.consent import (
    DELETION_KEY,
    EXPOSED_KEY,
    NOTICE_KEY,
    ConsentPolicy,
    ConsentState,
    Decision,
    decide,
    environment_block,
    load_state,
    parse_policy,
    peek_state,
)
from telemetry.consent import STATE_KEY as CONSENT_KEY
from telemetry.errors import ConfigError, InvalidEventError
from telemetry.identity import MIN_ID_LENGTH, SESSION_TIMEOUT_MS, Identity, check_id
from telemetry.store import (
    DEFAULT_MAX_AGE_DAYS,
    DEFAULT_MAX_BYTES,
    DEFAULT_MAX_EVENTS,
    EVENT_ID_BLOCK,
    EventStore,
)

if TYPE_CHECKING:
    from telemetry.catalogue import EventCatalogue

log = logging.getLogger("telemetry")

PRODUCTION_ENDPOINT: Final = "data.balena-cloud.com"
STAGING_ENDPOINT: Final = "data.balena-staging.com"
AMPLITUDE_URL: Final = "https://api2.amplitude.com/2/httpapi"
USER_PROP_COMPONENT_NAME: Final = "ComponentName"
USER_PROP_ANALYTICS_CLIENT_VERSION: Final = "AnalyticsClientVersion"

# Counter names.
THROTTLED: Final = "dropped_throttled"
PROPERTIES_FILTERED: Final = "properties_filtered"
INTERNAL_ERRORS: Final = "internal_errors"

_NAME_RE: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._ -]{0,99}$")


def endpoint_url(endpoint: str | None) -> str:
    """The upload URL for ``endpoint`` (a host, or a base URL with a scheme).

    ``None`` gives Amplitude's own HTTP V2 URL, as the analytics-client does.
    """
    if endpoint is None:
        return AMPLITUDE_URL
    base = endpoint if "://" in endpoint else f"https://{endpoint}"
    return f"{base.rstrip('/')}/amplitude/2/httpapi"


def deletion_url(endpoint: str | None) -> str | None:
    """Where deletion requests go: the collector's ``/amplitude/deletion`` (``None`` when
    events go straight to Amplitude, whose deletion API needs a secret key)."""
    if endpoint is None:
        return None
    url = endpoint_url(endpoint)
    return url[: -len("/2/httpapi")] + "/deletion"


def default_data_dir(component_name: str) -> Path:
    """Where an app keeps its telemetry database: ``<user data dir>/<component>/telemetry``."""
    return platformdirs.user_data_path(component_name, appauthor=False) / "telemetry"


def _check_name(value: object, what: str) -> str:
    if not isinstance(value, str) or not _NAME_RE.match(value):
        raise ConfigError(
            f"{what} must be 1-100 letters, digits, '.', '_', '-' or spaces, starting with a "
            f"letter or digit; got {value!r}"
        )
    return value


class Client:
    """Records events durably and delivers them in the background.

    Create it with :func:`create_client`. Use it as a context manager, or call
    :meth:`close` when the app exits (it waits at most ``close_timeout`` seconds).
    """

    def __init__(
        self,
        *,
        project_name: str,
        component_name: str,
        component_version: str | None,
        endpoint: str | None,
        device_id: str | None,
        data_dir: Path,
        store: EventStore,
        session_timeout_ms: int,
        property_allowlist: Iterable[str] | None,
        throttle: Mapping[str, float] | float | None,
        upload: bool,
        upload_policy: UploadPolicy,
        close_timeout: float,
        consent_policy: ConsentPolicy = ConsentPolicy.OPT_OUT,
        blocked_by: str | None = None,
        catalogue: EventCatalogue | None = None,
    ) -> None:
        self.project_name = project_name
        self.component_name = component_name
        self.component_version = component_version
        self.endpoint = endpoint
        self.endpoint_url = endpoint_url(endpoint)
        self.data_dir = data_dir
        self.store = store
        self._close_timeout = close_timeout
        self._allowlist = tuple(property_allowlist) if property_allowlist is not None else None
        self._throttle = throttle
        self._last_by_name: dict[str, float] = {}
        self._throttle_lock = threading.Lock()
        self._closed = False
        self._catalogue = catalogue
        #: ``TELEMETRY_LOG_EVENTS=1``: log each event's JSON as stored and sent (consent.md P-8).
        self._log_payloads = os.environ.get("TELEMETRY_LOG_EVENTS", "") in ("1", "true", "yes")
        self._listeners: list[Callable[[], None]] = []
        self._consent_lock = threading.RLock()
        self._record_lock = threading.Lock()
        self._policy = consent_policy
        self._blocked_by = blocked_by
        if blocked_by is not None and store.path is None and data_dir is not None:
            # The store runs in memory: read the stored choice without touching the file.
            self._state, self._notice = peek_state(data_dir / "telemetry.db")
        else:
            self._state = load_state(store.get_state(CONSENT_KEY))
            self._notice = bool(store.get_state(NOTICE_KEY, False))
        self._decision = decide(
            consent_policy, self._state, notice_shown=self._notice, blocked_by=blocked_by
        )
        self._identity = Identity(
            store,
            device_id=device_id,
            session_timeout_ms=session_timeout_ms,
            create=self._decision.record,
        )
        info = platform_info()
        self._context: dict[str, Any] = {
            "platform": info.platform,
            "os_name": info.os_name,
            "os_version": info.os_version,
            "language": info.language,
            "library": info.library,
        }
        if component_version:
            self._context = {"app_version": component_version, **self._context}
        self._context_json = "," + _events.encode_json(self._context)[1:-1]
        self._id_lock = threading.Lock()
        self._event_id = self._event_id_end = 0
        self._client_info = {
            "project_name": project_name,
            "component_name": component_name,
            "component_version": component_version,
            "endpoint_url": self.endpoint_url,
            "consent_policy": str(consent_policy),
        }
        if self._decision.record:
            self._save_client_info()
        # Copies the journal into SQLite about once a second (or after 200 events), and
        # keeps caps and checkpoints off the caller's thread.
        self._housekeeper = Housekeeper(self._housekeeping, interval=1.0, burst=200)
        self._housekeeper.start()
        self._uploader: Uploader | None = None
        if upload and blocked_by is None:
            self._uploader = Uploader(
                store,
                url=self.endpoint_url,
                api_key=project_name,
                policy=upload_policy,
                deletion_url=deletion_url(endpoint),
                on_status=self._notify,
            )
            self._uploader.set_events_allowed(False)
        if self._decision.record:
            self._identify_component()
        self._apply_upload_decision()
        if self._uploader is not None:
            self._uploader.start()

    def _save_client_info(self) -> None:
        info = dict(self._client_info)
        declared = None if self._catalogue is None else self._catalogue.to_dict()
        if self.store.get_state("catalogue") != declared:
            self.store.set_state("catalogue", declared)
        if self.store.get_state("client") != info:
            self.store.set_state("client", info)

    # ------------------------------------------------------------------ consent

    @property
    def consent_state(self) -> ConsentState:
        """The user's stored choice (``unknown`` until they chose)."""
        return self._state

    @property
    def consent_policy(self) -> ConsentPolicy:
        """What the app does before the user chose (``opt_out`` or ``opt_in``)."""
        return self._policy

    @property
    def disabled_by_environment(self) -> str | None:
        """``"DO_NOT_TRACK"`` or ``"TELEMETRY_DISABLED"`` when the environment turned
        telemetry off (the stored choice is kept for later runs), else ``None``."""
        return self._blocked_by

    @property
    def enabled(self) -> bool:
        """Whether events are being recorded now."""
        return self._decision.record and not self._closed

    @property
    def uploading(self) -> bool:
        """Whether queued events may be uploaded now."""
        return self._decision.upload_events and self._uploader is not None

    @property
    def notice_shown(self) -> bool:
        """Whether the first-run notice was shown (persisted)."""
        return self._notice

    def mark_notice_shown(self) -> None:
        """The app showed the first-run notice: under ``opt_out``, uploads may start."""
        with self._consent_lock:
            if self._notice or self._blocked_by is not None:
                return
            self._notice = True
            self.store.set_state(NOTICE_KEY, True)
            self._redecide()
        self._notify()

    def set_consent(self, granted: bool) -> None:
        """Apply the user's choice at once (never raises).

        Off: recording stops, an upload in flight is cancelled, queued events, counters, the
        sent log and the device id are deleted, and one deletion request for the device id
        whose events may have left the machine is queued (retried until delivered, kept
        across restarts). On: a new random device id when there was none (after an opt-out,
        the old one is never used again).
        """
        try:
            with self._consent_lock:
                if self._blocked_by is not None:
                    log.warning(
                        "telemetry is disabled by %s; the choice is not changed", self._blocked_by
                    )
                    return
                wanted = ConsentState.GRANTED if granted else ConsentState.DENIED
                if wanted is self._state:
                    return
                if granted:
                    self._grant()
                else:
                    self._deny()
        except Exception:
            log.exception("telemetry could not apply the consent choice")
            self.store.increment(INTERNAL_ERRORS)
        self._notify()

    def _stop_recording(self) -> None:
        """Denied: no append is in progress once this returns and none starts; the upload in
        flight is cancelled."""
        with self._record_lock:
            self._state = ConsentState.DENIED
            self._decision = Decision(record=False, upload_events=False)
        if self._uploader is not None:
            self._uploader.set_events_allowed(False)
            self._uploader.cancel()

    def _forget_recorded(self, keep_state: tuple[str, ...]) -> int:
        """Erase what was recorded (store and journals) and the identity, in the store and in
        memory; returns how many events went unsent."""
        unsent = self.store.erase(keep_state=keep_state)
        self._identity.forget()
        with self._id_lock:
            self._event_id = self._event_id_end = 0
        with self._throttle_lock:
            self._last_by_name.clear()
        return unsent

    def _deny(self) -> None:
        self._stop_recording()
        uploader = self._uploader
        exposed = [d for d in self.store.get_state(EXPOSED_KEY) or [] if isinstance(d, str)]
        now = time.time_ns() // 1_000_000

        def with_requests(queued: Any) -> list[Any] | None:
            # One transaction: the uploader dropping a delivered request meanwhile loses nothing.
            pending = list(queued or [])
            known = {r.get("device_id") for r in pending if isinstance(r, dict)}
            for device in exposed:
                if device not in known:
                    pending.append(
                        {
                            "device_id": device,
                            "project": self.project_name,
                            "reason": "opt_out",
                            "created_at": now,
                        }
                    )
            return pending or None

        unsent = self._forget_recorded((NOTICE_KEY, DELETION_KEY))
        self.store.set_state(CONSENT_KEY, str(ConsentState.DENIED))
        pending = self.store.update_state(DELETION_KEY, with_requests) or []
        log.info(
            "telemetry turned off: %d unsent events deleted, %d deletion request(s) queued",
            unsent,
            len(pending),
        )
        if uploader is not None and pending:
            uploader.send_deletions_now()

    def _grant(self) -> None:
        self._state = ConsentState.GRANTED
        self.store.set_state(CONSENT_KEY, str(ConsentState.GRANTED))
        self._identity.ensure_device_id()
        self._save_client_info()
        self._redecide()
        self._identify_component()

    def _redecide(self) -> None:
        self._decision = decide(
            self._policy, self._state, notice_shown=self._notice, blocked_by=self._blocked_by
        )
        self._apply_upload_decision()

    def _apply_upload_decision(self) -> None:
        allowed = self._decision.upload_events and self._uploader is not None
        if allowed and self.device_id:
            self._mark_exposed(self.device_id)
        if self._uploader is not None:
            self._uploader.set_events_allowed(allowed)

    def _mark_exposed(self, device_id: str) -> None:
        """Remember that events of ``device_id`` may leave the machine (so an opt-out sends a
        deletion request for it); nothing is marked while uploads are not allowed."""
        if device_id in (self.store.get_state(EXPOSED_KEY) or []):
            return
        self.store.update_state(
            EXPOSED_KEY,
            lambda exposed: (
                exposed if device_id in (exposed or []) else [*(exposed or []), device_id]
            ),
        )

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
        info = status_dict(self.store)
        upload = info.get("upload") or {}
        connectivity = upload.get("connectivity")
        if self._uploader is not None:
            connectivity = self._uploader.connectivity.state
        info.update(
            consent=str(self._state),
            consent_policy=str(self._policy),
            notice_shown=self._notice,
            enabled=self.enabled,
            uploading=self.uploading,
            disabled_by_environment=self._blocked_by,
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
        """The random device id sent with every event."""
        return self._identity.device_id

    @property
    def user_id(self) -> str | None:
        """The user id set with :meth:`set_user_id`, if any."""
        return self._identity.user_id

    @property
    def session_id(self) -> int:
        """The current session's start time in ms (a new session after 30 minutes idle)."""
        return self._identity.session_id

    def set_device_id(self, device_id: str) -> None:
        """Use another device id from now on (for example one passed in a link).

        Ignored while telemetry is off (no device id may exist then)."""
        if not self._decision.record:
            return
        self._identity.set_device_id(device_id)
        self._apply_upload_decision()

    def regenerate_device_id(self) -> str:
        """Switch to a new random device id, keeping the user id; returns the new id
        (``''`` while telemetry is off)."""
        if not self._decision.record:
            return ""
        new = self._identity.regenerate_device_id()
        self._apply_upload_decision()
        return new

    def set_user_id(self, user_id: str | None) -> None:
        """Identify the signed-in user (``None`` signs out). Persisted across restarts."""
        self._identity.set_user_id(user_id)

    def set_session_id(self, session_id: int) -> None:
        """Continue session ``session_id`` (ms), e.g. one passed by a link's ``s_id``."""
        self._identity.set_session_id(session_id)

    # ------------------------------------------------------------------ recording

    def track(self, event_type: str, properties: Mapping[str, Any] | None = None) -> str | None:
        """Record an event; it is on disk when this returns.

        Returns the event's ``insert_id``, or ``None`` when the event was not recorded
        (throttled, or the client is closed).

        Raises:
            InvalidEventError: the name or properties are malformed (nothing is stored).
        """
        _events.validate_event_type(event_type)
        props = _events.normalize_properties(properties)
        if self._catalogue is not None:
            self._catalogue.check(event_type, props)
        if not self._decision.record:
            return None
        if self._allowlist is not None:
            props, removed = _events.filter_properties(props, self._allowlist)
            if removed:
                self.store.increment(PROPERTIES_FILTERED, removed)
        if self._throttled(event_type):
            return None
        return self._record(event_type, props, None)

    def identify(self, operations: Mapping[str, Mapping[str, Any]]) -> str | None:
        """Send a raw ``$identify`` with user-property operations (``$set``, ``$setOnce``...)."""
        ops: dict[str, Any] = {}
        for op, values in operations.items():
            if not isinstance(op, str) or not op.startswith("$"):
                raise InvalidEventError(
                    f"identify operations are names like '$set' or '$setOnce'; got {op!r}",
                    key=str(op),
                )
            if not isinstance(values, Mapping):
                raise InvalidEventError(f"identify operation {op!r} needs a mapping", key=op)
            ops[op] = _events.copy_json_mapping(values, op)
        if not ops or not self._decision.record:
            return None
        return self._record(_events.IDENTIFY_EVENT, None, ops)

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
        """
        check_id(user_id, "user_id")
        ids = [check_id(d, "device_id") for d in device_ids]
        if not self._decision.record:
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
            self._apply_upload_decision()
        if final is None:
            self.regenerate_device_id()
        else:
            self._identity.set_device_id(final)

    def _record(
        self, event_type: str, props: dict[str, Any] | None, user_props: dict[str, Any] | None
    ) -> str | None:
        with self._record_lock:  # an opt-out waits for an append in progress, then none starts
            if not self._decision.record:
                return None
            return self._record_locked(event_type, props, user_props)

    def _record_locked(
        self, event_type: str, props: dict[str, Any] | None, user_props: dict[str, Any] | None
    ) -> str | None:
        if self._closed:
            log.warning("telemetry client is closed; event %r not recorded", event_type)
            return None
        try:
            now = time.time_ns() // 1_000_000
            insert_id = _events.new_insert_id()
            identity = self._identity
            user_id = identity.user_id
            # Assembled from pre-encoded parts: the same JSON json.dumps gives, much faster.
            type_json = _events.encode_json(event_type)
            parts = [
                '{"event_type":',
                type_json,
                ',"device_id":',
                _events.encode_json(identity.device_id),
                "" if user_id is None else f',"user_id":{_events.encode_json(user_id)}',
                f',"session_id":{identity.session_at(now)},"time":{now}',
                f',"insert_id":"{insert_id}","event_id":{self._next_event_id()}',
                self._context_json,
            ]
            if props is not None:
                parts += ',"event_properties":', _events.encode_json(props)
            if user_props is not None:
                parts += ',"user_properties":', _events.encode_json(user_props)
            parts.append("}")
            payload = "".join(parts)
            _events.check_size(event_type, payload)
        except InvalidEventError:
            raise
        except Exception:
            log.exception("telemetry could not build event %r", event_type)
            self.store.increment(INTERNAL_ERRORS)
            return None
        self.store.append(insert_id, event_type, now, payload, type_json)
        if self._log_payloads:
            log.info("telemetry event recorded: %s", payload)
        self._housekeeper.notify()
        if self._uploader is not None:
            self._uploader.notify_appended()
        return insert_id

    def _next_event_id(self) -> int:
        with self._id_lock:
            if self._event_id >= self._event_id_end:
                self._event_id = self.store.reserve_event_ids(EVENT_ID_BLOCK)
                self._event_id_end = self._event_id + EVENT_ID_BLOCK
            self._event_id += 1
            return self._event_id - 1

    def _throttled(self, event_type: str) -> bool:
        if self._throttle is None:
            return False
        if isinstance(self._throttle, Mapping):
            interval = self._throttle.get(event_type)
            if interval is None:
                return False
        else:
            interval = float(self._throttle)
        now = time.monotonic()
        with self._throttle_lock:
            last = self._last_by_name.get(event_type)
            if last is not None and now - last < interval:
                throttled = True
            else:
                self._last_by_name[event_type] = now
                throttled = False
        if throttled:
            self.store.increment(THROTTLED)
        return throttled

    def _identify_component(self, *, force: bool = False) -> None:
        values = {
            USER_PROP_COMPONENT_NAME: self.component_name,
            USER_PROP_ANALYTICS_CLIENT_VERSION: library_version(),
        }
        marker = {"device_id": self.device_id, **values}
        if force or self.store.get_state("identified") != marker:
            self.identify({"$set": values})
            self.store.set_state("identified", marker)

    # ------------------------------------------------------------------ delivery and lifecycle

    @property
    def uploader(self) -> Uploader | None:
        """The background uploader (``None`` when uploads are off)."""
        return self._uploader

    def flush(self, timeout: float = 10.0) -> bool:
        """Send what is queued now; True when the queue was empty within ``timeout`` s."""
        self.store.flush_overflow()
        if self._uploader is None or not self.uploading:
            return self.store.stats().events == 0
        return self._uploader.flush(timeout)

    def close(self, timeout: float | None = None) -> None:
        """Stop background work, waiting at most ``timeout`` s (default 2); unsent events stay
        on disk for the next launch."""
        if self._closed:
            return
        self._closed = True
        budget = self._close_timeout if timeout is None else timeout
        deadline = time.monotonic() + budget
        # What follows the uploader (housekeeping's last pass, saving, closing the store) keeps
        # a quarter of the budget (at most 0.5 s), so that a loaded machine stays within it.
        rest = min(0.5, budget / 4)
        if self._uploader is not None:
            self._uploader.stop(max(0.0, deadline - rest - time.monotonic()))
        self._housekeeper.stop(max(0.0, deadline - time.monotonic()))
        self._identity.save()
        self.store.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _housekeeping(self) -> None:
        self._follow_stored_choice()
        self.store.maintain()
        self._identity.save()

    def _follow_stored_choice(self) -> None:
        """Apply a choice made in another process of the app (a second window, the CLI)
        within one housekeeping pass: an opt-out there stops recording here too."""
        if self._blocked_by is not None or self.store.in_memory:
            return
        with self._consent_lock:
            # Read under the lock: a set_consent() in this process racing with this pass would
            # otherwise be undone by acting on a read taken before it.
            stored = load_state(self.store.get_state(CONSENT_KEY))
            notice = bool(self.store.get_state(NOTICE_KEY, False))
            if stored is self._state and notice == self._notice:
                return
            self._notice = notice
            if stored is ConsentState.DENIED and self._state is not ConsentState.DENIED:
                self._stop_recording()
                # What this process recorded since the other one erased goes too.
                self._forget_recorded((NOTICE_KEY, DELETION_KEY, CONSENT_KEY))
                if self._uploader is not None:
                    self._uploader.wake()
            elif stored is ConsentState.GRANTED and self._state is not ConsentState.GRANTED:
                self._state = ConsentState.GRANTED
                persisted = self.store.get_state("device_id")
                if isinstance(persisted, str) and persisted:
                    self._identity.set_device_id(persisted)
                else:
                    self._identity.ensure_device_id()
                self._redecide()
            else:
                self._state = stored
                self._redecide()
        log.info("telemetry follows a choice made in another process: %s", stored)
        self._notify()


class NoopClient:
    """The same surface as :class:`Client`, recording and sending nothing.

    ``device_id`` is ``''`` and ``session_id`` is ``-1``, as in the analytics-client. With
    ``log_events=True``, each ``track`` is logged at INFO level.
    """

    project_name = ""
    component_name = ""
    endpoint_url = ""
    device_id = ""
    user_id: str | None = None
    session_id = -1
    uploader = None

    consent_state = ConsentState.DENIED
    consent_policy = ConsentPolicy.OPT_IN
    disabled_by_environment: str | None = None
    enabled = False
    uploading = False
    notice_shown = True

    def __init__(self, log_events: bool = False) -> None:
        self._log_events = log_events

    def mark_notice_shown(self) -> None:
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

    def flush(self, timeout: float = 10.0) -> bool:
        """Nothing to send; returns True."""
        return True

    def close(self, timeout: float | None = None) -> None:
        """Do nothing."""

    def __enter__(self) -> NoopClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


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
        consent_policy: ``"opt_out"`` (record from the first launch, upload once the
            first-run notice was shown) or ``"opt_in"`` (nothing until the user agrees).
            ``DO_NOT_TRACK`` (not empty or ``0``) or ``TELEMETRY_DISABLED=1`` in the
            environment turn everything off: no file written, no device id, no network.
        catalogue: the app's declared events (an :class:`~telemetry.catalogue.EventCatalogue`
            or a TOML/JSON file); undeclared events and properties are then refused.

    Raises:
        ConfigError: a name, id, policy or catalogue is unusable.
    """
    _check_name(project_name, "project_name")
    _check_name(component_name, "component_name")
    if device_id is not None:
        check_id(device_id, "device_id")
        if len(device_id) < MIN_ID_LENGTH:
            log.info("device_id shorter than %d characters; min_id_length is sent", MIN_ID_LENGTH)
    if max_events < 1 or max_bytes < 1 or max_age_days <= 0:
        raise ConfigError("max_events, max_bytes and max_age_days must be positive")
    if isinstance(throttle, (int, float)) and throttle <= 0:
        raise ConfigError("throttle interval must be positive")
    policy = parse_policy(consent_policy)
    declared = _load_catalogue(catalogue)
    directory = Path(data_dir) if data_dir is not None else default_data_dir(component_name)
    blocked_by = environment_block()
    if blocked_by is not None:
        log.info("telemetry disabled by %s: nothing is recorded or sent", blocked_by)
    store = EventStore(
        None if blocked_by is not None else directory,
        max_events=max_events,
        max_bytes=max_bytes,
        max_age_days=max_age_days,
    )
    return Client(
        project_name=project_name,
        component_name=component_name,
        component_version=component_version,
        endpoint=endpoint,
        device_id=device_id,
        data_dir=directory,
        store=store,
        session_timeout_ms=int(session_timeout * 1000),
        property_allowlist=property_allowlist,
        throttle=throttle,
        upload=upload,
        upload_policy=upload_policy or UploadPolicy(),
        close_timeout=close_timeout,
        consent_policy=policy,
        blocked_by=blocked_by,
        catalogue=declared,
    )


def _load_catalogue(
    catalogue: EventCatalogue | str | os.PathLike[str] | None,
) -> EventCatalogue | None:
    if catalogue is None:
        return None
    from telemetry.catalogue import EventCatalogue

    if isinstance(catalogue, EventCatalogue):
        return catalogue
    return EventCatalogue.from_file(Path(catalogue))


def create_noop_client(log_events: bool = False) -> NoopClient:
    """A client that records nothing (for builds without a project, or tests)."""
    return NoopClient(log_events)
