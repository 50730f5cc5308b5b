"""What an answer does: applies the response policy's action to the store (ack, drop), the
schedule (backoff, pause, batch size) and the saved upload status.

The uploader hands every answer here; :mod:`telemetry._delivery._policy` decides, this module
carries the decision out and words the status line ``telemetry status`` shows.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from telemetry._delivery._policy import (
    SENT_EVENTS,
    Action,
    Backoff,
    Deliver,
    Drop,
    Pause,
    Shrink,
    UploadPolicy,
    decide,
    decide_report,
)
from telemetry._delivery._schedule import Schedule
from telemetry._delivery._status import StatusWriter
from telemetry._store import EventStore, StoredEvent, StoredReport

if TYPE_CHECKING:
    from telemetry.transport import Response

log = logging.getLogger("telemetry.uploader")


class Outcomes:
    """Carries out the policy's actions for one uploader.

    ``events_allowed``: whether events may be sent now (after an opt-out during a request,
    a delivered batch leaves no status line behind).
    """

    def __init__(
        self,
        store: EventStore,
        schedule: Schedule,
        status: StatusWriter,
        policy: UploadPolicy,
        events_allowed: Callable[[], bool],
    ) -> None:
        self._store = store
        self._schedule = schedule
        self._status = status
        self._policy = policy
        self._events_allowed = events_allowed

    def batch(self, batch: Sequence[StoredEvent], response: Response, events_json: str) -> str:
        """Decide on the answer to ``batch`` and apply it; returns the cycle's outcome."""
        now = datetime.fromtimestamp(self._schedule.clock.time(), UTC)
        action = decide(
            response.status, response.headers, response.body, len(batch), self._policy, now=now
        )
        if action.counter is not None:
            self._store.increment(action.counter)
        return self._apply(batch, response.status, action, events_json)

    def _apply(
        self, batch: Sequence[StoredEvent], status: int, action: Action, events_json: str
    ) -> str:
        ids = [e.id for e in batch]
        if isinstance(action, Deliver):
            import gzip  # loaded with the first delivered batch

            sent_log = gzip.compress(f"[{events_json}]".encode(), compresslevel=1)
            removed = self._store.ack(ids, status, sent_log, counter=SENT_EVENTS)
            self._schedule.succeeded(self._policy.after_success_delay)
            if removed == 0 and not self._events_allowed():
                return "sent"  # opted out meanwhile: its erase keeps no trace of this batch
            self.save(f"{status}: {len(ids)} events delivered", status, success=True)
            log.debug("uploaded %d events (%d removed)", len(ids), removed)
            return "sent"
        if isinstance(action, Drop):
            return self._drop(ids, status, action)
        if isinstance(action, Shrink):
            self._schedule.set_batch_limit(action.batch_limit)
            self.save(f"413: batch halved to {action.batch_limit} events", status)
            return "too-large"
        if isinstance(action, Pause):
            if status == 429:
                outcome = f"429: throttled, waiting {action.seconds:.0f} s"
            else:
                outcome = (
                    f"{status}: endpoint refused the project or URL; paused {action.seconds:.0f} s"
                )
            return self.pause(action.seconds, outcome, status)
        assert isinstance(action, Backoff)
        return self.retry_later(f"{status}: server error", status)

    def _drop(self, ids: list[int], status: int, action: Drop) -> str:
        """Drop what ``action`` names; what is left of the batch goes again at once."""
        if action.batch_limit is not None:
            self._schedule.set_batch_limit(action.batch_limit)
        else:
            self._schedule.after(0.0)
        if action.indexes is None:
            self._store.drop(ids, action.reason)
        else:
            self._store.drop([ids[i] for i in sorted(action.indexes)], action.reason)
        if status == 413:
            outcome = "413: single event too large, dropped"
        elif status != 400:
            outcome = f"{status}: batch dropped"
        elif action.indexes is None:
            outcome = f"400: batch of {len(ids)} rejected as a whole, dropped"
        else:
            bad = len(action.indexes)
            outcome = f"400: {bad} invalid events dropped, {len(ids) - bad} resent"
        self.save(outcome, status)
        return "too-large" if status == 413 else "rejected"

    def report(self, report: StoredReport, response: Response, event_json: str) -> str:
        """Decide on the answer to one error report's envelope and apply it."""
        now = datetime.fromtimestamp(self._schedule.clock.time(), UTC)
        action = decide_report(response.status, response.headers, self._policy, now=now)
        status = response.status
        if action.counter is not None:
            self._store.increment(action.counter)
        if isinstance(action, Deliver):
            self._store.report_delivered(report, status, event_json)
            self._schedule.report_delivered()
            self._schedule.succeeded(self._policy.after_success_delay)
            self.save(f"{status}: error report delivered", status, success=True)
            return "sent"
        if isinstance(action, Drop):
            self._store.drop_report(report, action.reason)
            self._schedule.after(0.0)
            self.save(f"{status}: error report refused, dropped", status)
            return "rejected"
        if isinstance(action, Pause):
            return self.pause(action.seconds, f"{status}: error reports paused", status)
        # Retried with the reports' own backoff: events go on meanwhile.
        self._schedule.report_failed()
        self._schedule.after(0.0)
        self.save(f"{status}: server error on an error report; retried later", status)
        return "report-retry"

    def deletion(self, status: int, action: Action) -> str:
        """Apply the action for a deletion request's answer (the queue already forgot a
        delivered or refused request)."""
        if isinstance(action, Deliver):
            self._schedule.succeeded(0.0)
            self.save(f"{status}: deletion request delivered", status, success=True, deletion=True)
            return "deleted"
        if isinstance(action, Drop):
            self.save(f"{status}: deletion request refused", status)
            return "rejected"
        if isinstance(action, Pause):
            if status == 429:
                outcome = f"429: deletion request throttled, {action.seconds:.0f} s"
            else:
                outcome = f"{status}: the endpoint refused the deletion request; paused"
            return self.pause(action.seconds, outcome, status)
        return self.retry_later(f"{status}: deletion request failed", status)

    def retry_later(self, outcome: str, status: int | None) -> str:
        """Back off after a failure (no answer, or a server error)."""
        delay = self._schedule.failed()
        self.save(f"{outcome}; retry in {delay:.1f} s", status, delay=delay)
        return "retry"

    def pause(self, seconds: float, outcome: str, status: int) -> str:
        """Send nothing for ``seconds``."""
        self._schedule.pause(seconds)
        self.save(outcome, status, delay=seconds)
        return "paused"

    def save(
        self,
        outcome: str,
        status: int | None,
        *,
        success: bool = False,
        deletion: bool = False,
        delay: float = 0.0,
        changed_only: bool = False,
    ) -> None:
        """Save the status line (with the current failure count)."""
        self._status.save(
            outcome,
            status,
            failures=self._schedule.failures,
            success=success,
            deletion=deletion,
            delay=delay,
            changed_only=changed_only,
        )
