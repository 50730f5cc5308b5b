"""Consent: the user's stored choice, the app's policy and the environment's veto.

The state machine behind "an opt-out that really stops everything":

* the **policy** is chosen by the embedding app: ``opt_out`` (record from the first launch,
  upload only once the user has *answered* the first-run notice: OK, dismissed, or a choice
  in Settings; merely showing it is not enough) or ``opt_in`` (nothing stored and no device
  id until the user says yes);
* the **state** is the user's stored choice: ``unknown`` until they choose, then
  ``granted`` or ``denied``;
* the **environment** can veto everything without touching the stored choice:
  ``DO_NOT_TRACK`` set to anything but empty or ``0``, or ``TELEMETRY_DISABLED=1``.

This module only decides (pure functions, no I/O); the client's consent flow carries the
decisions out (erasing, the deletion request, a new device id).
"""

from __future__ import annotations

import enum
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

#: State keys in the store.
STATE_KEY: Final = "consent"
NOTICE_KEY: Final = "notice_shown"
#: The user answered the first-run notice (OK, dismissed, or a choice in Settings).
ANSWERED_KEY: Final = "notice_answered"
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
    policy: ConsentPolicy, state: ConsentState, *, notice_answered: bool, blocked_by: str | None
) -> Decision:
    """Whether events are recorded and uploaded under this policy, choice and environment.

    ==========================  ==========  ============  ==============
    environment / stored state  policy      notice        decision
    ==========================  ==========  ============  ==============
    vetoed (``DO_NOT_TRACK``)   any         any           nothing
    ``denied``                  any         any           nothing
    ``granted``                 any         any           record, upload
    ``unknown``                 ``opt_in``  any           nothing
    ``unknown``                 ``opt_out`` not answered  record only
    ``unknown``                 ``opt_out`` answered      record, upload
    ==========================  ==========  ============  ==============
    """
    if blocked_by is not None or state is ConsentState.DENIED:
        return Decision(record=False, upload_events=False)
    if state is ConsentState.GRANTED:
        return Decision(record=True, upload_events=True)
    if policy is ConsentPolicy.OPT_IN:
        return Decision(record=False, upload_events=False)
    return Decision(record=True, upload_events=notice_answered)


def load_state(value: Any) -> ConsentState:
    """The stored ``consent`` state value as a :class:`ConsentState` (unknown if unreadable)."""
    if isinstance(value, Mapping):
        value = value.get("state")
    try:
        return ConsentState(value)
    except ValueError:
        return ConsentState.UNKNOWN
