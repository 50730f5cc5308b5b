"""The exception tree of the telemetry package.

::

    TelemetryError
    ├── InvalidEventError (also a ValueError)  - a malformed event name or properties
    ├── ConfigError (also a ValueError)        - a bad argument to create_client() and friends
    ├── StoreError                             - the local database could not do what was asked
    └── TransportError                         - an HTTP request got no (full) answer

Only programming errors (``InvalidEventError``, ``ConfigError``) ever reach the host app.
Runtime faults are logged and counted instead of raised (the uploader and the collector's
forwarder catch ``TransportError`` and retry later).
"""

from __future__ import annotations


class TelemetryError(Exception):
    """Base class of every error this package raises."""


class InvalidEventError(TelemetryError, ValueError):
    """An event name or property that cannot be recorded; nothing was stored.

    Attributes:
        key: the offending property key (dotted for nested keys), or ``None`` when the
            event as a whole (its name or size) is at fault.
    """

    def __init__(self, message: str, key: str | None = None) -> None:
        super().__init__(message)
        self.key = key


class ConfigError(TelemetryError, ValueError):
    """A configuration value that cannot work (for example an empty project name)."""


class StoreError(TelemetryError):
    """The local event database failed (disk full, read-only, locked or corrupt)."""


class TransportError(TelemetryError):
    """An HTTP request did not get a full answer (raised by :mod:`telemetry.transport`).

    Attributes:
        kind: ``connect_error`` (refused, unreachable, DNS, TLS or proxy failure before the
            request went out), ``network_error`` (the connection broke mid-request),
            ``timeout`` (no full answer within the deadline) or ``cancelled`` (aborted by the
            caller).
    """

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(f"{kind}: {detail}")
        self.kind = kind
