"""The parts of a client that depend on its options: its uploader and the client information
kept in the store for tools (``open_client``, ``telemetry status``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from telemetry._options import ClientOptions
from telemetry._store import EventStore

if TYPE_CHECKING:
    from telemetry._delivery import Uploader


def make_uploader(
    options: ClientOptions, store: EventStore, notify: Callable[[], None]
) -> Uploader:
    """The background uploader for ``options``' endpoint; events stay held until the consent
    flow allows them."""
    from telemetry._delivery import Uploader, UploadPolicy

    uploader = Uploader(
        store,
        url=options.endpoint_url,
        api_key=options.project_name,
        policy=options.upload_policy or UploadPolicy(),
        deletion_url=options.deletion_url,
        reports_url=options.reports_url,
        on_status=notify,
        destination=options.destination,
        clock=options.clock,
    )
    uploader.set_events_allowed(False)
    return uploader


def save_client_info(options: ClientOptions, store: EventStore) -> None:
    """Keep the project, endpoint, policy and declared catalogue for tools (written only
    when they changed)."""
    info = {
        "project_name": options.project_name,
        "component_name": options.component_name,
        "component_version": options.component_version,
        "endpoint": options.endpoint,
        "endpoint_url": options.endpoint_url,
        "consent_policy": str(options.consent_policy),
    }
    declared = None if options.catalogue is None else options.catalogue.to_dict()
    if store.get_state("catalogue") != declared:
        store.set_state("catalogue", declared)
    if store.get_state("client") != info:
        store.set_state("client", info)
