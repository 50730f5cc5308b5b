"""Error and crash reports: what a report holds (:mod:`._build`), how exceptions, logged
errors and native crashes are caught (:mod:`._capture`), and Sentry's envelope around a
report on the wire (``telemetry._delivery._envelopes``).

A report is a Sentry event object, anonymised like event properties: exception types,
messages, frames (module, function, line, and a file path relative to the app or to
``sys.path``, never absolute), app version, OS, a fingerprint that groups repeats, and the
last events of the session as breadcrumbs.
"""

from __future__ import annotations

from telemetry._reports._build import ReportContext, exception_report, fault_report, message_report
from telemetry._reports._capture import Capture
from telemetry._reports._faults import FaultFiles

__all__ = [
    "Capture",
    "FaultFiles",
    "ReportContext",
    "exception_report",
    "fault_report",
    "message_report",
]
