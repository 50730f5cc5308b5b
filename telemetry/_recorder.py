"""The recorder behind ``track()``: validate, throttle, add context and ids, one journal write.

The JSON of an event is assembled from pre-encoded parts (the same text ``json.dumps`` gives,
several times faster) and handed to the store, which makes it durable before ``track()``
returns. Whether recording is allowed at all is the consent flow's decision; the recorder
asks it under the flow's record lock, so an opt-out waits for an append in progress and no
append starts after it.

An app's ``before_send`` hook sees each finished event (a copy of the Amplitude event object)
under that lock, right before the store: what it returns is checked again and is what is
stored, sent and shown by the inspector. A hook that drops, raises or returns an invalid
event costs that one event (logged and counted), never an exception in the app.
"""

from __future__ import annotations

import collections
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, Final

from telemetry import events as _events
from telemetry._identity import Identity
from telemetry._options import ClientOptions
from telemetry._platform import platform_info
from telemetry._store import EVENT_ID_BLOCK, EventStore
from telemetry.errors import InvalidEventError

log = logging.getLogger("telemetry")

# Counter names.
THROTTLED: Final = "dropped_throttled"
PROPERTIES_FILTERED: Final = "properties_filtered"
INTERNAL_ERRORS: Final = "internal_errors"
DROPPED_BEFORE_SEND: Final = "dropped_before_send"
BEFORE_SEND_ERRORS: Final = "before_send_errors"
BEFORE_SEND_INVALID: Final = "before_send_invalid"

BeforeSend = Callable[[dict[str, Any]], dict[str, Any] | None]


