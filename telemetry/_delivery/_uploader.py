"""The background uploader: when to send, the lease, batches, flush and stop.

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
At most 15 requests per minute; connect timeout 10 s, total 30 s per request. What each
answer leads to is the table in :mod:`~telemetry._delivery._policy`, carried out by
:mod:`~telemetry._delivery._outcomes` (counted, and saved as the ``upload`` status row).
Requests go to a :class:`telemetry.transport.Destination`: by default an HTTP transport,
created (and httpx imported) on the uploader's thread when it first sends.
"""

from __future__ import annotations

import logging
import random
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Final

from telemetry._delivery._clock import SYSTEM_CLOCK, Clock
from telemetry._delivery._connectivity import Connectivity
from telemetry._delivery._deletions import DeletionQueue
from telemetry._delivery._envelopes import envelope, report_json
from telemetry._delivery._outcomes import Outcomes
from telemetry._delivery._policy import DELETION_ATTEMPTS, UploadPolicy
from telemetry._delivery._proofs import batch_proofs
from telemetry._delivery._schedule import Schedule
from telemetry._delivery._status import StatusWriter
from telemetry._store import EventStore, StoredEvent
from telemetry.errors import TransportError
from telemetry.events import MAX_EVENT_BYTES
from telemetry.wire import request_body

if TYPE_CHECKING:
    from telemetry.transport import Destination, Response

log = logging.getLogger("telemetry.uploader")

#: Outcomes after which stop() goes on sending: the queue moved, more may follow at once.
_PROGRESS: Final = frozenset({"sent", "rejected", "too-large", "deleted", "report-retry"})


