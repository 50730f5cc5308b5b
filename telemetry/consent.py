"""Consent: the user's stored choice, the app's policy and the environment's veto.

The state machine behind "an opt-out that really stops everything" (consent.md C9):

* the **policy** is chosen by the embedding app: ``opt_out`` (record from the first launch,
  upload only once the first-run notice was shown) or ``opt_in`` (nothing stored and no
  device id until the user says yes);
* the **state** is the user's stored choice: ``unknown`` until they choose, then
  ``granted`` or ``denied``;
* the **environment** can veto everything without touching the stored choice:
  ``DO_NOT_TRACK`` set to anything but empty or ``0``, or ``TELEMETRY_DISABLED=1``.

This module only decides; :class:`telemetry.Client` carries the decisions out (purging,
the deletion request, a new device id).
"""

from __future__ import annotations

import enum
import json
import os
import sqlite3
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from telemetry.errors import ConfigError

#: State keys in the store.
STATE_KEY: Final = "consent"
NOTICE_KEY: Final = "notice_shown"
DELETION_KEY: Final = "deletion_requests"
#: The device id whose events may have left the machine (a deletion request is due for it).
EXPOSED_KEY: Final = "exposed_device_id"


class ConsentState(enum.StrEnum):
    """The user's stored choice."""

    UNKNOWN = "unknown"
    GRANTED = "granted"
    DENIED = "denied"


class ConsentPolicy(enum.StrEnum):
    """What the app does before the user chose."""

    OPT_OUT = "opt_out"
    OPT_IN = "opt_in"


def parse_policy(value: str | ConsentPolicy) -> ConsentPolicy:
    """``"opt_out"``/``"opt_in"`` (or the enum) as a :class:`ConsentPolicy`."""
    try:
        return ConsentPolicy(value)
    except ValueError:
        raise ConfigError(f"consent_policy must be 'opt_out' or 'opt_in'; got {value!r}") from None


def environment_block(env: Mapping[str, str] | None = None) -> str | None:
    """The variable that turns telemetry off in ``env`` (default: ``os.environ``), or None.

    ``DO_NOT_TRACK`` counts when set to anything but empty or ``0`` (consoledonottrack.com,
    comfy-cli's rule); ``TELEMETRY_DISABLED`` when set to ``1`` (or ``true``/``yes``).
    """
    env = os.environ if env is None else env
    dnt = env.get("DO_NOT_TRACK", "").strip()
    if dnt not in ("", "0"):
        return "DO_NOT_TRACK"
    if env.get("TELEMETRY_DISABLED", "").strip().lower() in ("1", "true", "yes"):
        return "TELEMETRY_DISABLED"
    return None


@dataclass(frozen=True, slots=True)
class Decision:
    """What the client may do now."""

    record: bool
    upload_events: bool


def decide(
    policy: ConsentPolicy, state: ConsentState, *, notice_shown: bool, blocked_by: str | None
) -> Decision:
    """Whether events are recorded and uploaded under this policy, choice and environment."""
    if blocked_by is not None or state is ConsentState.DENIED:
        return Decision(record=False, upload_events=False)
    if state is ConsentState.GRANTED:
        return Decision(record=True, upload_events=True)
    if policy is ConsentPolicy.OPT_IN:
        return Decision(record=False, upload_events=False)
    return Decision(record=True, upload_events=notice_shown)


def load_state(value: Any) -> ConsentState:
    """The stored ``consent`` state value as a :class:`ConsentState` (unknown if unreadable)."""
    if isinstance(value, Mapping):
        value = value.get("state")
    try:
        return ConsentState(value)
    except ValueError:
        return ConsentState.UNKNOWN


def peek_state(db_path: Path) -> tuple[ConsentState, bool]:
    """Read the stored choice and notice flag without writing anything (not even a lock
    file): used when the environment vetoes telemetry and the store must stay untouched."""
    if not db_path.exists():
        return ConsentState.UNKNOWN, False
    try:
        conn = sqlite3.connect(f"file:{db_path}?mode=ro&immutable=1", uri=True)
        try:
            rows = dict(
                conn.execute(
                    "SELECT key, value FROM state WHERE key IN (?, ?)", (STATE_KEY, NOTICE_KEY)
                ).fetchall()
            )
        finally:
            conn.close()
    except sqlite3.Error:
        return ConsentState.UNKNOWN, False
    try:
        state = load_state(json.loads(rows[STATE_KEY])) if STATE_KEY in rows else None
        notice = bool(json.loads(rows[NOTICE_KEY])) if NOTICE_KEY in rows else False
    except ValueError:
        return ConsentState.UNKNOWN, False
    return state or ConsentState.UNKNOWN, notice
