"""A loopback server speaking Amplitude's HTTP V2 API (``POST /2/httpapi``), for forwarding tests.

It checks what Amplitude checks first (JSON content type, strict JSON: ``NaN``/``Infinity`` make
a 400 "Invalid JSON request body" naming no event, ``api_key``, ``events``), records every
request, and answers what the test's ``decide`` callback says (default: Amplitude's 200 body).
:func:`refuse_unnamed` builds a ``decide`` answering a 400 that names no event, as Amplitude does
for a request it cannot read, whenever the request holds an event the test marks as bad.
"""

from __future__ import annotations

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

from telemetry.collector._server import CollectorServer, bind_socket, socket_url, uvicorn_config


@dataclass
class Received:
    at: float
    api_key: str
    events: list[dict[str, Any]]
    size: int
    status: int = 0

    @property
    def insert_ids(self) -> list[str]:
        return [e["insert_id"] for e in self.events]


Decision = tuple[int, dict[str, str], dict[str, Any]]


def accept(received: Received) -> Decision:
    """Amplitude's success answer."""
    return (
        200,
        {},
        {
            "code": 200,
            "events_ingested": len(received.events),
            "payload_size_bytes": received.size,
            "server_upload_time": int(time.time() * 1000),
        },
    )


def refuse_unnamed(
    bad: Callable[[dict[str, Any]], bool], then: Callable[[Received], Decision] = accept
) -> Callable[[Received], Decision]:
    """A ``decide``: a 400 naming no event while the request holds an event ``bad`` picks."""

    def decide(received: Received) -> Decision:
        if any(bad(e) for e in received.events):
            return (400, {}, {"code": 400, "error": "Invalid JSON request body"})
        return then(received)

    return decide


def _reject_constant(name: str) -> Any:
    raise ValueError(f"not JSON: {name}")


@dataclass
class FakeAmplitude:
    url: str
    requests: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def delivered(self) -> list[str]:
        """insert_ids of every event in requests answered 200, in order."""
        with self.lock:
            return [i for r in self.requests if r.status == 200 for i in r.insert_ids]

    def snapshot(self) -> list[Received]:
        with self.lock:
            return list(self.requests)


@contextmanager
def fake_amplitude(decide: Callable[[Received], Decision] = accept) -> Iterator[FakeAmplitude]:
    """Run the fake on 127.0.0.1 in a thread; yield it (``url`` is its ``/2/httpapi``)."""
    sock = bind_socket("127.0.0.1", 0)
    fake = FakeAmplitude(url=f"{socket_url(sock)}/2/httpapi")

    async def httpapi(request: Request) -> Response:
        raw = await request.body()
        if not request.headers.get("content-type", "").startswith("application/json"):
            return JSONResponse({"code": 400, "error": "Invalid content type"}, status_code=400)
        try:
            body = json.loads(raw, parse_constant=_reject_constant)
        except ValueError:
            return JSONResponse({"code": 400, "error": "Invalid JSON request body"}, 400)
        if not isinstance(body, dict) or "api_key" not in body or "events" not in body:
            return JSONResponse({"code": 400, "error": "Request missing required field"}, 400)
        received = Received(time.monotonic(), body["api_key"], body["events"], len(raw))
        with fake.lock:
            fake.requests.append(received)
        status, headers, answer = decide(received)
        received.status = status
        return JSONResponse(answer, status_code=status, headers=headers)

    app = Starlette(routes=[Route("/2/httpapi", httpapi, methods=["POST"])])
    started = threading.Event()
    server = CollectorServer(uvicorn_config(app, log_config=None), on_started=started.set)
    thread = threading.Thread(target=lambda: server.run(sockets=[sock]), daemon=True)
    thread.start()
    if not started.wait(15):
        raise RuntimeError("fake Amplitude did not start")
    try:
        yield fake
    finally:
        server.should_exit = True
        thread.join(15)
        sock.close()
