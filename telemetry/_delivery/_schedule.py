"""When the uploader's next attempt is due: flush interval, backoff, pauses, the per-minute
cap, the idle timer, and the bookkeeping that keeps a wake-up from being lost.

The per-minute cap governs background sending only: an explicit ``flush(timeout)`` drains
(``drain_until``) as fast as the server accepts, still held back by 429/``Retry-After`` and
configuration pauses and by the backoff after a failure during the drain.

All of it is guarded by one lock and read on :class:`~telemetry._delivery._clock.Clock` time;
the uploader thread and the app's threads (appends, flush, the connectivity hook) share it.
"""

from __future__ import annotations

import collections
import threading
from collections.abc import Callable

from telemetry._delivery._backoff import backoff_delay
from telemetry._delivery._clock import Clock
from telemetry._delivery._policy import UploadPolicy

#: The per-minute request cap counts requests in this sliding window (seconds).
_RATE_WINDOW = 60.0


class Schedule:
    """The uploader's timing state.

    ``scheduled`` is when the next attempt is due; backoff (``backoff_until``, skipped by a
    flush or by closing) and pauses (``paused_until``, never skipped) hold it back further.
    ``appends`` and ``asks`` count what came in (events, explicit requests to send): a cycle
    goes idle only if neither moved since it began, so no wake-up is lost.
    """

    def __init__(
        self, policy: UploadPolicy, clock: Clock, rand: Callable[[float, float], float]
    ) -> None:
        self.policy = policy
        self.clock = clock
        self._rand = rand
        self.lock = threading.Lock()
        self.scheduled = clock.monotonic()  # replay what is on disk at start
        self.idle = False  # nothing queued: the next append schedules a flush_interval later
        self.appends = 0
        self.asks = 0
        self.batch_mark = 0  # appends when the current batch began filling (since idle)
        self.failures = 0
        self.network_failing = False  # the last request got no answer
        self.backoff_until = 0.0  # skipped by flush() and by the last attempts of stop()
        self.paused_until = 0.0  # 429 and configuration pauses; never skipped
        self.flush_requested = False
        self.drain_until = 0.0  # an explicit flush: no per-minute cap (nor pacing) until then
        self.report_failures = 0  # error reports have their own backoff: events go meanwhile
        self.reports_not_before = 0.0
        self.prompt = True  # until the queue is empty, send without waiting for a full batch
        self.batch_limit = policy.max_batch_events
        self._requests: collections.deque[float] = collections.deque()

    # ------------------------------------------------------------------ what came in

    def appended(self) -> bool:
        """An event was queued; True when the thread should wake (a change of plan)."""
        with self.lock:
            self.appends += 1
            wake = False
            if self.idle:
                self.idle = False
                now = self.clock.monotonic()
                self.scheduled = min(self.scheduled, now + self.policy.flush_interval)
                wake = True
            if self.appends - self.batch_mark >= self.batch_limit:
                self.scheduled = self.clock.monotonic()
                self.batch_mark = self.appends
                wake = True
            return wake

    def ask(
        self, *, flush: bool = False, reset_backoff: bool = False, drain_for: float = 0.0
    ) -> None:
        """Someone asked to send now: ``flush`` skips the backoff until the next event batch
        goes out; ``reset_backoff`` forgets the failures (the network came back);
        ``drain_for`` lifts the per-minute cap for that many seconds or until the queue is
        empty (an explicit flush drains as fast as the server accepts)."""
        with self.lock:
            self.asks += 1
            if flush:
                self.flush_requested = True
            if drain_for > 0:
                self.drain_until = max(self.drain_until, self.clock.monotonic() + drain_for)
            if reset_backoff:
                self.failures = 0
                self.backoff_until = 0.0
            self.prompt = True
            self.idle = False
            self.scheduled = self.clock.monotonic()

    def end_drain(self) -> None:
        """The flush that asked for a drain saw the queue empty (or gave up): background
        rules (the per-minute cap, pacing) apply again to what comes next."""
        with self.lock:
            self.drain_until = 0.0

    # ------------------------------------------------------------------ the loop's questions

    def wait_time(self) -> tuple[float, bool]:
        """Seconds until the next attempt is due, and whether to watch the network meanwhile."""
        with self.lock:
            now = self.clock.monotonic()
            start = self.scheduled
            backing_off = not self.flush_requested and self.backoff_until > now
            if backing_off:
                start = max(start, self.backoff_until)
            start = max(start, self.paused_until, self._rate_free_at(now))
            watch = backing_off and self.network_failing
            return max(0.0, start - now), watch

    def begin(self, now: float, closing: bool) -> tuple[str | None, int, bool, tuple[int, int]]:
        """At the start of a cycle: why no request may go now (``paused``, ``backing-off``,
        ``rate-limited``; rescheduled) or None, the batch limit, whether to send a partial
        batch at once, and the (appends, asks) seen."""
        with self.lock:
            held_back = self._held_back(now, closing)
            prompt = self.prompt or self.flush_requested or closing
            return held_back, self.batch_limit, prompt, (self.appends, self.asks)

    def _held_back(self, now: float, closing: bool) -> str | None:
        if now < self.paused_until:
            self.scheduled = self.paused_until
            return "paused"
        if not (self.flush_requested or closing) and now < self.backoff_until:
            self.scheduled = self.backoff_until
            return "backing-off"
        free = self._rate_free_at(now)
        if free > now:
            self.scheduled = free
            return "rate-limited"
        return None

    def _rate_free_at(self, now: float) -> float:
        if now < self.drain_until:
            return 0.0
        while self._requests and self._requests[0] <= now - _RATE_WINDOW:
            self._requests.popleft()
        if len(self._requests) < self.policy.max_requests_per_minute:
            return 0.0
        return self._requests[0] + _RATE_WINDOW

    def go_idle(self, now: float, seen: tuple[int, int], *, appends_matter: bool) -> bool:
        """The queue was found empty: sleep until the idle check (True), unless something came
        since the cycle read ``seen``; then look again at once (False)."""
        with self.lock:
            asked = self.asks != seen[1]
            if not asked:  # what was asked before this cycle is done: the queue was empty
                self.flush_requested = False
                self.prompt = False
                self.drain_until = 0.0
            if asked or (appends_matter and self.appends != seen[0]):
                # New events then wait the flush interval as usual (not prompt), unless an
                # ask came too.
                self.scheduled = now
                return False
            self.idle = True
            self.scheduled = now + self.policy.idle_check_interval
            self.batch_mark = self.appends
            return True

    # ------------------------------------------------------------------ what happened

    def at(self, when: float) -> None:
        """Next attempt at ``when`` (clock time)."""
        with self.lock:
            self.scheduled = when

    def after(self, seconds: float) -> None:
        """Next attempt ``seconds`` from now."""
        with self.lock:
            self.scheduled = self.clock.monotonic() + seconds

    def request_sent(self, *, deletion: bool) -> None:
        """A request goes out: counted in the per-minute window; an event batch fulfils the
        flush request (backoff applies again after it)."""
        with self.lock:
            self._requests.append(self.clock.monotonic())
            if not deletion:
                self.flush_requested = False

    def set_batch_limit(self, limit: int) -> None:
        """At most ``limit`` events per batch from now on; the next batch goes at once."""
        with self.lock:
            self.batch_limit = limit
            self.scheduled = self.clock.monotonic()

    def succeeded(self, next_after: float) -> None:
        """A request was delivered: no more backoff; the next one ``next_after`` s later (at
        once while draining)."""
        with self.lock:
            self.failures = 0
            self.backoff_until = 0.0
            now = self.clock.monotonic()
            self.scheduled = now if now < self.drain_until else now + next_after

    def failed(self) -> float:
        """A request failed: back off (full jitter); returns the delay in seconds."""
        with self.lock:
            self.failures += 1
            delay = backoff_delay(
                self.failures,
                initial=self.policy.backoff_initial,
                cap=self.policy.backoff_cap,
                rand=self._rand,
            )
            self.backoff_until = self.clock.monotonic() + delay
            self.scheduled = self.backoff_until
            return delay

    def reports_due(self, now: float) -> bool:
        """Whether an error report may be tried now (its own backoff is over)."""
        with self.lock:
            return now >= self.reports_not_before

    def report_failed(self) -> None:
        """An error report failed (5xx, 408): it waits its own full-jitter backoff; events and
        the shared schedule are not held back."""
        with self.lock:
            self.report_failures += 1
            delay = backoff_delay(
                self.report_failures,
                initial=self.policy.backoff_initial,
                cap=self.policy.backoff_cap,
                rand=self._rand,
            )
            self.reports_not_before = self.clock.monotonic() + delay

    def report_delivered(self) -> None:
        """An error report was delivered: no more report backoff."""
        with self.lock:
            self.report_failures = 0

    def wake_for_reports(self, now: float) -> None:
        """Going idle with an error report waiting for its retry: wake for it, not only at the
        idle check."""
        with self.lock:
            if self.reports_not_before > now:
                self.scheduled = min(self.reports_not_before, now + self.policy.idle_check_interval)

    def pause(self, seconds: float) -> None:
        """Send nothing for ``seconds`` (not skipped by a flush)."""
        with self.lock:
            self.paused_until = self.clock.monotonic() + seconds
            self.scheduled = self.paused_until
