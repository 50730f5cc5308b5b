"""The signed link tracker (placeholder, filled in the link tracker step)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.routing import BaseRoute

from telemetry.collector._config import LinkSettings

if TYPE_CHECKING:
    from telemetry.collector._app import CollectorState

__all__ = ["link_routes"]


def link_routes(state: CollectorState, settings: LinkSettings) -> list[BaseRoute]:
    """The tracker's routes."""
    return []
