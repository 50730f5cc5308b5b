"""What the collector's routes and background tasks share: :class:`CollectorState` (with
``--workers``, its rate limits and metrics are shared with the other worker processes)."""

from __future__ import annotations

import time
from collections.abc import Callable

from telemetry.collector import _limits as L
from telemetry.collector._config import CollectorConfig
from telemetry.collector._metrics import Metrics
from telemetry.collector._ratelimit import DeviceRateLimiter
from telemetry.collector._shared_memory import WorkerShare
from telemetry.collector._storage import Storage

__all__ = ["CollectorState"]


class CollectorState:
    """What the routes share: storage, configuration, metrics, rate limiters (events per
    device; deletion requests per network).

    ``share``: this process is one of the collector's workers; the metrics and every rate
    limiter (:meth:`rate_limiter`) are then the workers' shared ones.
    """

    def __init__(
        self,
        storage: Storage,
        config: CollectorConfig,
        environment: str,
        *,
        clock: Callable[[], float] = time.time,
        share: WorkerShare | None = None,
    ) -> None:
        self.storage = storage
        self.config = config
        self.environment = environment
        self.share = share
        self.metrics = (
            Metrics()
            if share is None
            else Metrics(share.memory, worker=share.worker, workers=share.workers)
        )
        self.limiter = self.rate_limiter(
            "events", config.device_events_per_second, config.device_burst_events
        )
        self.deletion_limiter = self.rate_limiter(
            "deletions", L.DELETIONS_PER_SECOND, L.DELETION_BURST
        )
        self.clock = clock

    def rate_limiter(self, name: str, rate: float, burst: int) -> DeviceRateLimiter:
        """A rate limiter (``name``: the same one in every worker process)."""
        shared = None if self.share is None else self.share.memory
        return DeviceRateLimiter(rate, burst, shared=shared, name=name)

    def now_ms(self) -> int:
        return int(self.clock() * 1000)