class Recorder:
    """Turns ``track``/``identify`` calls into durable queue entries for one client."""

    def __init__(
        self,
        store: EventStore,
        identity: Identity,
        options: ClientOptions,
        *,
        may_record: Callable[[], bool],
        record_lock: threading.Lock,
        on_appended: Callable[[], None],
    ) -> None:
        self._store = store
        self._identity = identity
        self._options = options
        self._may_record = may_record
        self._record_lock = record_lock
        self._on_appended = on_appended
        self._allowlist = options.property_allowlist
        self._before_send: BeforeSend | None = options.before_send
        self._in_hook = threading.local()
        self._last_by_name: dict[str, float] = {}
        self._throttle_lock = threading.Lock()
        self._id_lock = threading.Lock()
        self._event_id = self._event_id_end = 0
        self.closed = False
        #: (time ms, event type) of the last events recorded: error reports' breadcrumbs.
        self.recent: collections.deque[tuple[int, str]] = collections.deque(maxlen=10)
        #: ``TELEMETRY_LOG_EVENTS=1``: log each event's JSON as stored, so a user or developer
        #: can see exactly what would leave the machine without reading the database.
        self._log_payloads = os.environ.get("TELEMETRY_LOG_EVENTS", "") in ("1", "true", "yes")
        info = platform_info()
        context: dict[str, Any] = {
            "platform": info.platform,
            "os_name": info.os_name,
            "os_version": info.os_version,
            "language": info.language,
            "library": info.library,
        }
        if options.component_version:
            context = {"app_version": options.component_version, **context}
        self._context_json = "," + _events.encode_json(context)[1:-1]

    def track(self, event_type: str, properties: Mapping[str, Any] | None) -> str | None:
        """Validate and record one event; see :meth:`telemetry.Client.track`."""
        _events.validate_event_type(event_type)
        props = _events.normalize_properties(properties)
        catalogue = self._options.catalogue
        if catalogue is not None:
            catalogue.check(event_type, props)
        if not self._may_record():
            return None
        if self._allowlist is not None:
            props, removed = _events.filter_properties(props, self._allowlist)
            if removed:
                self._store.increment(PROPERTIES_FILTERED, removed)
        if self._throttled(event_type):
            return None
        return self.record(event_type, props, None)

    def identify(
        self, operations: Mapping[str, Mapping[str, Any]], *, library: bool = False
    ) -> str | None:
        """Validate and record one ``$identify``; see :meth:`telemetry.Client.identify`.

        The values are checked like event properties and, unless ``library`` (the client's
        own identify of the app's name and library version), against the catalogue."""
        if not isinstance(operations, Mapping):
            raise InvalidEventError(
                f"identify needs a mapping of operation to properties, "
                f"not {type(operations).__name__}"
            )
        catalogue = None if library else self._options.catalogue
        ops: dict[str, Any] = {}
        for op, values in operations.items():
            if not isinstance(op, str) or not op.startswith("$") or not op.isprintable():
                raise InvalidEventError(
                    f"identify operations are names like '$set' or '$setOnce'; got {op!r}",
                    key=str(op),
                )
            if not isinstance(values, Mapping):
                raise InvalidEventError(f"identify operation {op!r} needs a mapping", key=op)
            ops[op] = _events.copy_json_mapping(values, "", anonymize=True)
            if catalogue is not None:
                catalogue.check_user_properties(op, ops[op])
        if not ops or not self._may_record():
            return None
        return self.record(_events.IDENTIFY_EVENT, None, ops)

    def record(
        self, event_type: str, props: dict[str, Any] | None, user_props: dict[str, Any] | None
    ) -> str | None:
        """Append one event (already validated) unless recording is off or the client closed."""
        if getattr(self._in_hook, "active", False):
            raise InvalidEventError("before_send must not record events (it runs inside one)")
        with self._record_lock:  # an opt-out waits for an append in progress, then none starts
            if not self._may_record():
                return None
            if self.closed:
                log.warning("telemetry client is closed; event %r not recorded", event_type)
                return None
            return self._append(event_type, props, user_props)

    def _append(
        self, event_type: str, props: dict[str, Any] | None, user_props: dict[str, Any] | None
    ) -> str | None:
        try:
            now = time.time_ns() // 1_000_000
            insert_id = _events.new_insert_id()
            payload, type_json = self._payload(event_type, now, insert_id, props, user_props)
            _events.check_size(event_type, payload)
        except InvalidEventError:
            raise
        except Exception:
            log.exception("telemetry could not build event %r", event_type)
            self._store.increment(INTERNAL_ERRORS)
            return None
        if self._before_send is not None:
            hooked = self._run_before_send(self._before_send, event_type, insert_id, payload)
            if hooked is None:
                return None
            event_type, payload, type_json = hooked
        self._store.append(insert_id, event_type, now, payload, type_json)
        self.recent.append((now, event_type))
        if self._log_payloads:
            log.info("telemetry event recorded: %s", payload)
        self._on_appended()
        return insert_id

    def _run_before_send(
        self, hook: BeforeSend, event_type: str, insert_id: str, payload: str
    ) -> tuple[str, str, str] | None:
        """The hook's (event type, payload, type JSON), or None when the event is dropped."""
        self._in_hook.active = True
        try:
            result = hook(json.loads(payload))
        except Exception:
            log.exception("telemetry before_send raised on event %r; it is dropped", event_type)
            self._store.increment(BEFORE_SEND_ERRORS)
            return None
        finally:
            self._in_hook.active = False
        if result is None:
            self._store.increment(DROPPED_BEFORE_SEND)
            return None
        try:
            return _checked_result(result, event_type, insert_id)
        except InvalidEventError as exc:
            log.warning("telemetry before_send returned an unusable event; dropped: %s", exc)
            self._store.increment(BEFORE_SEND_INVALID)
            return None

    def _payload(
        self,
        event_type: str,
        now: int,
        insert_id: str,
        props: dict[str, Any] | None,
        user_props: dict[str, Any] | None,
    ) -> tuple[str, str]:
        identity = self._identity
        user_id = identity.user_id
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
        return "".join(parts), type_json

    def _next_event_id(self) -> int:
        with self._id_lock:
            if self._event_id >= self._event_id_end:
                self._event_id = self._store.reserve_event_ids(EVENT_ID_BLOCK)
                self._event_id_end = self._event_id + EVENT_ID_BLOCK
            self._event_id += 1
            return self._event_id - 1

    def _throttled(self, event_type: str) -> bool:
        throttle = self._options.throttle
        if throttle is None:
            return False
        if isinstance(throttle, Mapping):
            interval = throttle.get(event_type)
            if interval is None:
                return False
        else:
            interval = float(throttle)
        now = time.monotonic()
        with self._throttle_lock:
            last = self._last_by_name.get(event_type)
            if last is not None and now - last < interval:
                throttled = True
            else:
                self._last_by_name[event_type] = now
                throttled = False
        if throttled:
            self._store.increment(THROTTLED)
        return throttled

    def forget(self) -> None:
        """Opt-out: the reserved event ids and the throttle memory go with the erased data."""
        with self._id_lock:
            self._event_id = self._event_id_end = 0
        with self._throttle_lock:
            self._last_by_name.clear()
        self.recent.clear()


def _checked_result(result: object, event_type: str, insert_id: str) -> tuple[str, str, str]:
    """A hook's event checked like ``track()`` input; raise InvalidEventError if unusable."""
    if not isinstance(result, Mapping):
        raise InvalidEventError(f"before_send must return a dict or None, not {type(result)}")
    event = _events.copy_json_mapping(result, "", levels_above=2)
    new_type = event.get("event_type")
    if new_type != event_type:
        _events.validate_event_type(new_type)
    if event.get("insert_id") != insert_id:
        raise InvalidEventError("before_send must not change insert_id", key="insert_id")
    assert isinstance(new_type, str)
    payload = _events.encode_json(event)
    _events.check_size(new_type, payload)
    return new_type, payload, _events.encode_json(new_type)
