"""The recorder behind ``track()``: validate, throttle, add context and ids, one journal write.

The JSON of an event is assembled from pre-encoded parts (the same text ``json.dumps`` gives,
several times faster) and handed to the store, which makes it durable before ``track()``
returns. Whether recording is allowed at all is the consent flow's decision; the recorder
asks it under the flow's record lock, so an opt-out waits for an append in progress and no
append starts after it.
"""

from __future__ import annotations

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
        self._last_by_name: dict[str, float] = {}
        self._throttle_lock = threading.Lock()
        self._id_lock = threading.Lock()
        self._event_id = self._event_id_end = 0
        self.closed = False
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

    def identify(self, operations: Mapping[str, Mapping[str, Any]]) -> str | None:
        """Validate and record one ``$identify``; see :meth:`telemetry.Client.identify`."""
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
        if not ops or not self._may_record():
            return None
        return self.record(_events.IDENTIFY_EVENT, None, ops)

    def record(
        self, event_type: str, props: dict[str, Any] | None, user_props: dict[str, Any] | None
    ) -> str | None:
        """Append one event (already validated) unless recording is off or the client closed."""
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
        self._store.append(insert_id, event_type, now, payload, type_json)
        if self._log_payloads:
            log.info("telemetry event recorded: %s", payload)
        self._on_appended()
        return insert_id

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
