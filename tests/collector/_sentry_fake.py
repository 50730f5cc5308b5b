"""A loopback server speaking Sentry's envelope API (``POST /api/<id>/envelope/``), for the
report forwarding tests.

It checks what Sentry checks first (the project id in the path, ``X-Sentry-Auth`` with
``sentry_version=7`` and the right ``sentry_key``: else 403 and nothing recorded), parses the
envelope (gzip accepted), records every envelope it was sent, and answers what the test's
``decide`` callback says (default: Sentry's ``200 {"id": ...}``).
"""

from __future__ import annotations

import gzip
import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from telemetry.collector._envelope import parse_envelope
from telemetry.collector._server import CollectorServer, bind_socket, socket_url, uvicorn_config


@dataclass
class Received:
    project_id: str
    auth: dict[str, str]
    header: dict[str, Any]
    events: list[dict[str, Any]]
    raw: bytes
    at: float
    status: int = 0

    @property
    def event_id(self) -> str:
        return str(self.events[0]["event_id"])


Decision = tuple[int, dict[str, str]]


def accept(received: Received) -> Decision:
    return 200, {}


@dataclass
class FakeSentry:
    host: str
    project_id: int
    key: str
    requests: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def dsn(self) -> str:
        return f"http://{self.key}@{self.host}/{self.project_id}"

    def delivered(self) -> list[str]:
        """Event ids of every envelope answered 200, in order."""
        with self.lock:
            return [r.event_id for r in self.requests if r.status == 200]

    def snapshot(self) -> list[Received]:
        with self.lock:
            return list(self.requests)


def _auth(value: str) -> dict[str, str]:
    text = value.strip()
    if not text.startswith("Sentry "):
        return {}
    pairs = (part.strip().partition("=") for part in text[7:].split(","))
    return {name: val for name, _, val in pairs}


@contextmanager
def fake_sentry(
    decide: Callable[[Received], Decision] = accept,
    *,
    project_id: int = 42,
    key: str = "fwd-public-key-9c1",
) -> Iterator[FakeSentry]:
    """Run the fake on 127.0.0.1 in a thread; yield it (``dsn`` points at it)."""
    sock = bind_socket("127.0.0.1", 0)
    fake = FakeSentry(host=socket_url(sock).removeprefix("http://"), project_id=project_id, key=key)

    async def envelope(request: Request) -> Response:
        if request.path_params["project"] != str(project_id):
            return JSONResponse({"detail": "project not found"}, status_code=404)
        auth = _auth(request.headers.get("x-sentry-auth", ""))
        if auth.get("sentry_key") != key or auth.get("sentry_version") != "7":
            return JSONResponse({"detail": "bad auth"}, status_code=403)
        raw = await request.body()
        if request.headers.get("content-encoding") == "gzip":
            raw = gzip.decompress(raw)
        parsed = parse_envelope(raw)
        events = [json.loads(i.payload) for i in parsed.items if i.type == "event"]
        received = Received(str(project_id), auth, parsed.header, events, raw, time.monotonic())
        status, headers = decide(received)
        received.status = status
        with fake.lock:
            fake.requests.append(received)
        body = {"id": received.event_id} if status == 200 else {"detail": "refused"}
        return JSONResponse(body, status_code=status, headers=headers)

    app = Starlette(routes=[Route("/api/{project}/envelope/", envelope, methods=["POST"])])
    started = threading.Event()
    server = CollectorServer(uvicorn_config(app, log_config=None), on_started=started.set)
    thread = threading.Thread(target=lambda: server.run(sockets=[sock]), daemon=True)
    thread.start()
    if not started.wait(15):
        raise RuntimeError("fake Sentry did not start")
    try:
        yield fake
    finally:
        server.should_exit = True
        thread.join(15)
        sock.close()
