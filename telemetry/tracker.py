"""Tracker: prefixed event names and screen views, the desktop counterpart of the web tracker."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any, Protocol


class _Tracks(Protocol):
    def track(self, event_type: str, properties: Mapping[str, Any] | None = None) -> str | None: ...


class Tracker:
    """Tracks events named ``[<prefix>] <name>`` (or ``<name>`` without a prefix).

    >>> tracker = Tracker(client, prefix="Etcher")   # doctest: +SKIP
    >>> tracker.track("Flash", {"driveCount": 1})    # records "[Etcher] Flash"  # doctest: +SKIP
    """

    def __init__(self, client: _Tracks, prefix: str | None = "Etcher") -> None:
        self.client = client
        self.prefix = prefix or None
        self.current_screen: str | None = None

    def event_name(self, name: str) -> str:
        """The full, prefixed event name."""
        return f"[{self.prefix}] {name}" if self.prefix else name

    def track(self, name: str, properties: Mapping[str, Any] | None = None) -> str | None:
        """Track ``[prefix] name``."""
        return self.client.track(self.event_name(name), properties)

    def track_screen_view(
        self,
        screen: str,
        properties: Mapping[str, Any] | None = None,
        *,
        opened_at: float | None = None,
        metrics: Mapping[str, float] | None = None,
        name: str = "Screen View",
    ) -> str | None:
        """Track a screen (window, page, dialog) being shown, with timing metrics.

        Adds ``current_screen``, ``previous_screen`` and ``metrics``: the given metrics (ms)
        plus ``timeToShow``, the ms since ``opened_at`` (a ``time.monotonic()`` value taken
        when the screen was asked for). ``metrics`` is ``{}`` when nothing was measured, as
        the web tracker does without a Performance API.
        """
        measured: dict[str, float] = {k: round(float(v), 3) for k, v in (metrics or {}).items()}
        if opened_at is not None:
            measured["timeToShow"] = round((time.monotonic() - opened_at) * 1000.0, 3)
        props: dict[str, Any] = {
            **(properties or {}),
            "current_screen": screen,
            "previous_screen": self.current_screen,
            "metrics": measured,
        }
        self.current_screen = screen
        return self.track(name, props)

    def track_navigation_click(
        self, href: str, properties: Mapping[str, Any] | None = None
    ) -> str | None:
        """Track ``Navigation Click`` with ``href`` and the current screen."""
        props = {**(properties or {}), "href": href, "current_screen": self.current_screen}
        return self.track("Navigation Click", props)
