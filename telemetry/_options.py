"""What a client is configured with: endpoints, names, caps and policies, checked once.

``create_client()`` and ``open_client()`` turn their arguments into one frozen
:class:`ClientOptions`; nothing else in the client re-validates them.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from telemetry.consent import ConsentPolicy
from telemetry.errors import ConfigError

if TYPE_CHECKING:
    from telemetry._delivery import Clock, UploadPolicy
    from telemetry.catalogue import EventCatalogue
    from telemetry.transport import Destination

log = logging.getLogger("telemetry")

PRODUCTION_ENDPOINT: Final = "data.balena-cloud.com"
STAGING_ENDPOINT: Final = "data.balena-staging.com"
AMPLITUDE_URL: Final = "https://api2.amplitude.com/2/httpapi"
_UPLOAD_PATH: Final = "/amplitude/2/httpapi"

_NAME_RE: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._ -]{0,99}$")


def endpoint_url(endpoint: str | None) -> str:
    """The upload URL for ``endpoint`` (a host, or a base URL with a scheme).

    ``None`` gives Amplitude's own HTTP V2 URL, as the analytics-client does.
    """
    if endpoint is None:
        return AMPLITUDE_URL
    base = endpoint if "://" in endpoint else f"https://{endpoint}"
    return f"{base.rstrip('/')}{_UPLOAD_PATH}"


def endpoint_from_url(url: str | None) -> str | None:
    """The inverse of :func:`endpoint_url` (for a database that recorded only the URL)."""
    if not url or url == AMPLITUDE_URL:
        return None
    return url[: -len(_UPLOAD_PATH)] if url.endswith(_UPLOAD_PATH) else url


def deletion_url(endpoint: str | None) -> str | None:
    """Where deletion requests go: the collector's ``/amplitude/deletion`` (``None`` when
    events go straight to Amplitude, whose deletion API needs a secret key)."""
    if endpoint is None:
        return None
    url = endpoint_url(endpoint)
    return url[: -len("/2/httpapi")] + "/deletion"


def reports_url(endpoint: str | None, project: str) -> str | None:
    """Where error reports go: the collector's Sentry envelope endpoint for ``project``, with
    the project as the key in the query string (``None`` when events go straight to
    Amplitude, which takes no reports)."""
    if endpoint is None:
        return None
    from urllib.parse import quote

    base = endpoint if "://" in endpoint else f"https://{endpoint}"
    name = quote(project, safe="")
    return f"{base.rstrip('/')}/api/{name}/envelope/?sentry_version=7&sentry_key={name}"


def default_data_dir(component_name: str) -> Path:
    """Where an app keeps its telemetry database: ``<user data dir>/<component>/telemetry``.

    Raises :class:`ConfigError` for a name that is not a component name (``../x`` included)."""
    check_name(component_name, "component_name")
    import platformdirs  # loaded only when an app does not choose its data dir

    return platformdirs.user_data_path(component_name, appauthor=False) / "telemetry"


def check_name(value: object, what: str) -> str:
    """``value`` if it is a usable project or component name, else :class:`ConfigError`."""
    if not isinstance(value, str) or not _NAME_RE.match(value):
        raise ConfigError(
            f"{what} must be 1-100 letters, digits, '.', '_', '-' or spaces, starting with a "
            f"letter or digit; got {value!r}"
        )
    return value


def parse_policy(value: str | ConsentPolicy) -> ConsentPolicy:
    """``"opt_out"``/``"opt_in"`` (or the enum) as a :class:`ConsentPolicy`."""
    try:
        return ConsentPolicy(value)
    except ValueError:
        raise ConfigError(f"consent_policy must be 'opt_out' or 'opt_in'; got {value!r}") from None


def load_catalogue(
    catalogue: EventCatalogue | str | os.PathLike[str] | None,
) -> EventCatalogue | None:
    """The declared catalogue: an :class:`EventCatalogue`, a TOML/JSON file, or none."""
    if catalogue is None:
        return None
    from telemetry.catalogue import EventCatalogue

    if isinstance(catalogue, EventCatalogue):
        return catalogue
    return EventCatalogue.from_file(Path(catalogue))


@dataclass(frozen=True, slots=True)
class ClientOptions:
    """Everything a :class:`~telemetry.Client` is configured with (validated)."""

    project_name: str
    component_name: str
    component_version: str | None
    endpoint: str | None
    data_dir: Path
    max_events: int
    max_bytes: int
    max_age_days: float
    session_timeout_ms: int
    device_id: str | None = None
    property_allowlist: tuple[str, ...] | None = None
    throttle: Mapping[str, float] | float | None = None
    upload: bool = True
    upload_policy: UploadPolicy | None = None
    close_timeout: float = 2.0
    consent_policy: ConsentPolicy = ConsentPolicy.OPT_OUT
    catalogue: EventCatalogue | None = None
    #: Where batches go instead of the network (``telemetry.testing.RecordingDestination``).
    destination: Destination | None = None
    #: The time the uploader's schedule runs on (``telemetry.testing.FakeClock`` in tests).
    clock: Clock | None = None
    #: ``True`` for tools that inspect a data dir (``open_client``): the client records no
    #: event of its own (no ``$identify``, no client info written).
    inspector: bool = False
    #: Sees each event right before it is stored: returns it (changed or not) or None.
    before_send: Callable[[dict[str, Any]], dict[str, Any] | None] | None = None

    @property
    def endpoint_url(self) -> str:
        """Where batches are posted."""
        return endpoint_url(self.endpoint)

    @property
    def reports_url(self) -> str | None:
        """Where error reports are posted (``None``: the endpoint takes none)."""
        return reports_url(self.endpoint, self.project_name)

    @property
    def deletion_url(self) -> str | None:
        """Where deletion requests are posted (``None``: not supported by the endpoint)."""
        return deletion_url(self.endpoint)

    def check(self) -> ClientOptions:
        """Raise :class:`ConfigError` for an unusable value; returns ``self``."""
        check_name(self.project_name, "project_name")
        check_name(self.component_name, "component_name")
        if self.max_events < 1 or self.max_bytes < 1 or self.max_age_days <= 0:
            raise ConfigError("max_events, max_bytes and max_age_days must be positive")
        throttle = self.throttle
        if isinstance(throttle, (int, float)) and throttle <= 0:
            raise ConfigError("throttle interval must be positive")
        if isinstance(throttle, Mapping):
            for name, interval in throttle.items():
                if not isinstance(interval, (int, float)) or interval <= 0:
                    raise ConfigError(f"throttle interval for {name!r} must be positive")
        if self.close_timeout < 0:
            raise ConfigError("close_timeout must not be negative")
        if self.before_send is not None and not callable(self.before_send):
            raise ConfigError("before_send must be a callable (event dict -> dict or None)")
        return self


def allowlist(patterns: Iterable[str] | None) -> tuple[str, ...] | None:
    """The property allowlist as a tuple (``None``: every property kept)."""
    return tuple(patterns) if patterns is not None else None
