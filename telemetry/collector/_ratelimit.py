"""Per-device rate limiting: a token bucket per (project, device id), bounded in memory."""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Final

__all__ = ["DeviceRateLimiter"]

#: Most devices tracked at once; the least recently seen are forgotten first (a forgotten device
#: starts again with a full bucket, which errs on the side of accepting).
MAX_TRACKED_DEVICES: Final = 100_000


class DeviceRateLimiter:
    """Token buckets refilled at ``rate`` events/s up to ``burst`` events, one per device."""

    def __init__(
        self,
        rate: float,
        burst: int,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_devices: int = MAX_TRACKED_DEVICES,
    ) -> None:
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._max_devices = max_devices
        self._lock = threading.Lock()
        self._buckets: OrderedDict[tuple[str, str], tuple[float, float]] = OrderedDict()

    def _level(self, key: tuple[str, str], now: float) -> float:
        tokens, at = self._buckets.get(key, (float(self.burst), now))
        return min(float(self.burst), tokens + (now - at) * self.rate)

    def take(self, project: str, counts: Mapping[str, int]) -> float:
        """Take ``counts[device]`` tokens from every device's bucket, all or nothing.

        Returns 0 when taken, else the seconds to wait until all of them would fit (nothing is
        taken then). A request larger than the burst is judged against a full bucket.
        """
        now = self._clock()
        with self._lock:
            wait = 0.0
            levels: dict[tuple[str, str], float] = {}
            for device, n in counts.items():
                key = (project, device)
                level = levels[key] = self._level(key, now)
                need = min(float(n), float(self.burst))
                if level < need:
                    wait = max(wait, (need - level) / self.rate)
            if wait > 0:
                return wait
            for device, n in counts.items():
                key = (project, device)
                self._buckets[key] = (levels[key] - n, now)
                self._buckets.move_to_end(key)
            while len(self._buckets) > self._max_devices:
                self._buckets.popitem(last=False)
            return 0.0

    @staticmethod
    def retry_after(wait: float) -> int:
        """``Retry-After`` seconds for a wait (at least 1)."""
        return max(1, math.ceil(wait))
