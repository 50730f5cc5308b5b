"""Retention: a background task deleting rows older than the configured age (``[retention] days``
or a project's ``retention_days``) in small transactions, so ingest never waits long for them.

Each pass walks the rules of :meth:`CollectorConfig.retention_rules`; for each it calls
:meth:`Storage.purge_expired` (at most ``batch_rows`` rows per transaction) with a pause between
transactions, until nothing older is left; then sleeps ``interval`` seconds. Deleted rows are
counted in ``retention_deleted_rows``; a failure is logged and counted and the next pass tries
again.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Final

from starlette.concurrency import run_in_threadpool

from telemetry.collector._passes import repeating

if TYPE_CHECKING:
    from telemetry.collector._state import CollectorState

__all__ = ["DEFAULT_BATCH_ROWS", "DEFAULT_INTERVAL_SECONDS", "purge_pass", "run_retention"]

logger = logging.getLogger("telemetry.collector.retention")

#: Rows deleted per transaction.
DEFAULT_BATCH_ROWS: Final = 5000
#: Seconds between two delete transactions of a pass (ingest runs in between).
DEFAULT_PAUSE_SECONDS: Final = 0.05
#: Seconds between two passes.
DEFAULT_INTERVAL_SECONDS: Final = 3600.0
_DAY_MS: Final = 24 * 3600 * 1000


async def purge_pass(
    state: CollectorState, *, batch_rows: int, pause: float, stop: asyncio.Event
) -> int:
    """Delete every row older than its rule's age, ``batch_rows`` per transaction, sleeping
    ``pause`` seconds between transactions; return how many rows went."""
    rules = state.config.retention_rules()
    own = [project for project, _ in rules if project is not None]
    total = 0
    for project, days in rules:
        cutoff = state.now_ms() - int(days * _DAY_MS)
        excluded = own if project is None else []
        while not stop.is_set():
            deleted = await run_in_threadpool(
                functools.partial(
                    state.storage.purge_expired,
                    cutoff_ms=cutoff,
                    project=project,
                    excluded=excluded,
                    limit=batch_rows,
                )
            )
            total += deleted
            state.metrics.inc("retention_deleted_rows", deleted)
            if deleted < batch_rows:
                break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), pause)
    return total


@contextlib.asynccontextmanager
async def run_retention(
    state: CollectorState,
    *,
    interval: float = DEFAULT_INTERVAL_SECONDS,
    batch_rows: int = DEFAULT_BATCH_ROWS,
    pause: float = DEFAULT_PAUSE_SECONDS,
) -> AsyncIterator[None]:
    """Run retention passes in a background task while the context is open: one at start, then
    one every ``interval`` seconds."""

    async def one_pass(stop: asyncio.Event) -> int:
        deleted = await purge_pass(state, batch_rows=batch_rows, pause=pause, stop=stop)
        if deleted:
            logger.info("retention deleted %d expired rows", deleted)
        return deleted

    def failed(exc: Exception) -> None:  # storage down etc.: log, count, try again next pass
        state.metrics.inc("retention_failures")
        logger.warning("retention pass failed: %s", exc, exc_info=True)

    async with repeating(
        "collector retention", one_pass, interval=interval, on_error=failed, again_while_busy=False
    ):
        yield
