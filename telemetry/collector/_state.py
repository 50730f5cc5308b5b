"""What the collector's routes and background tasks share: :class:`CollectorState`."""

from __future__ import annotations

import time
from collections.abc import Callable

from telemetry.collector import _limits as L
from telemetry.collector._config import CollectorConfig
from telemetry.collector._metrics import Metrics
from telemetry.collector._ratelimit import DeviceRateLimiter
from telemetry.collector._storage import Storage

__all__ = ["CollectorState"]


class CollectorState:
    """What the routes share: storage, configuration, metrics, rate limiters (events per
    device; deletion requests per network)."""

    def __init__(
        self,
        storage: Storage,
        config: CollectorConfig,
        environment: str,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.storage = storage
        self.config = config
        self.environment = environment
        self.metrics = Metrics()
        self.limiter = DeviceRateLimiter(
            config.device_events_per_second, config.device_burst_events
        )
        self.deletion_limiter = DeviceRateLimiter(L.DELETIONS_PER_SECOND, L.DELETION_BURST)
        self.clock = clock

    def now_ms(self) -> int:
        return int(self.clock() * 1000)
