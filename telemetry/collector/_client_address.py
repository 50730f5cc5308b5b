"""Keeping the sender's IP address away from the routes: :class:`ForgetClientAddress`."""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

__all__ = ["ForgetClientAddress"]


class ForgetClientAddress:
    """ASGI middleware that moves the peer address out of the scope before any route sees it.

    The collector never stores or logs the sender's IP; dropping it here makes sure no handler,
    error page or log line can pick it up by accident. Only the link tracker needs it (to store
    a *masked* address, as Barnebys does); it reads it from ``scope["state"]``.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            client = scope.get("client")
            scope = dict(scope)
            scope["client"] = None
            state = dict(scope.get("state") or {})
            state["peer_host"] = client[0] if client else None
            scope["state"] = state
        await self.app(scope, receive, send)
