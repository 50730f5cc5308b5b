"""The collector's counters and ingest latency histogram, in Prometheus text format
(``/metrics``), summed over the worker processes.

Every counter (and every status of a counter labelled by status) has a fixed slot in a row of
64-bit floats; so have the histogram's buckets and sum. Each worker process writes only its own
row (a replaced worker continues the row of the one it replaces, so counters never go back) and
reads every row, so whichever worker answers ``/metrics`` shows the totals. With ``--workers``
the rows live in :class:`~telemetry.collector._shared_memory.SharedMemory`; one process has one
row of its own. Reading another worker's row takes no lock: each slot is one aligned 8-byte
word, and the histogram's count is the sum of its buckets, so a scrape is never inconsistent
within a histogram (its sum may differ by the observations being written).
"""

from __future__ import annotations

import bisect
import threading
from typing import Final, cast

from telemetry.collector._shared_memory import SharedMemory, local_region

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


#: Counters labelled by ``status``: the HTTP status answered or received (0: no answer).
_LABELLED: Final = frozenset(
    {"requests", "forward_requests", "report_requests", "report_forward_requests"}
)
#: Statuses with a slot of their own: 0 and every three-digit HTTP status (any other status,
#: which HTTP does not allow, is counted as ``status="other"``).
_STATUSES: Final = 1000
_OTHER: Final = _STATUSES


def _layout() -> tuple[dict[str, int], int, int]:
    """Each counter's first slot (its unlabelled value; a labelled counter's statuses follow),
    the histogram's first slot (the buckets, ``+Inf`` last, then the sum), and the row size."""
    offsets: dict[str, int] = {}
    slot = 0
    for name in _COUNTERS:
        offsets[name] = slot
        slot += 1 + (_STATUSES + 1 if name in _LABELLED else 0)
    histogram = slot
    return offsets, histogram, histogram + len(LATENCY_BUCKETS) + 2


_OFFSETS, _HISTOGRAM, _ROW_SLOTS = _layout()
_LATENCY_SUM: Final = _HISTOGRAM + len(LATENCY_BUCKETS) + 1
#: Statuses in the order they are rendered (as text, like the label values).
_STATUS_ORDER: Final = sorted(range(_STATUSES + 1), key=lambda s: str(s) if s < _OTHER else "other")


def _number(value: float) -> str:
    """A counter's value: an integer in full (``:g`` would write 1234567 as 1.23457e+06)."""
    return str(int(value)) if value.is_integer() else f"{value:g}"


class Metrics:
    """Thread-safe counters (optionally labelled by ``status``) and one latency histogram.

    ``shared``: the rows are the region ``metrics`` of that shared memory, ``workers`` rows of
    which this process writes row ``worker``; without it, one row of this process's own.
    :meth:`value` and :meth:`render` are totals over all rows.
    """

    def __init__(
        self, shared: SharedMemory | None = None, *, worker: int = 0, workers: int = 1
    ) -> None:
        if not 0 <= worker < workers:
            raise ValueError(f"worker {worker} out of range 0..{workers - 1}")
        size = workers * _ROW_SLOTS * 8
        region = local_region(size) if shared is None else shared.region("metrics", size)
        self._lock = threading.Lock()  # only this process writes its row
        self._all = region.memory.cast("d")
        self._row = self._all[worker * _ROW_SLOTS : (worker + 1) * _ROW_SLOTS]
        self._workers = workers

    @staticmethod
    def _slot(name: str, status: int | None) -> int:
        if status is None:
            return _OFFSETS[name]
        if name not in _LABELLED:
            raise KeyError(f"{name} has no status label")
        return _OFFSETS[name] + 1 + (status if 0 <= status < _STATUSES else _OTHER)

    def inc(self, name: str, amount: float = 1, *, status: int | None = None) -> None:
        """Add ``amount`` to counter ``name`` (must be one of the known counters)."""
        slot = self._slot(name, status)
        with self._lock:
            self._row[slot] += amount

    def value(self, name: str, *, status: int | None = None) -> float:
        """Current value of a counter, summed over the workers."""
        slot = self._slot(name, status)
        return float(sum(self._all[slot::_ROW_SLOTS]))

    def observe_latency(self, seconds: float) -> None:
        """Record one ingest request's handling time."""
        bucket = _HISTOGRAM + bisect.bisect_left(LATENCY_BUCKETS, seconds)
        with self._lock:
            self._row[bucket] += 1
            self._row[_LATENCY_SUM] += seconds

    def _totals(self) -> list[float]:
        """Every slot summed over the rows."""
        values = cast(list[float], self._all.tolist())  # a "d" view: floats
        if self._workers == 1:
            return values
        return [sum(values[slot::_ROW_SLOTS]) for slot in range(_ROW_SLOTS)]

    def render(self) -> str:
        """The Prometheus text exposition (version 0.0.4)."""
        totals = self._totals()
        lines: list[str] = []
        for name, help_text in _COUNTERS.items():
            metric = f"collector_{name}_total"
            lines.append(f"# HELP {metric} {help_text}")
            lines.append(f"# TYPE {metric} counter")
            first = _OFFSETS[name]
            labelled = []
            if name in _LABELLED:
                labelled = [(s, totals[first + 1 + s]) for s in _STATUS_ORDER]
                labelled = [(s, value) for s, value in labelled if value]
            for status, value in labelled:
                label = "other" if status == _OTHER else str(status)
                lines.append(f'{metric}{{status="{label}"}} {_number(value)}')
            if not labelled:
                lines.append(f"{metric} {_number(totals[first])}")
        metric = "collector_ingest_latency_seconds"
        lines.append(f"# HELP {metric} Time to handle an ingest request.")
        lines.append(f"# TYPE {metric} histogram")
        cumulative = 0
        for index, bound in enumerate(LATENCY_BUCKETS):
            cumulative += int(totals[_HISTOGRAM + index])
            lines.append(f'{metric}_bucket{{le="{bound:g}"}} {cumulative}')
        count = cumulative + int(totals[_HISTOGRAM + len(LATENCY_BUCKETS)])
        lines.append(f'{metric}_bucket{{le="+Inf"}} {count}')
        lines.append(f"{metric}_sum {totals[_LATENCY_SUM]:.6f}")
        lines.append(f"{metric}_count {count}")
        return "\n".join(lines) + "\n"
