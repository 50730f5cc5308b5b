"""Helpers for the error-report tests: a client sending to a RecordingDestination."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import telemetry
from telemetry.testing import RecordingDestination

PROJECT = "reports-test"
COMPONENT = "reports-app"
ENDPOINT = "http://127.0.0.1:9"  # never reached: the destination records instead


def make_client(
    data_dir: Path,
    destination: RecordingDestination,
    *,
    answered: bool = True,
    **options: Any,
) -> telemetry.Client:
    """A client on ``data_dir`` whose uploads go to ``destination``; by default the user has
    answered the first-run notice (uploads allowed under the opt-out policy)."""
    client = telemetry.create_client(
        PROJECT, COMPONENT, "3.1.4", ENDPOINT, data_dir=data_dir, destination=destination, **options
    )
    if answered:
        client.mark_notice_answered()
    return client


def raise_from_here(message: str) -> None:
    """Raise a ValueError from a function of its own (a frame with a known name)."""
    raise ValueError(message)
