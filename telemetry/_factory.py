"""How a client comes to be: ``create_client()`` for an app, ``open_client()`` for a tool,
and the pieces a :class:`~telemetry.Client` is assembled from that need its options (the
uploader, the client information kept for tools).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from telemetry._identity import MIN_ID_LENGTH, SESSION_TIMEOUT_MS, check_id
from telemetry._options import (
    ClientOptions,
    check_name,
    default_data_dir,
    endpoint_from_url,
    load_catalogue,
    parse_policy,
)
from telemetry._store import (
    DB_FILENAME,
    DEFAULT_MAX_AGE_DAYS,
    DEFAULT_MAX_BYTES,
    DEFAULT_MAX_EVENTS,
    peek_state,
)
from telemetry.client import Client
from telemetry.consent import ConsentPolicy, environment_block
from telemetry.errors import ConfigError

if TYPE_CHECKING:
    from telemetry._delivery import Clock, UploadPolicy
    from telemetry.catalogue import EventCatalogue
    from telemetry.transport import Destination

log = logging.getLogger("telemetry")


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
    before_send: Callable[[dict[str, Any]], dict[str, Any] | None] | None = None,
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
        max_events: cap of the local queue, in events (oldest dropped first).
        max_bytes: cap of the local queue, in bytes (oldest dropped first).
        max_age_days: queued events older than this expire.
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
        before_send: called with each event (a copy of the Amplitude event object, the
            client's own ``$identify`` included) right before it is stored; it returns the
            event to store (changed or not) or ``None`` to drop it (counted as
            ``dropped_before_send``). If it raises, the event is dropped, logged and counted
            (``before_send_errors``); a result that is not a valid event (strict JSON, the
            size limit, a valid name, ``insert_id`` unchanged) is dropped and counted
            (``before_send_invalid``). It runs under the client's record lock: keep it
            quick, and do not call the client from it.

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
        before_send=before_send,
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
