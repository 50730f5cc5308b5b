"""The deletion-request queue: requests an opt-out left in the store, sent one at a time.

An opt-out appends ``{"project", "device_id", "reason", "proof"}`` under the
``deletion_requests`` state key (see :mod:`telemetry.consent`), the proof of ownership made
while the installation secret still existed; the uploader sends the oldest, plain JSON, to the
endpoint's deletion URL, and forgets it once the collector took it (or refused it for good).
Only those four fields ever leave the machine.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from telemetry._delivery._clock import Clock
from telemetry._delivery._policy import Action, Deliver, Drop, UploadPolicy, decide_deletion
from telemetry._store import EventStore
from telemetry.consent import DELETION_KEY

if TYPE_CHECKING:
    from telemetry.transport import Response

log = logging.getLogger("telemetry.uploader")


class DeletionQueue:
    """The store's pending deletion requests and their delivery to ``url`` (``None``: the
    endpoint has no deletion URL, and requests wait)."""

    def __init__(self, store: EventStore, url: str | None) -> None:
        self.store = store
        self.url = url

    def pending(self) -> list[dict[str, Any]]:
        """The queued requests, oldest first."""
        requests: list[dict[str, Any]] = self.store.get_state(DELETION_KEY) or []
        return requests

    @staticmethod
    def body(request: dict[str, Any]) -> bytes:
        """The request's JSON body: only the device id, project, reason and proof.

        A request queued by a version without proofs gets a random one: its device never sent
        a proof hash, so the collector takes the first proof it is given."""
        proof = request.get("proof")
        return json.dumps(
            {
                "project": request.get("project"),
                "device_id": request.get("device_id"),
                "reason": request.get("reason"),
                "proof": proof if isinstance(proof, str) and proof else os.urandom(32).hex(),
            },
            separators=(",", ":"),
        ).encode()

    def send(
        self,
        request: dict[str, Any],
        post: Callable[[bytes], Response | str],
        *,
        policy: UploadPolicy,
        clock: Clock,
    ) -> tuple[int, Action] | str:
        """POST ``request`` through ``post``; forget it when delivered or refused for good.

        Returns the answer's status and the policy's action (which the caller applies to its
        schedule), or ``post``'s outcome when no answer came.
        """
        answer = post(self.body(request))
        if isinstance(answer, str):
            return answer
        now = datetime.fromtimestamp(clock.time(), UTC)
        action = decide_deletion(answer.status, answer.headers, policy, now=now)
        if isinstance(action, Deliver | Drop):
            self.forget(request)
        if action.counter is not None:
            self.store.increment(action.counter)
        if isinstance(action, Drop):
            log.error(
                "the collector refused a deletion request (%d): %r", answer.status, answer.body
            )
        return answer.status, action

    def forget(self, request: dict[str, Any]) -> None:
        """Remove every queued request for ``request``'s device id."""
        device = request.get("device_id")

        def without_it(pending: Any) -> list[Any] | None:
            # One transaction: an opt-out queueing another request meanwhile is kept.
            kept = [
                r for r in pending or [] if isinstance(r, dict) and r.get("device_id") != device
            ]
            return kept or None

        self.store.update_state(DELETION_KEY, without_it)
