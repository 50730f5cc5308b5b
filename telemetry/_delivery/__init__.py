"""Delivery: the background uploader that sends the store's queue, and what it needs.

``_uploader`` runs the loop (schedule in ``_schedule``, answers carried out by ``_outcomes``
as the pure response policy in ``_policy`` decides), ``_deletions`` sends opt-out deletion
requests, ``_connectivity`` tracks whether the network is up, ``_backoff`` holds the retry
timing rules, ``_clock`` the time the schedule runs on, ``_status`` the saved upload status.
The HTTP side is the public :mod:`telemetry.transport`, imported only when the first request
goes out. Public names (``UploadPolicy``) are re-exported by :mod:`telemetry`.
"""

from telemetry._delivery._clock import SYSTEM_CLOCK, Clock, SystemClock
from telemetry._delivery._connectivity import Connectivity, is_loopback_url
from telemetry._delivery._envelopes import report_json
from telemetry._delivery._policy import UploadPolicy
from telemetry._delivery._status import STATE_KEY, status_dict
from telemetry._delivery._uploader import Uploader

__all__ = [
    "STATE_KEY",
    "SYSTEM_CLOCK",
    "Clock",
    "Connectivity",
    "SystemClock",
    "UploadPolicy",
    "Uploader",
    "is_loopback_url",
    "report_json",
    "status_dict",
]
