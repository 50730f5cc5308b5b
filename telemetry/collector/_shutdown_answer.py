"""The answer to a request the server's shutdown cuts short: :class:`AnswerCutRequests`.

On SIGTERM uvicorn stops accepting connections and gives the requests under way a grace period
(``timeout_graceful_shutdown`` in ``_server``); the tasks still running after it are cancelled.
uvicorn answers a cancelled request that had not started its response with a 500 and logs the
cancellation with a traceback, as if the application had failed. Stopping is normal, and the
collector promises no 5xx but its documented 503s: this middleware turns that cancellation into
503 with ``Retry-After`` and ``Connection: close`` (the client sends the request again later, to
this collector once it is back or to another one), logged on one line.

Where the cancellation lands does not matter: while the body is still being received, or while
the batch is written in a worker thread (the thread finishes on its own; if it commits, the
client's resend is deduplicated). A response already started is left alone (the cancellation
goes on to uvicorn, which closes the connection), and so is any scope other than HTTP (the
lifespan's cancellation is the server's own business).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from telemetry.collector._responses import stopping

__all__ = ["AnswerCutRequests"]

logger = logging.getLogger("telemetry.collector")


class AnswerCutRequests:
    """ASGI middleware answering 503 (not uvicorn's 500) to an HTTP request whose task the
    server cancels before a response started; see the module docstring."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def watched_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, watched_send)
        except asyncio.CancelledError:
            if started:
                raise
            logger.info("the collector is stopping: a request cut short was answered 503")
            await _answer_stopping(scope, receive, send)


async def _answer_stopping(scope: Scope, receive: Receive, send: Send) -> None:
    """Send the 503; a connection already closed (or the client gone) is no error here."""
    with contextlib.suppress(Exception):
        await stopping()(scope, receive, send)
