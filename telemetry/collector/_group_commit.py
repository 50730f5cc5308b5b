"""Group commit: the batches of concurrent ingest requests stored together, one transaction and
one flush to disk for all of them (:class:`GroupCommit`).

A request hands its batch over and waits. When no write is running, the batches waiting (up to
:data:`MAX_GROUP_EVENTS` events) go to :meth:`Storage.insert_batches` in one worker thread; the
batches arriving meanwhile wait for the next group. Each request is answered only once its own
batch is committed, with its own counts, so a client sees exactly what it would see with one
transaction per request; only the number of commits (and fsyncs) changes, which is what an
ingest rate on a durable database is bound by.

A failing group: ``StorageUnavailable`` (the database cannot be written) fails every request of
it (503); any other error (a bug that one batch may trigger) is retried batch by batch, so one
bad batch cannot take the others down with it.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Final

from starlette.concurrency import run_in_threadpool

from telemetry.collector._storage import BatchToStore, InsertResult, Storage, StorageUnavailable

__all__ = ["MAX_GROUP_EVENTS", "GroupCommit"]

logger = logging.getLogger("telemetry.collector")

#: Most events stored in one transaction (a batch larger than this goes alone).
MAX_GROUP_EVENTS: Final = 10_000

_Waiting = tuple[BatchToStore, "asyncio.Future[InsertResult]"]


class GroupCommit:
    """Stores batches for one event loop's requests, grouping those that wait together."""

    def __init__(self, storage: Storage, *, max_group_events: int = MAX_GROUP_EVENTS) -> None:
        self._storage = storage
        self._max_events = max_group_events
        self._waiting: list[_Waiting] = []
        self._writer: asyncio.Task[None] | None = None

    @property
    def waiting(self) -> int:
        """Batches waiting for the write running now to end."""
        return len(self._waiting)

    async def store(self, item: BatchToStore) -> InsertResult:
        """Store ``item`` (with whatever else is waiting) and return its own result once
        committed; raises ``StorageUnavailable`` if its group could not be stored."""
        future: asyncio.Future[InsertResult] = asyncio.get_running_loop().create_future()
        self._waiting.append((item, future))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.get_running_loop().create_task(self._write_all())
        return await future

    def _next_group(self) -> list[_Waiting]:
        """The oldest waiting batches, up to the event budget (at least one batch)."""
        count = 0
        taken = 0
        for item, _ in self._waiting:
            count += len(item.batch.events)
            if taken and count > self._max_events:
                break
            taken += 1
        group, self._waiting = self._waiting[:taken], self._waiting[taken:]
        return group

    async def _write_all(self) -> None:
        """Store groups until nothing waits; answer each waiting request."""
        while self._waiting:
            group = self._next_group()
            outcomes = await self._write([item for item, _ in group])
            for (_, future), outcome in zip(group, outcomes, strict=True):
                if future.done():  # the request went away (cancelled)
                    continue
                if isinstance(outcome, BaseException):
                    future.set_exception(outcome)
                else:
                    future.set_result(outcome)

    async def _write(self, items: list[BatchToStore]) -> list[InsertResult | Exception]:
        """Each item's result or error: one transaction for all; after an error that is not
        the database's, one transaction per item."""
        outcomes: list[InsertResult | Exception] = []
        try:
            outcomes += await run_in_threadpool(self._storage.insert_batches, items)
        except StorageUnavailable as exc:
            return [exc] * len(items)
        except Exception as exc:  # noqa: BLE001 - a bug: answered 503, logged by the route
            if len(items) == 1:
                return [exc]
            logger.warning("storing %d batches together failed; one by one now", len(items))
            for item in items:
                try:
                    outcomes += await run_in_threadpool(self._storage.insert_batches, [item])
                except Exception as single:  # noqa: BLE001 - as above
                    outcomes.append(single)
        return outcomes
