"""Who the events are about: the random device id, the optional user id and the session.

The device id is a random UUID4 persisted in the store: never derived from hardware, the
user name or the host name. Next to it lives the installation's random secret (32 bytes,
hex), from which the proofs of ownership of its device ids are made
(:func:`telemetry.wire.device_proof`); it never leaves the machine and is erased with the
device id at opt-out. A session is identified by its start time in ms and ends after
30 minutes without events (Amplitude's rule).
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from typing import Final

from telemetry._store import EventStore
from telemetry.errors import ConfigError
from telemetry.events import describe_unprintable
from telemetry.wire import SECRET_BYTES

SESSION_TIMEOUT_MS: Final = 30 * 60 * 1000
MIN_ID_LENGTH: Final = 5
#: Ids Amplitude refuses (compared case-insensitively).
INVALID_IDS: Final = frozenset(
    {
        "anonymous", "nil", "none", "null", "n/a", "na", "undefined", "unknown", "",
        "00000000-0000-0000-0000-000000000000", "{}", "lmy47d", "0", "-1",
    }
)  # fmt: skip

_DEVICE_KEY: Final = "device_id"
_USER_KEY: Final = "user_id"
_SESSION_KEY: Final = "session"
#: State key of the installation secret (hex).
SECRET_KEY: Final = "device_secret"


def installation_secret(store: EventStore, *, create: bool = False) -> bytes | None:
    """The installation's secret; with ``create``, a new random one if there is none (another
    process on the same data dir creating one at the same moment: theirs is kept)."""
    stored = store.get_state(SECRET_KEY)
    if not (isinstance(stored, str) and stored) and create:
        stored = store.setdefault_state(SECRET_KEY, os.urandom(SECRET_BYTES).hex())
    if isinstance(stored, str) and stored:
        try:
            return bytes.fromhex(stored)
        except ValueError:
            return None
    return None


def check_id(value: object, what: str) -> str:
    """Return ``value`` if it is a usable device or user id, else raise ConfigError.

    An id is a str of at most 1,024 printable characters (no control characters, no lone
    surrogates) that is not one of Amplitude's placeholders."""
    if not isinstance(value, str):
        raise ConfigError(f"{what} must be a str, not {type(value).__name__}")
    if value.strip().lower() in INVALID_IDS:
        raise ConfigError(f"{what} {value!r} is a placeholder that Amplitude refuses")
    if len(value) > 1024:
        raise ConfigError(f"{what} is longer than 1,024 characters")
    if not value.isprintable():
        raise ConfigError(f"{what} {value!r} contains {describe_unprintable(value)}")
    return value


def new_device_id() -> str:
    """A fresh random device id."""
    return str(uuid.uuid4())


class Identity:
    """Device id, user id and session of one client, persisted in its store."""

    def __init__(
        self,
        store: EventStore,
        *,
        device_id: str | None = None,
        session_timeout_ms: int = SESSION_TIMEOUT_MS,
        create: bool = True,
    ) -> None:
        self._store = store
        self._lock = threading.Lock()
        self._timeout = session_timeout_ms
        self._requested = None if device_id is None else check_id(device_id, "device_id")
        persisted = store.get_state(_DEVICE_KEY)
        self._device_id = persisted if isinstance(persisted, str) and persisted else ""
        if self._device_id:  # an installation from before secrets existed gets one now
            installation_secret(store, create=True)
        if create:
            self.ensure_device_id()
        user = store.get_state(_USER_KEY)
        self._user_id: str | None = user if isinstance(user, str) else None
        session = store.get_state(_SESSION_KEY) or {}
        self._session_id: int = int(session.get("id", -1))
        self._last_event: int = int(session.get("last", 0))
        self._saved_last = self._last_event

    @property
    def device_id(self) -> str:
        """The current device id (``''`` while none may exist, e.g. before opt-in consent)."""
        return self._device_id

    def ensure_device_id(self) -> str:
        """Create and persist the device id if there is none (the app's requested id first,
        else a random one); returns it."""
        requested, self._requested = self._requested, None
        if requested is not None and requested != self._device_id:
            self.set_device_id(requested)
        elif not self._device_id:
            # Another process on the same data dir may be creating one right now: keep theirs.
            fresh = new_device_id()
            stored = self._store.setdefault_state(_DEVICE_KEY, fresh)
            try:
                self._device_id = check_id(stored or None, "device_id")
            except ConfigError:  # an unusable value where the id should be: replace it
                self.set_device_id(fresh)
        installation_secret(self._store, create=True)
        return self._device_id

    @property
    def user_id(self) -> str | None:
        """The current user id, if one was set."""
        return self._user_id

    def set_device_id(self, device_id: str) -> None:
        """Use ``device_id`` from now on (persisted)."""
        self._device_id = check_id(device_id, "device_id")
        self._store.set_state(_DEVICE_KEY, self._device_id)
        installation_secret(self._store, create=True)

    def regenerate_device_id(self) -> str:
        """Switch to a fresh random device id (the user id is kept)."""
        self.set_device_id(new_device_id())
        return self._device_id

    def set_user_id(self, user_id: str | None) -> None:
        """Set (or with ``None`` clear) the user id (persisted)."""
        self._user_id = None if user_id is None else check_id(user_id, "user_id")
        self._store.set_state(_USER_KEY, self._user_id)

    def session_at(self, now_ms: int) -> int:
        """The session id for an event at ``now_ms``, starting a new session after idling."""
        with self._lock:
            if self._session_id < 0 or now_ms - self._last_event > self._timeout:
                self._session_id = now_ms
            self._last_event = now_ms
            return self._session_id

    @property
    def session_id(self) -> int:
        """The current session id (its start in ms), starting one if none is active."""
        return self.session_at(time.time_ns() // 1_000_000) if self._expired() else self._session_id

    def set_session_id(self, session_id: int) -> None:
        """Continue the session ``session_id`` (for example one passed in a link)."""
        with self._lock:
            self._session_id = int(session_id)
            self._last_event = time.time_ns() // 1_000_000
        self.save()

    def _expired(self) -> bool:
        now = time.time_ns() // 1_000_000
        return self._session_id < 0 or now - self._last_event > self._timeout

    def save(self) -> None:
        """Persist the session (called from housekeeping and at close, not per event)."""
        with self._lock:
            if self._session_id < 0 or self._last_event == self._saved_last:
                return  # no session (none yet, or forgotten at opt-out) or nothing new
            state = {"id": self._session_id, "last": self._last_event}
            self._saved_last = self._last_event
        self._store.set_state(_SESSION_KEY, state)

    def forget(self) -> None:
        """Delete the device id, user id and session, in memory and in the store (opt-out)."""
        with self._lock:
            self._device_id = ""
            self._requested = None
            self._user_id = None
            self._session_id = -1
            self._last_event = self._saved_last = 0
        for key in (_DEVICE_KEY, _USER_KEY, _SESSION_KEY, SECRET_KEY):
            self._store.set_state(key, None)
