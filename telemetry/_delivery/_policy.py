"""The response policy: what the uploader does with each answer, as a pure function.

:func:`decide` maps an answer to an event batch (status, headers, body) and the batch's size
to an action; the uploader applies it to the store and its schedule. ``status`` ``None`` means
no answer came (a network error or a timeout).

==========================  ==========================================================
2xx                         delete the batch (and keep it in the sent-batch ring buffer)
400                         drop the events the body names, retry the rest at once; a
                            batch rejected as a whole is dropped; all counted
413                         halve the batch (for the session); a single-event 413 drops
                            that event, counted, and restores the configured batch size
429                         keep; wait ``Retry-After`` or 30 s (at most 1 h)
401, 403, 404, 405, 410     keep; pause 1 h (configuration problem)
other 4xx                   drop and count
408, 5xx, network error     keep; exponential backoff with full jitter, 5 s to 10 min,
                            reset when connectivity returns
3xx, 1xx                    keep; the same backoff (a redirect is never followed: a captive
                            portal or a moved endpoint must not cost events)
==========================  ==========================================================

A 400 that names no event means the request as a whole was refused (Amplitude answers so
for a bad API key or a malformed body); resending it could never succeed. A 401 to 410 points
at the configuration (wrong project or URL), which no retry fixes before someone changes it:
the events are kept and the uploader asks again an hour later. 429 asks to slow down; 408 and
5xx are the server's own trouble: the batch is kept and retried later.

:func:`decide_deletion` does the same for the answer to a deletion request:

==========================  ==========================================================
2xx                         delivered: forget the request, counted
400, 422                    refused: forget the request (it can never succeed), counted
429                         keep; wait ``Retry-After`` or 30 s (at most 1 h)
401, 403, 404, 405, 410     keep; pause 1 h (configuration problem)
other, network error        keep; exponential backoff
==========================  ==========================================================

Every action names the counter it bumps (``None``: the caller counts, e.g. the transport's
error kind for a network error). Times come from :class:`UploadPolicy`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from telemetry._delivery._backoff import parse_retry_after
from telemetry.wire import rejected_indexes

SENT_EVENTS: Final = "sent_events"
DROPPED_REJECTED_400: Final = "dropped_rejected_400"
DROPPED_REJECTED_4XX: Final = "dropped_rejected_4xx"
DROPPED_OVERSIZE: Final = "dropped_oversize"
DELETION_ATTEMPTS: Final = "deletion_request_attempts"
DELETION_SENT: Final = "deletion_requests_sent"
DELETION_REFUSED: Final = "deletion_requests_refused"

#: Statuses that point at the configuration (project, URL): paused, not retried soon.
CONFIG_ERRORS: Final = frozenset({401, 403, 404, 405, 410})


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


class _Action:
    """What to do with an answer. Plain slotted classes (not dataclasses): the uploader's
    module is imported at start-up, and these are made only when an answer arrives."""

    __slots__ = ("counter",)

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and all(
            getattr(self, name) == getattr(other, name) for name in self._names()
        )

    def __hash__(self) -> int:
        return hash((type(self), *(getattr(self, name) for name in self._names())))

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in self._names())
        return f"{type(self).__name__}({fields})"

    @classmethod
    def _names(cls) -> tuple[str, ...]:
        return tuple(n for c in reversed(cls.__mro__) for n in getattr(c, "__slots__", ()))


class Deliver(_Action):
    """Delivered: delete the batch (forget the deletion request), reset the backoff."""

    __slots__ = ()

    def __init__(self, counter: str | None) -> None:
        self.counter = counter


class Drop(_Action):
    """Drop events (``indexes`` of the batch; ``None``: all of it), counted as ``reason``,
    and send what is left at once. ``batch_limit``: the batch size to use from now on."""

    __slots__ = ("batch_limit", "indexes", "reason")

    def __init__(
        self,
        counter: str | None,
        reason: str,
        indexes: frozenset[int] | None = None,
        batch_limit: int | None = None,
    ) -> None:
        self.counter = counter
        self.reason = reason
        self.indexes = indexes
        self.batch_limit = batch_limit


class Shrink(_Action):
    """Keep the batch; send at once with at most ``batch_limit`` events per batch."""

    __slots__ = ("batch_limit",)

    def __init__(self, counter: str | None, batch_limit: int) -> None:
        self.counter = counter
        self.batch_limit = batch_limit


class Pause(_Action):
    """Keep the batch; send nothing for ``seconds`` (``flush()`` does not skip it)."""

    __slots__ = ("seconds",)

    def __init__(self, counter: str | None, seconds: float) -> None:
        self.counter = counter
        self.seconds = seconds


class Backoff(_Action):
    """Keep the batch; retry after the next exponential backoff delay."""

    __slots__ = ()

    def __init__(self, counter: str | None) -> None:
        self.counter = counter


Action = Deliver | Drop | Shrink | Pause | Backoff


def decide(
    status: int | None,
    headers: Mapping[str, str],
    body: bytes,
    batch_size: int,
    policy: UploadPolicy | None = None,
    *,
    now: datetime | None = None,
) -> Action:
    """The action for the answer to a batch of ``batch_size`` events (see the table above).

    ``headers`` are matched without regard to case; ``now`` (aware) is the wall time that a
    ``Retry-After`` date is measured from (default: the current time).
    """
    policy = policy or UploadPolicy()
    if status is None:
        return Backoff(None)
    if 200 <= status < 300:
        return Deliver("upload_2xx")
    if status == 400:
        named = frozenset(rejected_indexes(body, batch_size))
        return Drop("upload_400", DROPPED_REJECTED_400, named or None)
    if status == 413:
        if batch_size <= 1:  # the event alone is too large: the batch size was not the problem
            return Drop("upload_413", DROPPED_OVERSIZE, batch_limit=policy.max_batch_events)
        return Shrink("upload_413", max(1, batch_size // 2))
    if status == 429:
        return Pause("upload_429", _retry_after(headers, policy, now))
    if status in CONFIG_ERRORS:
        return Pause(f"upload_{status}", policy.config_error_pause)
    if status == 408 or status >= 500:
        return Backoff("upload_5xx" if status >= 500 else "upload_408")
    if not 400 <= status < 500:  # 3xx (a captive portal, a moved endpoint), 1xx: keep them
        return Backoff("upload_other_status")
    return Drop("upload_other_4xx", DROPPED_REJECTED_4XX)


def decide_deletion(
    status: int | None,
    headers: Mapping[str, str],
    policy: UploadPolicy | None = None,
    *,
    now: datetime | None = None,
) -> Action:
    """The action for the answer to a deletion request (see the second table above)."""
    policy = policy or UploadPolicy()
    if status is None:
        return Backoff(None)
    if 200 <= status < 300:
        return Deliver(DELETION_SENT)
    if status in (400, 422):
        return Drop(DELETION_REFUSED, DELETION_REFUSED)
    if status == 429:
        return Pause(None, _retry_after(headers, policy, now))
    if status in CONFIG_ERRORS:
        return Pause(None, policy.config_error_pause)
    return Backoff(None)


#: Counter of error reports a collector refused for good (4xx other than 401/403/404/405/410,
#: 408 and 429).
REPORTS_REFUSED: Final = "reports_refused"


def decide_report(
    status: int | None,
    headers: Mapping[str, str],
    policy: UploadPolicy | None = None,
    *,
    now: datetime | None = None,
) -> Action:
    """The action for the answer to one error report's envelope: delivered on 2xx; paused
    on 429 (the collector asks every sender to slow down); retried later with its own
    backoff on 408, 5xx or no answer (events keep going meanwhile); refused for good
    (dropped, counted) on any other 4xx, the configuration errors included: a collector
    without the envelope endpoint answers 404, and that must not hold events back."""
    policy = policy or UploadPolicy()
    if status is None:
        return Backoff(None)
    if 200 <= status < 300:
        return Deliver("reports_2xx")
    if status == 429:
        return Pause("upload_429", _retry_after(headers, policy, now))
    if status == 408 or status >= 500:
        return Backoff("upload_5xx" if status >= 500 else "upload_408")
    if not 400 <= status < 500:  # a redirect or another odd answer: keep it, retry later
        return Backoff("upload_other_status")
    return Drop(None, REPORTS_REFUSED)


def _retry_after(headers: Mapping[str, str], policy: UploadPolicy, now: datetime | None) -> float:
    value = next((v for k, v in headers.items() if k.lower() == "retry-after"), None)
    return parse_retry_after(
        value, default=policy.retry_after_default, maximum=policy.retry_after_max, now=now
    )
