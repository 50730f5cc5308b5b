"""The consent flow: carries out the decisions of :mod:`telemetry.consent` for one client.

It holds the live state (stored choice, notice shown / answered, environment veto), and it is
the one place that applies a change: granting (a device id, uploads allowed), denying (stop
recording, cancel the upload in flight, erase what was recorded, queue one deletion request
for every device id whose events may have left the machine), and following a choice made in
another process on the same data dir (a second window, the ``telemetry`` command).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from telemetry._identity import Identity, installation_secret
from telemetry._store import EventStore
from telemetry.consent import (
    ANSWERED_KEY,
    DELETION_KEY,
    EXPOSED_KEY,
    NOTICE_KEY,
    STATE_KEY,
    ConsentPolicy,
    ConsentState,
    Decision,
    decide,
    load_state,
)
from telemetry.wire import device_proof

if TYPE_CHECKING:
    from telemetry._delivery import Uploader

log = logging.getLogger("telemetry")

#: State kept by an opt-out: the user's answers and the deletion requests still to send.
_KEPT_AT_OPT_OUT = (NOTICE_KEY, ANSWERED_KEY, DELETION_KEY)


class ConsentFlow:
    """The consent state of one client and the transitions between its states."""

    def __init__(
        self,
        store: EventStore,
        *,
        policy: ConsentPolicy,
        project_name: str,
        blocked_by: str | None,
        stored: tuple[ConsentState, bool, bool],
    ) -> None:
        self._store = store
        self._project = project_name
        self.policy = policy
        self.blocked_by = blocked_by
        self.state, self.notice_shown, self.notice_answered = stored
        self.lock = threading.RLock()
        #: Held around every append: an opt-out takes it, so no append is half done after it.
        self.record_lock = threading.Lock()
        self.decision = self._decide()
        self.identity: Identity | None = None
        self.uploader: Uploader | None = None
        self.on_forget: Callable[[], None] = lambda: None
        self.on_granted: Callable[[], None] = lambda: None

    #: The state keys :meth:`read_stored` reads.
    STORED_KEYS = (STATE_KEY, NOTICE_KEY, ANSWERED_KEY)

    @staticmethod
    def read_stored(get: Callable[[str], Any]) -> tuple[ConsentState, bool, bool]:
        """(choice, notice shown, notice answered) from ``get(key)`` (the store's
        ``get_state``, or a read-only peek); an answered notice was shown."""
        answered = bool(get(ANSWERED_KEY))
        return load_state(get(STATE_KEY)), bool(get(NOTICE_KEY)) or answered, answered

    def _decide(self) -> Decision:
        return decide(
            self.policy,
            self.state,
            notice_answered=self.notice_answered,
            blocked_by=self.blocked_by,
        )

    def _identity(self) -> Identity:
        assert self.identity is not None, "ConsentFlow.identity is set by the client"
        return self.identity

    # ------------------------------------------------------------------ the notice

    def mark_notice_shown(self) -> bool:
        """Persist that the notice was shown (it allows nothing); True when that is new."""
        with self.lock:
            if self.notice_shown or self.blocked_by is not None:
                return False
            self.notice_shown = True
            self._store.set_state(NOTICE_KEY, True)
        return True

    def mark_notice_answered(self) -> bool:
        """Persist that the user answered the notice; under ``opt_out`` uploads may start.
        True when that is new."""
        with self.lock:
            if self.notice_answered or self.blocked_by is not None:
                return False
            self._persist_answered()
            self.redecide()
        return True

    def _persist_answered(self) -> None:
        self.notice_answered = self.notice_shown = True
        self._store.set_state(NOTICE_KEY, True)
        self._store.set_state(ANSWERED_KEY, True)

    # ------------------------------------------------------------------ the user's choice

    def set_consent(self, granted: bool) -> bool:
        """Apply the user's choice; True when something changed (it is also an answer to the
        notice). Nothing changes while the environment vetoes telemetry."""
        with self.lock:
            if self.blocked_by is not None:
                log.warning(
                    "telemetry is disabled by %s; the choice is not changed", self.blocked_by
                )
                return False
            wanted = ConsentState.GRANTED if granted else ConsentState.DENIED
            if not self.notice_answered:
                self._persist_answered()
            if wanted is self.state:
                self.redecide()
                return False
            if granted:
                self._grant()
            else:
                self._deny()
        return True

    def _stop_recording(self) -> None:
        """No append is in progress once this returns and none starts; the upload in flight
        is cancelled."""
        with self.record_lock:
            self.state = ConsentState.DENIED
            self.decision = Decision(record=False, upload_events=False)
        if self.uploader is not None:
            self.uploader.set_events_allowed(False)
            self.uploader.cancel()

    def _forget_recorded(
        self,
        keep_state: tuple[str, ...],
        then: Mapping[str, Callable[[Any], Any]] | None = None,
    ) -> int:
        """Erase what was recorded (store and journals) and the identity, in the store and in
        memory, setting the state keys of ``then`` in the same transaction; returns how many
        events went unsent."""
        unsent = self._store.erase(keep_state=keep_state, then=then)
        self._identity().forget()
        self.on_forget()
        return unsent

    def _deny(self) -> None:
        self._stop_recording()
        exposed = [d for d in self._store.get_state(EXPOSED_KEY) or [] if isinstance(d, str)]
        now = time.time_ns() // 1_000_000
        project = self._project
        # The proofs are made now: the secret is erased with the device id below.
        secret = installation_secret(self._store, create=True) or b""

        pending: list[Any] = []  # the deletion requests stored, once the erase has run

        def with_requests(queued: Any) -> list[Any] | None:
            # Read and written in the erase's transaction: the uploader dropping a delivered
            # request meanwhile loses nothing.
            pending[:] = list(queued or [])
            known = {r.get("device_id") for r in pending if isinstance(r, dict)}
            for device in exposed:
                if device not in known:
                    pending.append(
                        {
                            "device_id": device,
                            "project": project,
                            "reason": "opt_out",
                            "proof": device_proof(secret, project, device),
                            "created_at": now,
                        }
                    )
            return pending or None

        # One transaction with the erase: a process killed half-way must not come back with
        # the data gone but the choice (and the deletion request) forgotten.
        unsent = self._forget_recorded(
            _KEPT_AT_OPT_OUT,
            {STATE_KEY: lambda _: str(ConsentState.DENIED), DELETION_KEY: with_requests},
        )
        log.info(
            "telemetry turned off: %d unsent events deleted, %d deletion request(s) queued",
            unsent,
            len(pending),
        )
        if self.uploader is not None and pending:
            self.uploader.send_deletions_now()

    def _grant(self) -> None:
        self.state = ConsentState.GRANTED
        self._store.set_state(STATE_KEY, str(ConsentState.GRANTED))
        self._identity().ensure_device_id()
        self.redecide()
        self.on_granted()

    # ------------------------------------------------------------------ applying decisions

    def redecide(self) -> None:
        """Re-derive the decision and tell the uploader whether events may leave."""
        self.decision = self._decide()
        self.apply_upload_decision()

    def apply_upload_decision(self) -> None:
        """Allow or stop event uploads; the device id is marked exposed only when allowed."""
        allowed = self.decision.upload_events and self.uploader is not None
        device_id = self._identity().device_id if self.identity is not None else ""
        if allowed and device_id:
            self._mark_exposed(device_id)
        if self.uploader is not None:
            self.uploader.set_events_allowed(allowed)

    def _mark_exposed(self, device_id: str) -> None:
        """Remember that events of ``device_id`` may leave the machine (so an opt-out sends a
        deletion request for it)."""
        if device_id in (self._store.get_state(EXPOSED_KEY) or []):
            return
        self._store.update_state(
            EXPOSED_KEY,
            lambda exposed: (
                exposed if device_id in (exposed or []) else [*(exposed or []), device_id]
            ),
        )

    def follow_stored_choice(self) -> bool:
        """Apply a choice made in another process of the app within one housekeeping pass:
        an opt-out there stops recording here too. True when something changed."""
        if self.blocked_by is not None or self._store.in_memory:
            return False
        with self.lock:
            # Read under the lock: a set_consent() in this process racing with this pass would
            # otherwise be undone by acting on a read taken before it.
            stored, shown, answered = self.read_stored(self._store.get_state)
            if (stored, shown, answered) == (
                self.state,
                self.notice_shown,
                self.notice_answered,
            ):
                return False
            self.notice_shown, self.notice_answered = shown, answered
            if stored is ConsentState.DENIED and self.state is not ConsentState.DENIED:
                self._stop_recording()
                # What this process recorded since the other one erased goes too.
                self._forget_recorded((*_KEPT_AT_OPT_OUT, STATE_KEY))
                if self.uploader is not None:
                    self.uploader.wake()
            elif stored is ConsentState.GRANTED and self.state is not ConsentState.GRANTED:
                self.state = ConsentState.GRANTED
                persisted = self._store.get_state("device_id")
                if isinstance(persisted, str) and persisted:
                    self._identity().set_device_id(persisted)
                else:
                    self._identity().ensure_device_id()
                self.redecide()
            else:
                self.state = stored
                self.redecide()
        log.info("telemetry follows a choice made in another process: %s", stored)
        return True
