"""The background uploader: sends queued events in batches and applies the response policy.

One daemon thread per client (``telemetry-uploader``). It sends:

* on start-up, everything already on disk (a replay after a quit, crash or outage);
* when a full batch waits (``max_batch_events`` or ``max_batch_bytes``);
* ``flush_interval`` seconds after the oldest waiting event was recorded;
* when connectivity returns (backoff reset), on :meth:`Uploader.flush` (backoff skipped) and
  on :meth:`Uploader.stop`, which sends until shortly before its deadline (default 2 s),
  then abandons the request in flight; unsent events stay on disk.

After a success the next batch follows ``after_success_delay`` later while a full batch, or
an event older than ``flush_interval``, waits. With nothing to send the thread sleeps on one
timer (``idle_check_interval``) that notices events written by other processes. Offline, it
checks the network every ``offline_check_interval`` seconds and sends nothing.

Only one uploader per data dir sends at a time, across processes, through a lease in the
store (taken before the batch is read, given up when the queue is empty or the thread ends).
Responses (collector_reliability.md D3):

========================  ==========================================================
2xx                       delete the batch (and keep it in the sent-batch ring buffer)
400                       drop the events the body names, retry the rest at once; a
                          batch rejected as a whole is dropped; all counted
413                       halve the batch (for the session); a single-event 413 drops
                          that event, counted, and restores the configured batch size
429                       keep; wait ``Retry-After`` or 30 s (at most 1 h)
401, 403, 404, 405, 410   keep; pause 1 h (configuration problem)
other 4xx                 drop and count
408, 5xx, network error   keep; exponential backoff with full jitter, 5 s to 10 min,
                          reset when connectivity returns
========================  ==========================================================

At most 15 requests per minute; connect timeout 10 s, total 30 s per request (enforced by
the caller's clock, so neither a silent nor a trickling server can hold the thread longer).
Every outcome is counted (``upload_*`` counters) and saved under the ``upload`` state key
(last result, next attempt, connectivity), which ``telemetry status`` shows.
"""

from __future__ import annotations

import collections
import gzip
import json
import logging
import random
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final

import httpx

from telemetry._amplitude import rejected_indexes
from telemetry._backoff import backoff_delay, parse_retry_after
from telemetry._store import EventStore, StoredEvent
from telemetry._transport import NetworkError, Response, Transport
from telemetry.connectivity import Connectivity
from telemetry.consent import DELETION_KEY
from telemetry.events import MAX_EVENT_BYTES

log = logging.getLogger("telemetry.uploader")

STATE_KEY: Final = "upload"
SENT_EVENTS: Final = "sent_events"
DROPPED_REJECTED_400: Final = "dropped_rejected_400"
DROPPED_REJECTED_4XX: Final = "dropped_rejected_4xx"
DROPPED_OVERSIZE: Final = "dropped_oversize"
DELETION_ATTEMPTS: Final = "deletion_request_attempts"
DELETION_SENT: Final = "deletion_requests_sent"
DELETION_REFUSED: Final = "deletion_requests_refused"


@dataclass(frozen=True, slots=True)
class UploadPolicy:
    """Batch limits, timeouts and retry timing of the uploader."""

    max_batch_events: int = 500
    max_batch_bytes: int = 512 * 1024
    flush_interval: float = 10.0
    connect_timeout: float = 10.0
    total_timeout: float = 30.0
    backoff_initial: float = 5.0
    backoff_cap: float = 600.0
    max_requests_per_minute: int = 15
    retry_after_default: float = 30.0
    retry_after_max: float = 3600.0
    config_error_pause: float = 3600.0
    lease_ttl: float = 60.0
    idle_check_interval: float = 60.0
    offline_check_interval: float = 5.0
    after_success_delay: float = 0.1
    min_id_length: int = 5


