"""Per-device rate limiting: a token bucket per (project, device id), in a fixed-size table that
the worker processes share.

The table is set-associative: a device's 64-bit key (Python's ``hash`` of project and device id:
keyed at random per collector run, and the same in the workers, which are forked) picks a
set of ``_WAYS`` slots, and the device's bucket is the slot holding that key (the whole key is
stored and compared, so two devices share a bucket only if their 64-bit keys are equal). A new
device takes a free slot of its set, else the slot whose bucket is fullest now: a full bucket is
forgotten without changing any answer, and any forgotten device starts again with a full bucket,
which errs on the side of accepting. A slot is (key, tokens, time of the last take), written
key first, so a worker killed mid-update at worst leaves a bucket fuller than it should be.

With ``--workers`` the table lives in :class:`~telemetry.collector._shared_memory.SharedMemory`
and its lock is held across processes, so a device's requests draw from one bucket whichever
worker takes them: the answers are those of one process. The clock (``time.monotonic``) is
system-wide, so times written by one worker are comparable in another.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from typing import Final

from telemetry.collector._shared_memory import Region, SharedMemory, local_region

__all__ = ["DeviceRateLimiter"]

#: Most devices tracked at once; the fullest buckets are forgotten first (a forgotten device
#: starts again with a full bucket, which errs on the side of accepting).
MAX_TRACKED_DEVICES: Final = 100_000
#: Slots per set of the table (a device may only sit in its set's slots).
_WAYS: Final = 8
#: 64-bit words per slot: key (unsigned), tokens (float), time of the last take (float).
_WORDS: Final = 3
_KEY_MASK: Final = (1 << 64) - 1


class DeviceRateLimiter:
    """Token buckets refilled at ``rate`` events/s up to ``burst`` events, one per device.

    ``shared`` and ``name``: the table is the region ``ratelimit:NAME`` of that shared memory
    (one per limiter: the collector's worker processes then share its buckets); without it the
    table is this process's own.
    """

    def __init__(
        self,
        rate: float,
        burst: int,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_devices: int = MAX_TRACKED_DEVICES,
        shared: SharedMemory | None = None,
        name: str = "",
    ) -> None:
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._sets = max(1, -(-max_devices // _WAYS))
        size = self._sets * _WAYS * _WORDS * 8
        region: Region = (
            local_region(size) if shared is None else shared.region(f"ratelimit:{name}", size)
        )
        self._lock = region.lock
        self._keys = region.memory.cast("Q")
        self._floats = region.memory.cast("d")

    def take(self, project: str, counts: Mapping[str, int]) -> float:
        """Take ``counts[device]`` tokens from every device's bucket, all or nothing.

        Returns 0 when taken, else the seconds to wait until all of them would fit (nothing is
        taken then). A request larger than the burst is judged against a full bucket.
        """
        needs: dict[int, int] = {}
        for device, n in counts.items():
            key = hash((project, device)) & _KEY_MASK or 1
            needs[key] = needs.get(key, 0) + n
        burst = float(self.burst)
        with self._lock:
            now = self._clock()
            wait = 0.0
            found: dict[int, tuple[int, float]] = {}
            for key, n in needs.items():
                slot = self._find(key)
                level = burst if slot < 0 else self._level(slot, now)
                found[key] = (slot, level)
                need = min(float(n), burst)
                if level < need:
                    wait = max(wait, (need - level) / self.rate)
            if wait > 0:
                return wait
            taken = {slot for slot, _ in found.values() if slot >= 0}
            for key, n in needs.items():
                slot, level = found[key]
                if slot < 0:
                    slot = self._claim(key, now, taken)
                    if slot < 0:  # every slot of its set holds this request's devices
                        continue
                    taken.add(slot)
                    self._keys[slot * _WORDS] = key
                self._floats[slot * _WORDS + 1] = level - n
                self._floats[slot * _WORDS + 2] = now
            return 0.0

    def _first_slot(self, key: int) -> int:
        return (key % self._sets) * _WAYS

    def _find(self, key: int) -> int:
        """The slot holding ``key``, or -1."""
        first = self._first_slot(key)
        keys = self._keys[first * _WORDS : (first + _WAYS) * _WORDS : _WORDS].tolist()
        try:
            return first + keys.index(key)
        except ValueError:
            return -1

    def _level(self, slot: int, now: float) -> float:
        tokens = self._floats[slot * _WORDS + 1]
        at = self._floats[slot * _WORDS + 2]
        return min(float(self.burst), tokens + max(0.0, now - at) * self.rate)

    def _claim(self, key: int, now: float, taken: set[int]) -> int:
        """A slot for the new device ``key`` in its set: a free one, else the one whose bucket
        is fullest now (not one of ``taken``); -1 if every slot is taken."""
        first = self._first_slot(key)
        best, best_level = -1, -math.inf
        for slot in range(first, first + _WAYS):
            if slot in taken:
                continue
            if self._keys[slot * _WORDS] == 0:
                return slot
            level = self._level(slot, now)
            if level >= self.burst:  # full: forgetting it changes no answer
                return slot
            if level > best_level:
                best, best_level = slot, level
        return best

    @staticmethod
    def retry_after(wait: float) -> int:
        """``Retry-After`` seconds for a wait (at least 1)."""
        return max(1, math.ceil(wait))
