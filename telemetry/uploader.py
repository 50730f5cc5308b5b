"""The background uploader: sends queued events in batches and applies the response policy.

One daemon thread per client (``telemetry-uploader``). It wakes on start-up (to replay what
is on disk), ``flush_interval`` seconds after events start waiting, when a batch fills, when
connectivity returns, on :meth:`Uploader.flush` and on :meth:`Uploader.stop`. With nothing to
send it sleeps on one cheap timer that notices events written by other processes.

Only one uploader per data dir sends at a time, across processes, through a lease in the
store. Responses (collector_reliability.md D3):

========================  ==========================================================
2xx                       delete the batch (and keep it in the sent-batch ring buffer)
400                       drop the events the body names, retry the rest at once; a
                          batch rejected as a whole is dropped; all counted
413                       halve the batch; a single-event 413 is dropped and counted
429                       keep; wait ``Retry-After`` or 30 s (at most 1 h)
401, 403, 404, 405, 410   keep; pause 1 h (configuration problem)
other 4xx                 drop and count
408, 5xx, network error   keep; exponential backoff with full jitter, 5 s to 10 min,
                          reset when connectivity returns
========================  ==========================================================

At most 15 requests per minute; connect timeout 10 s, total 30 s per request.
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

from telemetry._backoff import backoff_delay, parse_retry_after
from telemetry._transport import NetworkError, Response, Transport
from telemetry.connectivity import Connectivity
from telemetry.store import EventStore, StoredEvent

log = logging.getLogger("telemetry.uploader")

STATE_KEY: Final = "upload"
SENT_EVENTS: Final = "sent_events"
DROPPED_REJECTED_400: Final = "dropped_rejected_400"
DROPPED_REJECTED_4XX: Final = "dropped_rejected_4xx"
DROPPED_OVERSIZE: Final = "dropped_oversize"


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
    ) -> None:
        self.store = store
        self.url = url
        self.policy = policy or UploadPolicy()
        self.connectivity = connectivity or Connectivity(url)
        self.connectivity.add_listener(self._on_online)
        self._api_key_json = json.dumps(api_key)
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
        self._thread: threading.Thread | None = None
        self._scheduled: float | None = self._clock()  # replay what is on disk at start
        self._appended = 0
        self._failures = 0
        self._backoff_until = 0.0  # skipped by flush()
        self._paused_until = 0.0  # 429 and configuration pauses; never skipped
        self._pause_reason: str | None = None
        self._flush_requested = False
        self._batch_limit = self.policy.max_batch_events
        self._requests: collections.deque[float] = collections.deque()
        self._cycles = 0

    # ------------------------------------------------------------------ public control

    def start(self) -> None:
        """Start the thread (idempotent)."""
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._run, name="telemetry-uploader", daemon=True
            )
            self._thread.start()

    def stop(self, timeout: float = 2.0) -> bool:
        """Stop within ``timeout`` s, abandoning a request in flight; True if the thread ended.

        Unsent events stay on disk for the next launch.
        """
        self._stopping.set()
        self._wake.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(max(0.0, timeout - 0.1))
            if thread.is_alive():
                self._transport.cancel()
                thread.join(0.1)
        else:
            self.store.release_lease(self._owner)
        return thread is None or not thread.is_alive()

    def notify_appended(self) -> None:
        """Called by the client after each append (cheap: wakes the thread only on change)."""
        with self._lock:
            self._appended += 1
            wake = False
            if self._scheduled is None:
                self._scheduled = self._clock() + self.policy.flush_interval
                wake = True
            if self._appended >= self._batch_limit:
                self._scheduled = self._clock()
                self._appended = 0
                wake = True
        if wake:
            self._wake.set()

    def wake(self) -> None:
        """Attempt an upload now (backoff and pauses still apply)."""
        with self._lock:
            self._scheduled = self._clock()
        self._wake.set()

    def set_online(self, online: bool | None) -> None:
        """The connectivity hook: the app reports online/offline (``None``: auto-detect)."""
        self.connectivity.set_online(online)
        self._wake.set()

    def cancel(self) -> None:
        """Abort the request in flight (its events stay queued)."""
        self._transport.cancel()

    def flush(self, timeout: float = 10.0) -> bool:
        """Send now, skipping backoff (not 429 or auth pauses); True when the queue is empty
        within ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        with self._lock:
            self._flush_requested = True
            self._scheduled = self._clock()
        self._wake.set()
        while True:
            if self.store.stats().events == 0:
                return True
            remaining = deadline - time.monotonic()
            if remaining <= 0 or self._thread is None:
                return self.store.stats().events == 0
            with self._cycle_done:
                self._cycle_done.wait(min(remaining, 0.5))

    def status(self) -> dict[str, Any]:
        """The persisted upload status (last result, next attempt...)."""
        result: dict[str, Any] = self.store.get_state(STATE_KEY, {})
        return result

    # ------------------------------------------------------------------ the loop

    def _run(self) -> None:
        try:
            while not self._stopping.is_set():
                self._wake.wait(self._wait_time())
                self._wake.clear()
                if self._stopping.is_set():
                    break
                try:
                    self.run_once()
                except Exception:  # noqa: BLE001 - the uploader must never die
                    log.exception("telemetry upload cycle failed")
                    with self._lock:
                        self._scheduled = self._clock() + self.policy.flush_interval
                with self._cycle_done:
                    self._cycles += 1
                    self._cycle_done.notify_all()
        finally:
            self.store.release_lease(self._owner)
            with self._cycle_done:
                self._cycle_done.notify_all()

    def _wait_time(self) -> float:
        with self._lock:
            if self._scheduled is None:
                return self.policy.idle_check_interval
            start = self._scheduled
            if not self._flush_requested:
                start = max(start, self._backoff_until)
            start = max(start, self._paused_until, self._rate_free_at())
            return max(0.0, start - self._clock())

    def _rate_free_at(self) -> float:
        now = self._clock()
        while self._requests and self._requests[0] <= now - 60.0:
            self._requests.popleft()
        if len(self._requests) < self.policy.max_requests_per_minute:
            return 0.0
        return self._requests[0] + 60.0

    def run_once(self) -> str:
        """One upload attempt if one is due; returns what happened (for tests and logs)."""
        now = self._clock()
        with self._lock:
            flush = self._flush_requested
            if now < self._paused_until:
                self._scheduled = self._paused_until
                return "paused"
            if not flush and now < self._backoff_until:
                self._scheduled = self._backoff_until
                return "backing-off"
            if self._rate_free_at() > now:
                self._scheduled = self._rate_free_at()
                return "rate-limited"
            limit = self._batch_limit
        batch = self.store.pending(limit, self.policy.max_batch_bytes)
        if not batch:
            with self._lock:
                self._scheduled = None
                self._flush_requested = False
                self._appended = 0
            return "idle"
        if not self.connectivity.is_online():
            with self._lock:
                self._scheduled = now + self.policy.offline_check_interval
            self._save_status("offline", None)
            return "offline"
        if not self.store.acquire_lease(self._owner, int(self.policy.lease_ttl * 1000)):
            with self._lock:
                self._scheduled = now + self.policy.flush_interval
            return "lease-held-elsewhere"
        return self._send(batch)

    # ------------------------------------------------------------------ one request

    def _send(self, batch: Sequence[StoredEvent]) -> str:
        events_json = "[" + ",".join(e.json for e in batch) + "]"
        body = (
            f'{{"api_key":{self._api_key_json},"events":{events_json},'
            f'"options":{{"min_id_length":{self.policy.min_id_length}}}}}'
        )
        body_gzip = gzip.compress(body.encode("utf-8"), compresslevel=6)
        with self._lock:
            self._requests.append(self._clock())
            self._flush_requested = False
        self.store.increment("upload_requests")
        try:
            response = self._transport.post_gzip(body_gzip)
        except NetworkError as exc:
            self.store.increment(f"upload_{exc.kind}")
            return self._retry_later(str(exc), None)
        return self._handle(batch, response, events_json)

    def _handle(self, batch: Sequence[StoredEvent], response: Response, events_json: str) -> str:
        status = response.status
        ids = [e.id for e in batch]
        if 200 <= status < 300:
            self.store.increment("upload_2xx")
            removed = self.store.ack(ids, status, gzip.compress(events_json.encode("utf-8")))
            self.store.increment(SENT_EVENTS, len(ids))
            with self._lock:
                self._failures = 0
                self._backoff_until = 0.0
                self._scheduled = self._clock() + self.policy.after_success_delay
            self._save_status(f"{status}: {len(ids)} events delivered", status, success=True)
            log.debug("uploaded %d events (%d removed)", len(ids), removed)
            return "sent"
        if status == 400:
            self.store.increment("upload_400")
            bad = _rejected_indexes(response.body, len(batch))
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
            if len(batch) == 1:
                self.store.drop(ids, DROPPED_OVERSIZE)
                outcome = "413: single event too large, dropped"
            else:
                with self._lock:
                    self._batch_limit = max(1, len(batch) // 2)
                outcome = f"413: batch halved to {max(1, len(batch) // 2)} events"
            with self._lock:
                self._scheduled = self._clock()
            self._save_status(outcome, status)
            return "too-large"
        if status == 429:
            self.store.increment("upload_429")
            wait = parse_retry_after(
                response.retry_after,
                default=self.policy.retry_after_default,
                maximum=self.policy.retry_after_max,
            )
            return self._pause(wait, f"429: throttled, waiting {wait:.0f} s", status)
        if status in (401, 403, 404, 405, 410):
            self.store.increment(f"upload_{status}")
            return self._pause(
                self.policy.config_error_pause,
                f"{status}: endpoint refused the project or URL; paused 1 h",
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

    def _pause(self, seconds: float, outcome: str, status: int) -> str:
        with self._lock:
            self._paused_until = self._clock() + seconds
            self._scheduled = self._paused_until
        self._save_status(outcome, status, delay=seconds)
        return "paused"

    def _on_online(self) -> None:
        with self._lock:
            self._failures = 0
            self._backoff_until = 0.0
            self._scheduled = self._clock()
        self._wake.set()

    def _save_status(
        self, outcome: str, status: int | None, *, success: bool = False, delay: float = 0.0
    ) -> None:
        now_ms = time.time_ns() // 1_000_000
        state: dict[str, Any] = dict(self.store.get_state(STATE_KEY, {}))
        state.update(
            last_attempt_at=now_ms,
            last_result=outcome,
            last_status=status,
            failures=self._failures,
            next_attempt_at=now_ms + int(delay * 1000) if delay else None,
        )
        if success:
            state["last_success_at"] = now_ms
        self.store.set_state(STATE_KEY, state)


def _rejected_indexes(body: bytes, size: int) -> set[int]:
    """Indexes an Amplitude-style 400 body names as invalid, missing or silenced."""
    try:
        data = json.loads(body)
    except ValueError:
        return set()
    if not isinstance(data, dict):
        return set()
    found: set[int] = set()
    for key in (
        "events_with_invalid_fields",
        "events_with_missing_fields",
        "events_with_invalid_id_lengths",
    ):
        groups = data.get(key)
        if isinstance(groups, dict):
            for indexes in groups.values():
                if isinstance(indexes, list):
                    found.update(i for i in indexes if isinstance(i, int))
    silenced = data.get("silenced_events")
    if isinstance(silenced, list):
        found.update(i for i in silenced if isinstance(i, int))
    return {i for i in found if 0 <= i < size}