class Uploader:
    """Delivers the store's queue to ``url`` on a background thread.

    Args:
        store: the client's event store.
        url: the full upload URL (``.../amplitude/2/httpapi``).
        api_key: sent as ``api_key`` (the project name).
        policy: limits and timings.
        transport: an httpx transport (tests); default: the network.
        connectivity: the online/offline state; default: a detector for ``url``.
        deletion_url: where deletion requests go (``None``: the endpoint has none, and queued
            requests wait).
        on_status: called after each change of the persisted upload status.
    """

    def __init__(
        self,
        store: EventStore,
        *,
        url: str,
        api_key: str,
        policy: UploadPolicy | None = None,
        transport: httpx.BaseTransport | None = None,
        connectivity: Connectivity | None = None,
        clock: Callable[[], float] = time.monotonic,
        rand: Callable[[float, float], float] = random.uniform,
        deletion_url: str | None = None,
        on_status: Callable[[], None] | None = None,
    ) -> None:
        self.store = store
        self.url = url
        self.deletion_url = deletion_url
        self._on_status = on_status
        self._events_allowed = True
        self.policy = policy or UploadPolicy()
        self.connectivity = connectivity or Connectivity(url)
        self.connectivity.add_listener(self._on_online)
        self._api_key_json = json.dumps(api_key)
        envelope = self._body("")
        # The body may hold the events, one comma between two of them, and the envelope.
        self._events_budget = max(
            1, self.policy.max_batch_bytes - len(envelope) - (self.policy.max_batch_events - 1)
        )
        self._transport = Transport(
            url,
            connect_timeout=self.policy.connect_timeout,
            total_timeout=self.policy.total_timeout,
            transport=transport,
        )
        self._clock = clock
        self._rand = rand
        self._owner = uuid.uuid4().hex
        self._lock = threading.Lock()
        self._cycle_done = threading.Condition(self._lock)
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._stop_deadline = 0.0  # time.monotonic() until which stop() lets uploads finish
        self._thread: threading.Thread | None = None
        self._scheduled = self._clock()  # replay what is on disk at start
        self._idle = False  # nothing queued: the next append schedules a flush_interval later
        # Bumped by each append and by each explicit ask (wake, flush, online, deletion): a
        # cycle goes idle only if nothing it could have missed came meanwhile (no lost wake-up).
        self._appends = 0
        self._asks = 0
        self._batch_mark = 0  # _appends when the current batch began filling (since idle)
        self._failures = 0
        self._network_failing = False  # the last request got no answer
        self._backoff_until = 0.0  # skipped by flush() and by the last attempts of stop()
        self._paused_until = 0.0  # 429 and configuration pauses; never skipped
        self._flush_requested = False
        self._prompt = True  # until the queue is empty, send without waiting for a full batch
        self._batch_limit = self.policy.max_batch_events
        self._requests: collections.deque[float] = collections.deque()
        self._lease_held = False
        self._lease_fresh_until = 0.0  # time.monotonic()
        self._last_outcome: str | None = None
        self._cycles = 0

    # ------------------------------------------------------------------ public control

    def start(self) -> None:
        """Start the thread (idempotent)."""
        if self._thread is None:
            self._stopping = stopping = threading.Event()
            self._thread = threading.Thread(
                target=self._run, args=(stopping,), name="telemetry-uploader", daemon=True
            )
            self._thread.start()

    def stop(self, timeout: float = 2.0) -> bool:
        """Stop within ``timeout`` s; True if the thread ended.

        What is queued is sent until shortly before the deadline (not while offline or paused,
        backoff skipped); then the request in flight is abandoned. Unsent events stay on disk
        for the next launch.
        """
        reserve = min(0.25, max(0.0, timeout) / 4)
        graceful = max(0.0, timeout - reserve)
        self._stop_deadline = time.monotonic() + graceful
        self._stopping.set()
        self._wake.set()
        thread, self._thread = self._thread, None
        if thread is None:
            self._release_lease()
            return True
        thread.join(graceful)
        if thread.is_alive():
            self._transport.cancel()
            thread.join(reserve / 2)
        if thread.is_alive():  # stuck outside the network: let the next uploader send
            self.store.release_lease(self._owner)
            return False
        return True

    def notify_appended(self) -> None:
        """Called by the client after each append (cheap: wakes the thread only on change)."""
        with self._lock:
            self._appends += 1
            wake = False
            if self._idle:
                self._idle = False
                self._scheduled = min(self._scheduled, self._clock() + self.policy.flush_interval)
                wake = True
            if self._appends - self._batch_mark >= self._batch_limit:
                self._scheduled = self._clock()
                self._batch_mark = self._appends
                wake = True
        if wake:
            self._wake.set()

    def wake(self) -> None:
        """Attempt an upload now (backoff and pauses still apply)."""
        with self._lock:
            self._asks += 1
            self._idle = False
            self._prompt = True
            self._scheduled = self._clock()
        self._wake.set()

    def set_online(self, online: bool | None) -> None:
        """The connectivity hook: the app reports online/offline (``None``: auto-detect).

        Going online (or reporting online after uploads failed) resets the backoff and
        starts an upload at once.
        """
        self.connectivity.set_online(online)
        self._wake.set()

    def cancel(self) -> None:
        """Abort the event batch in flight (its events stay queued). A deletion request in
        flight goes on: cancelling it would only make it be sent again."""
        self._transport.cancel(self._transport.url)

    def set_events_allowed(self, allowed: bool) -> None:
        """Whether queued events may be sent (consent); deletion requests are sent either way."""
        self._events_allowed = allowed
        if allowed:
            self.wake()

    @property
    def events_allowed(self) -> bool:
        """Whether queued events may be sent now."""
        return self._events_allowed

    def send_deletions_now(self) -> None:
        """Send queued deletion requests at once: cancels the request in flight and resets the
        backoff (an opt-out must not wait behind an event batch's retry timer)."""
        self.cancel()
        self._on_online()

    def flush(self, timeout: float = 10.0) -> bool:
        """Send now, skipping backoff (not 429 or auth pauses); True when the queue is empty
        within ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        with self._lock:
            self._asks += 1
            self._flush_requested = True
            self._prompt = True
            self._idle = False
            self._scheduled = self._clock()
        self._wake.set()
        while True:
            if self.store.stats().events == 0:
                return True
            remaining = deadline - time.monotonic()
            if remaining <= 0 or self._thread is None or not self._events_allowed:
                return self.store.stats().events == 0
            with self._cycle_done:
                self._cycle_done.wait(min(remaining, 0.5))

    def status(self) -> dict[str, Any]:
        """The persisted upload status (last result, next attempt...)."""
        result: dict[str, Any] = self.store.get_state(STATE_KEY, {})
        return result

    # ------------------------------------------------------------------ the loop

    def _run(self, stopping: threading.Event) -> None:
        try:
            while not stopping.is_set():
                wait, watch = self._wait_time()
                if wait > 0:
                    self._wake.wait(
                        min(wait, self.policy.offline_check_interval) if watch else wait
                    )
                    self._wake.clear()
                    if watch and not stopping.is_set():
                        self.connectivity.is_online()  # an interface coming up resets the backoff
                    continue
                self._cycle(closing=False)
            while time.monotonic() < self._stop_deadline:
                if self._cycle(closing=True) not in ("sent", "rejected", "too-large", "deleted"):
                    break
        finally:
            self._transport.close()
            self._release_lease()
            with self._cycle_done:
                self._cycle_done.notify_all()

    def _cycle(self, *, closing: bool) -> str:
        try:
            outcome = self.run_once(closing=closing)
        except Exception:  # the uploader must never die
            log.exception("telemetry upload cycle failed")
            outcome = "error"
            with self._lock:
                self._scheduled = self._clock() + self.policy.flush_interval
        with self._cycle_done:
            self._cycles += 1
            self._cycle_done.notify_all()
        return outcome

    def _wait_time(self) -> tuple[float, bool]:
        """Seconds until the next attempt is due, and whether to watch the network meanwhile."""
        with self._lock:
            now = self._clock()
            start = self._scheduled
            backing_off = not self._flush_requested and self._backoff_until > now
            if backing_off:
                start = max(start, self._backoff_until)
            start = max(start, self._paused_until, self._rate_free_at(now))
            watch = backing_off and self._network_failing
            return max(0.0, start - now), watch

    def _rate_free_at(self, now: float) -> float:
        while self._requests and self._requests[0] <= now - 60.0:
            self._requests.popleft()
        if len(self._requests) < self.policy.max_requests_per_minute:
            return 0.0
        return self._requests[0] + 60.0

    def run_once(self, *, closing: bool = False) -> str:
        """One upload attempt unless paused, backing off or rate-limited; returns what
        happened (for tests and logs). ``closing``: skip the backoff, as ``flush()`` does."""
        now = self._clock()
        with self._lock:
            if now < self._paused_until:
                self._scheduled = self._paused_until
                return "paused"
            if not (self._flush_requested or closing) and now < self._backoff_until:
                self._scheduled = self._backoff_until
                return "backing-off"
            free = self._rate_free_at(now)
            if free > now:
                self._scheduled = free
                return "rate-limited"
            limit = self._batch_limit
            prompt = self._prompt or self._flush_requested or closing
            seen = (self._appends, self._asks)
        deletions = self.store.get_state(DELETION_KEY) or []
        if deletions and self.deletion_url is not None:
            if not self.connectivity.is_online():
                with self._lock:
                    self._scheduled = now + self.policy.offline_check_interval
                return "offline"
            refused = self._take_lease(now)
            if refused is not None:
                return refused
            # Read again under the lease: another process of the app may have delivered it.
            deletions = self.store.get_state(DELETION_KEY) or []
            if deletions:
                return self._send_deletion(deletions[0])
        if not self._events_allowed:  # appends cannot be sent: only asks count
            return self._go_idle(now, seen, appends_matter=False)
        # Still ours (renewed at each send, expiring lease_ttl later; half of it as margin)?
        under_lease = self._lease_held and time.monotonic() < self._lease_fresh_until
        waiting = self.store.pending(limit, self._events_budget)
        if not waiting:
            return self._go_idle(now, seen)
        if not prompt and not self._is_full(waiting, limit):
            # Not a full batch: send once the oldest event has waited flush_interval.
            age = max(0.0, time.time() - waiting[0].time / 1000)
            if age < self.policy.flush_interval:
                with self._lock:
                    self._scheduled = now + self.policy.flush_interval - age
                return "waiting"
        if not self.connectivity.is_online():
            with self._lock:
                self._scheduled = now + self.policy.offline_check_interval
            self._save_status("offline: waiting for the network", None, changed_only=True)
            return "offline"
        refused = self._take_lease(now)
        if refused is not None:
            return refused
        # Only a batch read under the lease is sent: what another uploader sent is gone.
        batch = waiting if under_lease else self.store.pending(limit, self._events_budget)
        if not batch:
            return self._go_idle(now, seen)
        return self._send(batch)

    def _take_lease(self, now: float) -> str | None:
        """Take (or renew) the upload lease: one uploader per data dir sends at a time.
        Returns the outcome when another process holds it."""
        if not self.store.acquire_lease(self._owner, int(self.policy.lease_ttl * 1000)):
            with self._lock:
                self._scheduled = now + self.policy.flush_interval
            self._save_status("another process is uploading", None, changed_only=True)
            return "lease-held-elsewhere"
        self._lease_held = True
        self._lease_fresh_until = time.monotonic() + self.policy.lease_ttl / 2
        return None

    def _is_full(self, batch: Sequence[StoredEvent], limit: int) -> bool:
        size = sum(e.size for e in batch)
        return len(batch) >= limit or size + MAX_EVENT_BYTES > self._events_budget

    def _go_idle(self, now: float, seen: tuple[int, int], *, appends_matter: bool = True) -> str:
        """Sleep until the idle check, unless something came since the cycle read ``seen``
        (appends, asks)."""
        with self._lock:
            asked = self._asks != seen[1]
            if not asked:  # what was asked before this cycle is done: the queue was empty
                self._flush_requested = False
                self._prompt = False
            if asked or (appends_matter and self._appends != seen[0]):
                # Something came since the cycle began: look again at once. New events then
                # wait the flush interval as usual (not prompt), unless an ask came too.
                self._scheduled = now
                return "asked-again"
            self._idle = True
            self._scheduled = now + self.policy.idle_check_interval
            self._batch_mark = self._appends
        self._release_lease()
        return "idle"

    def _release_lease(self) -> None:
        if self._lease_held:
            self._lease_held = False
            self.store.release_lease(self._owner)

    # ------------------------------------------------------------------ one request

    def _body(self, events_json: str) -> str:
        return (
            f'{{"api_key":{self._api_key_json},"events":[{events_json}],'
            f'"options":{{"min_id_length":{self.policy.min_id_length}}}}}'
        )

    def _post(self, body: bytes, *, deletion: bool = False) -> Response | str:
        """One request, within the stop deadline and counted against the per-minute cap.

        Returns the answer, or the outcome (``stopping``, ``retry``) when none came: a
        network failure schedules the backoff. ``deletion``: the plain-JSON deletion request
        to :attr:`deletion_url` instead of a gzip event batch.
        """
        give_up_after = None
        if self._stopping.is_set():
            give_up_after = self._stop_deadline - time.monotonic()
            if give_up_after <= 0:
                return "stopping"
        with self._lock:
            self._requests.append(self._clock())
            if not deletion:
                self._flush_requested = False
        self.store.increment(DELETION_ATTEMPTS if deletion else "upload_requests")
        try:
            response = self._transport.post_gzip(
                body,
                give_up_after=give_up_after,
                url=self.deletion_url if deletion else None,
                gzipped=not deletion,
            )
        except NetworkError as exc:
            if not deletion:
                self.store.increment(f"upload_{exc.kind}")
            if exc.kind != "cancelled":
                self.connectivity.report_upload(False)
                self._network_failing = True
            return self._retry_later(f"deletion request: {exc}" if deletion else str(exc), None)
        self.connectivity.report_upload(True)
        self._network_failing = False
        return response

    def _send(self, batch: Sequence[StoredEvent]) -> str:
        events_json = ",".join(e.json for e in batch)
        body_gzip = gzip.compress(self._body(events_json).encode("utf-8"), compresslevel=6)
        response = self._post(body_gzip)
        if isinstance(response, str):
            return response
        return self._handle(batch, response, events_json)

    def _send_deletion(self, request: dict[str, Any]) -> str:
        """POST one deletion request (only the device id, project and reason)."""
        assert self.deletion_url is not None
        body = json.dumps(
            {
                "project": request.get("project"),
                "device_id": request.get("device_id"),
                "reason": request.get("reason"),
            },
            separators=(",", ":"),
        ).encode()
        response = self._post(body, deletion=True)
        if isinstance(response, str):
            return response
        status = response.status
        if 200 <= status < 300 or status in (400, 422):
            self._forget_deletion(request)
            if 200 <= status < 300:
                self.store.increment(DELETION_SENT)
                with self._lock:
                    self._failures = 0
                    self._backoff_until = 0.0
                    self._scheduled = self._clock()
                self._save_status(f"{status}: deletion request delivered", status, success=True)
                return "deleted"
            self.store.increment(DELETION_REFUSED)
            log.error("the collector refused a deletion request (%d): %r", status, response.body)
            self._save_status(f"{status}: deletion request refused", status)
            return "rejected"
        if status == 429:
            return self._pause_for_429(response, "429: deletion request throttled, {wait:.0f} s")
        if status in (401, 403, 404, 405, 410):
            return self._pause(
                self.policy.config_error_pause,
                f"{status}: the endpoint refused the deletion request; paused",
                status,
            )
        return self._retry_later(f"{status}: deletion request failed", status)

    def _forget_deletion(self, request: dict[str, Any]) -> None:
        device = request.get("device_id")

        def without_it(pending: Any) -> list[Any] | None:
            # One transaction: an opt-out queueing another request meanwhile is kept.
            kept = [
                r for r in pending or [] if isinstance(r, dict) and r.get("device_id") != device
            ]
            return kept or None

        self.store.update_state(DELETION_KEY, without_it)

    def _handle(self, batch: Sequence[StoredEvent], response: Response, events_json: str) -> str:
        status = response.status
        ids = [e.id for e in batch]
        if 200 <= status < 300:
            self.store.increment("upload_2xx")
            sent_log = gzip.compress(f"[{events_json}]".encode(), compresslevel=1)
            removed = self.store.ack(ids, status, sent_log, counter=SENT_EVENTS)
            with self._lock:
                self._failures = 0
                self._backoff_until = 0.0
                self._scheduled = self._clock() + self.policy.after_success_delay
            if removed == 0 and not self._events_allowed:
                return "sent"  # opted out meanwhile: its erase keeps no trace of this batch
            self._save_status(f"{status}: {len(ids)} events delivered", status, success=True)
            log.debug("uploaded %d events (%d removed)", len(ids), removed)
            return "sent"
        if status == 400:
            self.store.increment("upload_400")
            bad = rejected_indexes(response.body, len(batch))
            if not bad:
                self.store.drop(ids, DROPPED_REJECTED_400)
                outcome = f"400: batch of {len(ids)} rejected as a whole, dropped"
            else:
                self.store.drop([ids[i] for i in sorted(bad)], DROPPED_REJECTED_400)
                outcome = f"400: {len(bad)} invalid events dropped, {len(ids) - len(bad)} resent"
            with self._lock:
                self._scheduled = self._clock()
            self._save_status(outcome, status)
            return "rejected"
        if status == 413:
            self.store.increment("upload_413")
            with self._lock:
                if len(batch) == 1:
                    # The event alone is too large: the batch size was not the problem.
                    self._batch_limit = self.policy.max_batch_events
                else:
                    self._batch_limit = max(1, len(batch) // 2)
                limit = self._batch_limit
                self._scheduled = self._clock()
            if len(batch) == 1:
                self.store.drop(ids, DROPPED_OVERSIZE)
                outcome = "413: single event too large, dropped"
            else:
                outcome = f"413: batch halved to {limit} events"
            self._save_status(outcome, status)
            return "too-large"
        if status == 429:
            self.store.increment("upload_429")
            return self._pause_for_429(response, "429: throttled, waiting {wait:.0f} s")
        if status in (401, 403, 404, 405, 410):
            self.store.increment(f"upload_{status}")
            return self._pause(
                self.policy.config_error_pause,
                f"{status}: endpoint refused the project or URL; paused"
                f" {self.policy.config_error_pause:.0f} s",
                status,
            )
        if status == 408 or status >= 500:
            self.store.increment("upload_5xx" if status >= 500 else "upload_408")
            return self._retry_later(f"{status}: server error", status)
        self.store.increment("upload_other_4xx")
        self.store.drop(ids, DROPPED_REJECTED_4XX)
        with self._lock:
            self._scheduled = self._clock()
        self._save_status(f"{status}: batch dropped", status)
        return "rejected"

    def _retry_later(self, outcome: str, status: int | None) -> str:
        with self._lock:
            self._failures += 1
            delay = backoff_delay(
                self._failures,
                initial=self.policy.backoff_initial,
                cap=self.policy.backoff_cap,
                rand=self._rand,
            )
            self._backoff_until = self._clock() + delay
            self._scheduled = self._backoff_until
        self._save_status(f"{outcome}; retry in {delay:.1f} s", status, delay=delay)
        return "retry"

    def _pause_for_429(self, response: Response, outcome: str) -> str:
        """Wait as long as ``Retry-After`` says (bounded); ``outcome`` has a ``{wait}`` field."""
        wait = parse_retry_after(
            response.retry_after,
            default=self.policy.retry_after_default,
            maximum=self.policy.retry_after_max,
        )
        return self._pause(wait, outcome.format(wait=wait), response.status)

    def _pause(self, seconds: float, outcome: str, status: int) -> str:
        with self._lock:
            self._paused_until = self._clock() + seconds
            self._scheduled = self._paused_until
        self._save_status(outcome, status, delay=seconds)
        return "paused"

    def _on_online(self) -> None:
        with self._lock:
            self._asks += 1
            self._failures = 0
            self._backoff_until = 0.0
            self._idle = False
            self._prompt = True
            self._scheduled = self._clock()
        self._wake.set()

    def _save_status(
        self,
        outcome: str,
        status: int | None,
        *,
        success: bool = False,
        delay: float = 0.0,
        changed_only: bool = False,
    ) -> None:
        if changed_only and outcome == self._last_outcome:
            return
        self._last_outcome = outcome
        now_ms = time.time_ns() // 1_000_000
        state: dict[str, Any] = dict(self.store.get_state(STATE_KEY, {}))
        state.update(
            last_attempt_at=now_ms,
            last_result=outcome,
            last_status=status,
            failures=self._failures,
            connectivity=self.connectivity.state,
            next_attempt_at=now_ms + int(delay * 1000) if delay else None,
        )
        if success:
            state["last_success_at"] = now_ms
        self.store.set_state(STATE_KEY, state)
        if self._on_status is not None:
            try:
                self._on_status()
            except Exception:
                log.exception("upload status listener failed")
