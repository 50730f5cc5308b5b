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
import struct
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
#: A slot: key (unsigned; 0 marks a free slot), then its bucket: tokens, time of the last take.
_SLOT: Final = struct.Struct("=Qdd")
_KEY: Final = struct.Struct("=Q")
_BUCKET: Final = struct.Struct("=dd")
_SET: Final = struct.Struct("=" + "Qdd" * _WAYS)
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
        size = self._sets * _SET.size
        region: Region = (
            local_region(size) if shared is None else shared.region(f"ratelimit:{name}", size)
        )
        self._lock = region.lock
        self._memory = region.memory

    def take(self, project: str, counts: Mapping[str, int]) -> float:
        """Take ``counts[device]`` tokens from every device's bucket, all or nothing.

        Returns 0 when taken, else the seconds to wait until all of them would fit (nothing is
        taken then). A request larger than the burst is judged against a full bucket.
        """
        needs: dict[int, int] = {}
        for device, n in counts.items():
            key = hash((project, device)) & _KEY_MASK or 1
            needs[key] = needs.get(key, 0) + n
        burst, rate, memory, sets = float(self.burst), self.rate, self._memory, self._sets
        with self._lock:
            now = self._clock()
            wait = 0.0
            found: list[tuple[int, int, int, float]] = []  # key, n, slot offset or -1, level
            for key, n in needs.items():
                start = (key % sets) * _SET.size
                words = _SET.unpack_from(memory, start)
                try:
                    way = words[0::3].index(key)
                except ValueError:  # not tracked: a full bucket
                    found.append((key, n, -1, burst))
                    level = burst
                else:
                    tokens, at = words[3 * way + 1], words[3 * way + 2]
                    level = min(burst, tokens + max(0.0, now - at) * rate)
                    found.append((key, n, start + way * _SLOT.size, level))
                need = min(float(n), burst)
                if level < need:
                    wait = max(wait, (need - level) / rate)
            if wait > 0:
                return wait
            taken = {offset for _, _, offset, _ in found if offset >= 0}
            for key, n, offset, level in found:
                if offset < 0:
                    offset = self._claim(key, now, taken)
                    if offset < 0:  # every slot of its set holds this request's devices
                        continue
                    taken.add(offset)
                    _KEY.pack_into(memory, offset, key)
                _BUCKET.pack_into(memory, offset + _KEY.size, level - n, now)
            return 0.0

    def _claim(self, key: int, now: float, taken: set[int]) -> int:
        """The offset of a slot for the new device ``key`` in its set: a free one, else the one
        whose bucket is fullest now (not one of ``taken``); -1 if every slot is taken."""
        start = (key % self._sets) * _SET.size
        words = _SET.unpack_from(self._memory, start)
        best, best_level = -1, -math.inf
        for way in range(_WAYS):
            offset = start + way * _SLOT.size
            if offset in taken:
                continue
            if words[3 * way] == 0:
                return offset
            tokens, at = words[3 * way + 1], words[3 * way + 2]
            level = min(float(self.burst), tokens + max(0.0, now - at) * self.rate)
            if level >= self.burst:  # full: forgetting it changes no answer
                return offset
            if level > best_level:
                best, best_level = offset, level
        return best

    @staticmethod
    def retry_after(wait: float) -> int:
        """``Retry-After`` seconds for a wait (at least 1)."""
        return max(1, math.ceil(wait))
