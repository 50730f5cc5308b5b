"""Background passes of the collector (forwarders, retention): one task per kind, started with
the app and stopped with it (at most 10 s for a pass in progress, then cancelled)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable

__all__ = ["repeating"]

#: Longest wait for a pass in progress when the app stops, in seconds.
STOP_WAIT_SECONDS = 10.0


@contextlib.asynccontextmanager
async def repeating(
    name: str,
    one_pass: Callable[[asyncio.Event], Awaitable[int]],
    *,
    interval: float,
    on_error: Callable[[Exception], None],
    again_while_busy: bool = True,
) -> AsyncIterator[None]:
    """Run ``one_pass(stop)`` in a task named ``name`` while the context is open, every
    ``interval`` seconds (at once again when it returned non-zero work and
    ``again_while_busy``). A pass that raises is handed to ``on_error`` (it must not raise)
    and counts as no work; the next pass comes as usual."""
    stop = asyncio.Event()

    async def loop() -> None:
        while not stop.is_set():
            try:
                busy = await one_pass(stop)
            except Exception as exc:  # noqa: BLE001 - storage down etc.: reported, next pass
                on_error(exc)
                busy = 0
            if not (busy and again_while_busy):
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), interval)

    task = asyncio.create_task(loop(), name=name)
    try:
        yield
    finally:
        stop.set()
        try:
            await asyncio.wait_for(task, STOP_WAIT_SECONDS)
        except (TimeoutError, asyncio.CancelledError):
            task.cancel()
