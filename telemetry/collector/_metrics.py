"""In-process counters and a latency histogram, in Prometheus text format (``/metrics``)."""

from __future__ import annotations

import bisect
import threading
from collections import defaultdict
from typing import Final

__all__ = ["LATENCY_BUCKETS", "Metrics"]

#: Upper bounds (seconds) of the ingest latency histogram buckets.
LATENCY_BUCKETS: Final = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

_COUNTERS: Final = {
    "events_accepted": "Events stored (new rows).",
    "events_duplicates": "Events ignored because already stored (same project and insert_id).",
    "events_rejected": "Events refused: invalid, unknown project, tombstoned device, throttled.",
    "requests": "Ingest requests by HTTP status.",
    "batches_over_event_limit": "Batches refused (413) while parsing: over 2,000 events.",
    "deletions": "Deletion requests honoured.",
    "deletions_unverified": "Deletion requests whose proof did not match (nothing deleted).",
    "deletions_rate_limited": "Deletion requests refused (429): too many from one network.",
    "events_deleted": "Event rows deleted by deletion requests.",
    "forwarded_events": "Events forwarded to the destination (answered 200).",
    "forward_dropped_events": "Events the destination refused (400) or that expired (7 days).",
    "forward_requests": "Forwarding requests by HTTP status (0: network error).",
    "link_hits": "Signed link tracker rows stored.",
    "reports_accepted": "Error reports stored (new rows).",
    "reports_duplicates": "Error reports ignored because already stored (same event_id).",
    "reports_rejected": "Error reports refused: malformed, bad key, tombstoned device, throttled.",
    "report_items_ignored": "Envelope items answered 200 but not stored (sessions, ...).",
    "report_requests": "Envelope requests by HTTP status.",
    "forwarded_reports": "Error reports forwarded to a Sentry DSN (answered 200).",
    "report_forward_dropped": "Error reports the Sentry DSN refused (4xx) or that expired.",
    "report_forward_requests": "Report forwarding requests by HTTP status (0: network error).",
    "retention_deleted_rows": "Rows (events, reports, tombstones) deleted by retention.",
    "retention_failures": "Retention passes that failed (retried at the next pass).",
}


class Metrics:
    """Thread-safe counters (optionally labelled by ``status``) and one latency histogram."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: defaultdict[tuple[str, str], float] = defaultdict(float)
        self._buckets = [0] * (len(LATENCY_BUCKETS) + 1)
        self._latency_sum = 0.0
        self._latency_count = 0

    def inc(self, name: str, amount: float = 1, *, status: int | None = None) -> None:
        """Add ``amount`` to counter ``name`` (must be one of the known counters)."""
        if name not in _COUNTERS:
            raise KeyError(name)
        with self._lock:
            self._counts[(name, "" if status is None else str(status))] += amount

    def value(self, name: str, *, status: int | None = None) -> float:
        """Current value of a counter."""
        with self._lock:
            return self._counts.get((name, "" if status is None else str(status)), 0.0)

    def observe_latency(self, seconds: float) -> None:
        """Record one ingest request's handling time."""
        with self._lock:
            self._buckets[bisect.bisect_left(LATENCY_BUCKETS, seconds)] += 1
            self._latency_sum += seconds
            self._latency_count += 1

    def render(self) -> str:
        """The Prometheus text exposition (version 0.0.4)."""
        lines: list[str] = []
        with self._lock:
            counts = dict(self._counts)
            buckets = list(self._buckets)
            total, count = self._latency_sum, self._latency_count
        for name, help_text in _COUNTERS.items():
            metric = f"collector_{name}_total"
            lines.append(f"# HELP {metric} {help_text}")
            lines.append(f"# TYPE {metric} counter")
            labelled = sorted((k[1], v) for k, v in counts.items() if k[0] == name and k[1])
            for status, value in labelled:
                lines.append(f'{metric}{{status="{status}"}} {value:g}')
            if not labelled:
                lines.append(f"{metric} {counts.get((name, ''), 0.0):g}")
        metric = "collector_ingest_latency_seconds"
        lines.append(f"# HELP {metric} Time to handle an ingest request.")
        lines.append(f"# TYPE {metric} histogram")
        cumulative = 0
        for bound, n in zip(LATENCY_BUCKETS, buckets, strict=False):
            cumulative += n
            lines.append(f'{metric}_bucket{{le="{bound:g}"}} {cumulative}')
        lines.append(f'{metric}_bucket{{le="+Inf"}} {count}')
        lines.append(f"{metric}_sum {total:.6f}")
        lines.append(f"{metric}_count {count}")
        return "\n".join(lines) + "\n"