class Uploader:
    """Delivers the store's queue to ``url`` on a background thread.

    Args:
        store: the client's event store.
        url: the full upload URL (``.../amplitude/2/httpapi``).
        api_key: sent as ``api_key`` (the project name).
        policy: limits and timings.
        destination: where requests go (default: an HTTP transport to the network);
            :class:`telemetry.testing.RecordingDestination` keeps them in memory.
        connectivity: the online/offline state; default: a detector for ``url``.
        clock: the time the schedule runs on (default: the real one); see
            :class:`telemetry.testing.FakeClock`.
        rand: the backoff's jitter, ``rand(low, high)``.
        deletion_url: where deletion requests go (``None``: the endpoint has none, and queued
            requests wait).
        on_status: called after each change of the persisted upload status.
        reports_url: where error reports go, one Sentry envelope each (``None``: the
            endpoint takes none, and they wait).
    """

    def __init__(
        self,
        store: EventStore,
        *,
        url: str,
        api_key: str,
        policy: UploadPolicy | None = None,
        destination: Destination | None = None,
        connectivity: Connectivity | None = None,
        clock: Clock | None = None,
        rand: Callable[[float, float], float] = random.uniform,
        deletion_url: str | None = None,
        on_status: Callable[[], None] | None = None,
        reports_url: str | None = None,
    ) -> None:
        self.store = store
        self.url = url
        self.api_key = api_key
        self.deletion_url = deletion_url
        self.reports_url = reports_url
        self._deletions = DeletionQueue(store, deletion_url)
        self._events_allowed = True
        self.policy = policy or UploadPolicy()
        self.connectivity = connectivity or Connectivity(url)
        self.connectivity.add_listener(self._on_online)
        envelope = self._body("")
        # The body may hold the events, one comma between two of them, and the envelope.
        self._events_budget = max(
            1, self.policy.max_batch_bytes - len(envelope) - (self.policy.max_batch_events - 1)
        )
        self._destination = destination
        self._destination_lock = threading.Lock()
        self._clock = clock or SYSTEM_CLOCK
        self._schedule = Schedule(self.policy, self._clock, rand)
        self._status = StatusWriter(
            store, self._clock, self.connectivity, on_status, url=url, deletion_url=deletion_url
        )
        self._outcomes = Outcomes(
            store, self._schedule, self._status, self.policy, lambda: self._events_allowed
        )
        self._owner = uuid.uuid4().hex
        self._cycle_done = threading.Condition()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._stop_deadline = 0.0  # time.monotonic() until which stop() lets uploads finish
        self._thread: threading.Thread | None = None
        self._lease_held = False
        self._lease_fresh_until = 0.0  # time.monotonic()
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
            if self._destination is not None:
                self._destination.cancel()
            thread.join(reserve / 2)
        if thread.is_alive():  # stuck outside the network: let the next uploader send
            self.store.release_lease(self._owner)
            return False
        return True

    def notify_appended(self) -> None:
        """Called by the client after each append (cheap: wakes the thread only on change)."""
        if self._schedule.appended():
            self._wake.set()

    def wake(self) -> None:
        """Attempt an upload now (backoff and pauses still apply)."""
        self._schedule.ask()
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
        if self._destination is not None:
            self._destination.cancel(self.url)

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
        """Send now, skipping backoff (not 429 or auth pauses), batch after batch without the
        per-minute cap until the queue is empty or ``timeout`` s passed; True when it is empty
        within ``timeout``."""
        deadline = time.monotonic() + timeout
        self._schedule.ask(flush=True, drain_for=timeout)
        self._wake.set()
        while True:
            if self._drained():
                self._schedule.end_drain()
                return True
            remaining = deadline - time.monotonic()
            if remaining <= 0 or self._thread is None or not self._events_allowed:
                self._schedule.end_drain()
                return self._drained()
            with self._cycle_done:
                self._cycle_done.wait(min(remaining, 0.5))

    def _drained(self) -> bool:
        """Nothing waits: no event, and no error report when there is somewhere to send it."""
        if self.store.stats().events:
            return False
        return self.reports_url is None or self.store.report_count() == 0

    def status(self) -> dict[str, Any]:
        """The persisted upload status (last result, next attempt...)."""
        return self._status.read()

    @property
    def idle(self) -> bool:
        """The queue was empty at the last look and nothing came since: the thread sleeps
        until the idle check or the next event."""
        return self._schedule.idle

    # ------------------------------------------------------------------ the loop

    def _run(self, stopping: threading.Event) -> None:
        try:
            try:
                self._transport()  # httpx is imported here, off the app's thread
            except Exception:  # an import racing the app's own (seen: urllib.request)
                log.warning(
                    "telemetry could not load its HTTP transport yet; it retries at the first send",
                    exc_info=True,
                )
                self.store.increment("upload_transport_errors")
            while not stopping.is_set():
                wait, watch = self._schedule.wait_time()
                if wait > 0:
                    if watch:
                        wait = min(wait, self.policy.offline_check_interval)
                    self._clock.wait(self._wake, wait)
                    self._wake.clear()
                    if watch and not stopping.is_set():
                        self.connectivity.is_online()  # an interface coming up resets the backoff
                    continue
                self._cycle(closing=False)
            while time.monotonic() < self._stop_deadline:
                if self._cycle(closing=True) not in _PROGRESS:
                    break
        finally:
            if self._destination is not None:
                self._destination.close()
            self._release_lease()
            with self._cycle_done:
                self._cycle_done.notify_all()

    def _cycle(self, *, closing: bool) -> str:
        try:
            outcome = self.run_once(closing=closing)
        except Exception:  # the uploader must never die
            log.exception("telemetry upload cycle failed")
            outcome = "error"
            self._schedule.after(self.policy.flush_interval)
        with self._cycle_done:
            self._cycles += 1
            self._cycle_done.notify_all()
        return outcome

    def run_once(self, *, closing: bool = False) -> str:
        """One upload attempt unless paused, backing off or rate-limited; returns what
        happened (for tests and logs). ``closing``: skip the backoff, as ``flush()`` does."""
        now = self._clock.monotonic()
        held_back, limit, prompt, seen = self._schedule.begin(now, closing)
        if held_back is not None:
            return held_back
        if self._deletions.pending() and self.deletion_url is not None:
            refused = self._ready_to_send(now)
            if refused is not None:
                return refused
            # Read again under the lease: another process of the app may have delivered it.
            deletions = self._deletions.pending()
            if deletions:
                return self._send_deletion(deletions[0])
        if not self._events_allowed:  # appends cannot be sent: only asks count
            return self._go_idle(now, seen, appends_matter=False)
        if (
            self.reports_url is not None
            and self._schedule.reports_due(now)
            and self.store.report_count()
        ):
            return self._send_report(now)
        return self._send_events(now, limit, prompt, seen)

    def _send_report(self, now: float) -> str:
        """Send the oldest waiting error report (one envelope); reports go before events:
        they are few and small."""
        refused = self._ready_to_send(now)
        if refused is not None:
            return refused
        waiting = self.store.pending_reports(1)
        if not waiting:
            self._schedule.after(0.0)
            return "sent"
        report = waiting[0]
        event_json = report_json(report)
        import gzip

        body = gzip.compress(envelope(event_json, report.event_id), compresslevel=6)
        response = self._post(body, url=self.reports_url)
        if isinstance(response, str):
            return response
        return self._outcomes.report(report, response, event_json)

    def _send_events(self, now: float, limit: int, prompt: bool, seen: tuple[int, int]) -> str:
        """Send the next batch if it is due (full, old enough, or asked for)."""
        # Still ours (renewed at each send, expiring lease_ttl later; half of it as margin)?
        under_lease = self._lease_held and time.monotonic() < self._lease_fresh_until
        waiting = self.store.pending(limit, self._events_budget)
        if not waiting:
            return self._go_idle(now, seen)
        if not prompt and not self._is_full(waiting, limit):
            # Not a full batch: send once the oldest event has waited flush_interval.
            age = max(0.0, self._clock.time() - waiting[0].time / 1000)
            if age < self.policy.flush_interval:
                self._schedule.at(now + self.policy.flush_interval - age)
                return "waiting"
        refused = self._ready_to_send(now)
        if refused is not None:
            return refused
        # Only a batch read under the lease is sent: what another uploader sent is gone.
        batch = waiting if under_lease else self.store.pending(limit, self._events_budget)
        if not batch:
            return self._go_idle(now, seen)
        return self._send(batch)

    def _ready_to_send(self, now: float) -> str | None:
        """None when a request may go now (online, and the upload lease is ours); else the
        outcome, with the next attempt scheduled."""
        if not self.connectivity.is_online():
            self._schedule.at(now + self.policy.offline_check_interval)
            self._outcomes.save("offline: waiting for the network", None, changed_only=True)
            return "offline"
        return self._take_lease(now)

    def _take_lease(self, now: float) -> str | None:
        """Take (or renew) the upload lease: one uploader per data dir sends at a time.
        Returns the outcome when another process holds it."""
        if not self.store.acquire_lease(self._owner, int(self.policy.lease_ttl * 1000)):
            self._schedule.at(now + self.policy.flush_interval)
            self._outcomes.save("another process is uploading", None, changed_only=True)
            return "lease-held-elsewhere"
        self._lease_held = True
        self._lease_fresh_until = time.monotonic() + self.policy.lease_ttl / 2
        return None

    def _is_full(self, batch: Sequence[StoredEvent], limit: int) -> bool:
        size = sum(e.size for e in batch)
        return len(batch) >= limit or size + MAX_EVENT_BYTES > self._events_budget

    def _go_idle(self, now: float, seen: tuple[int, int], *, appends_matter: bool = True) -> str:
        """Sleep until the idle check, unless something came since the cycle read ``seen``
        (appends, asks): then look again at once."""
        if not self._schedule.go_idle(now, seen, appends_matter=appends_matter):
            return "asked-again"
        self._release_lease()
        if self._events_allowed and self.store.report_count():
            self._schedule.wake_for_reports(now)
        return "idle"

    def _release_lease(self) -> None:
        if self._lease_held:
            self._lease_held = False
            self.store.release_lease(self._owner)

    # ------------------------------------------------------------------ one request

    def _transport(self) -> Destination:
        """The destination, creating the HTTP transport (importing httpx) on first use."""
        with self._destination_lock:
            if self._destination is None:
                from telemetry.transport import HttpTransport

                self._destination = HttpTransport(
                    connect_timeout=self.policy.connect_timeout,
                    total_timeout=self.policy.total_timeout,
                )
            return self._destination

    def _body(self, events_json: str, proofs: dict[str, str] | None = None) -> str:
        return request_body(
            self.api_key,
            events_json,
            min_id_length=self.policy.min_id_length,
            device_proofs=proofs,
        )

    def _post(
        self, body: bytes, *, deletion: bool = False, url: str | None = None
    ) -> Response | str:
        """One request, within the stop deadline and counted against the per-minute cap.

        Returns the answer, or the outcome (``stopping``, ``retry``) when none came: a
        network failure schedules the backoff. ``deletion``: the plain-JSON deletion request
        to :attr:`deletion_url` instead of a gzip event batch; ``url``: another gzip body's
        destination (an error report's envelope).
        """
        give_up_after = None
        if self._stopping.is_set():
            give_up_after = self._stop_deadline - time.monotonic()
            if give_up_after <= 0:
                return "stopping"
        destination = self._transport()
        self._schedule.request_sent(deletion=deletion)
        self.store.increment(DELETION_ATTEMPTS if deletion else "upload_requests")
        url = url or (self.deletion_url if deletion else self.url)
        assert url is not None
        try:
            response = destination.post(
                url, body, gzipped=not deletion, give_up_after=give_up_after
            )
        except TransportError as exc:
            if not deletion:
                self.store.increment(f"upload_{exc.kind}")
            if exc.kind != "cancelled":
                self.connectivity.report_upload(False)
                self._schedule.network_failing = True
            return self._outcomes.retry_later(
                f"deletion request: {exc}" if deletion else str(exc), None
            )
        self.connectivity.report_upload(True)
        self._schedule.network_failing = False
        return response

    def _send(self, batch: Sequence[StoredEvent]) -> str:
        events_json = ",".join(e.json for e in batch)
        body = self._body(events_json, batch_proofs(self.store, self.api_key, batch))
        import gzip  # loaded with the first batch, on the uploader's thread

        body_gzip = gzip.compress(body.encode("utf-8"), compresslevel=6)
        # Until the answer is applied, the caps leave this batch alone: an event delivered
        # while a cap pass runs is counted as sent, not also as dropped.
        with self.store.sending([e.id for e in batch]):
            response = self._post(body_gzip)
            if isinstance(response, str):
                return response
            return self._outcomes.batch(batch, response, events_json)

    def _send_deletion(self, request: dict[str, Any]) -> str:
        """POST one deletion request and apply the answer to the schedule."""
        sent = self._deletions.send(
            request,
            lambda body: self._post(body, deletion=True),
            policy=self.policy,
            clock=self._clock,
        )
        if isinstance(sent, str):
            return sent
        return self._outcomes.deletion(*sent)

    def _on_online(self) -> None:
        self._schedule.ask(reset_backoff=True)
        self._wake.set()
