"""Forwarding stored events to Amplitude HTTP V2 (placeholder, filled in the forwarding step)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from telemetry.collector._app import CollectorState

__all__ = ["run_forwarder"]


@contextlib.asynccontextmanager
async def run_forwarder(state: CollectorState, *, interval: float) -> AsyncIterator[None]:
    """Run the forwarder in the background while the context is open."""
    yield
