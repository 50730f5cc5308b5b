"""A scriptable HTTP/1.1 server on 127.0.0.1 for delivery tests (real sockets, no mocks).

It stands in front of a real collector: each request takes the next scripted :class:`Action`
(or the default, forwarding to the collector) and is recorded with its timestamps, the answer
given and the events it carried, so tests can count requests, duplicates and gaps.

Actions (build them with the functions below):

* :func:`forward` - pass the request to the upstream collector and relay its answer;
* :func:`status` - answer a status of our choosing (500, 503, 413, 401...) without storing;
* :func:`throttle` - 429 with ``Retry-After``; :func:`reject` - 400 naming invalid indexes;
* :func:`reset` - read part of the request, then reset the connection (RST);
* :func:`store_then` / :func:`store_then_reset` - store upstream, then answer a failure or
  reset: the client must resend, and the collector must store once;
* :func:`hang` - read the request and never answer;
* :func:`trickle` - store upstream, then answer one byte at a time, too slowly to finish.

The server also works as a forward HTTP proxy (absolute-form request targets), can serve TLS,
and can stop listening and listen again on the same port (connection refused meanwhile).
"""

from __future__ import annotations

import contextlib
import gzip
import http.client
import json
import socket
import ssl
import struct
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

__all__ = [
    "Action",
    "FaultServer",
    "RequestRecord",
    "forward",
    "hang",
    "reject",
    "reset",
    "status",
    "store_then",
    "store_then_reset",
    "throttle",
    "trickle",
]

_HOST = "127.0.0.1"
_MAX_HEADER_BYTES = 64 * 1024


@dataclass(frozen=True)
class Action:
    """What the server does with one request."""

    kind: str
    status: int = 200
    body: bytes = b""
    headers: tuple[tuple[str, str], ...] = ()
    after_bytes: int = 0
    interval: float = 0.2
    total_bytes: int = 1000

    def __str__(self) -> str:
        return (
            self.kind if self.kind not in ("status", "store_then") else f"{self.kind}:{self.status}"
        )


def forward() -> Action:
    """Relay to the upstream collector."""
    return Action("forward")


def status(code: int, body: bytes | dict[str, Any] = b"", **headers: str) -> Action:
    """Answer ``code`` (nothing stored); ``headers`` with ``_`` for ``-`` (``Retry_After``)."""
    raw = json.dumps(body).encode() if isinstance(body, dict) else body
    pairs = tuple((k.replace("_", "-"), v) for k, v in headers.items())
    return Action("status", status=code, body=raw, headers=pairs)


def throttle(retry_after: str | None) -> Action:
    """429, with ``Retry-After: retry_after`` unless ``None``."""
    body = {"code": 429, "error": "Too many requests for some devices and users"}
    return status(429, body) if retry_after is None else status(429, body, Retry_After=retry_after)


def reject(indexes: Iterable[int], field_name: str = "event_type") -> Action:
    """400 in Amplitude's shape naming ``indexes`` as invalid (empty: the whole batch)."""
    listed = sorted(indexes)
    body: dict[str, Any] = {"code": 400, "error": "Request missing required field"}
    if listed:
        body["events_with_invalid_fields"] = {field_name: listed}
    return status(400, body)


def reset(after_bytes: int = 0) -> Action:
    """Read the headers and ``after_bytes`` bytes of the body, then reset the connection."""
    return Action("reset", after_bytes=after_bytes)


def store_then(code: int) -> Action:
    """Store upstream, then answer ``code`` anyway (the answer a client must not trust)."""
    return Action("store_then", status=code)


def store_then_reset() -> Action:
    """Store upstream, then reset the connection instead of answering."""
    return Action("store_then_reset")


def hang() -> Action:
    """Read the request, never answer (until the client gives up or the server stops)."""
    return Action("hang")


def trickle(interval: float = 0.2, total_bytes: int = 1000) -> Action:
    """Store upstream, then send a 200 one byte every ``interval`` s (``total_bytes`` body)."""
    return Action("trickle", interval=interval, total_bytes=total_bytes)


@dataclass
class RequestRecord:
    """One request as the server saw it."""

    index: int
    started: float  # the server's clock (time.monotonic()) when the request head arrived
    method: str
    target: str
    headers: dict[str, str]
    action: str
    body: bytes = b""
    ended: float | None = None  # answer sent, connection reset or peer gone
    status: int | None = None  # status answered; None for reset, hang and trickle
    upstream_status: int | None = None  # what the collector answered, when forwarded
    error: str | None = None
    payload: dict[str, Any] | None = None
    response_headers: dict[str, str] = field(default_factory=dict)

    @property
    def events(self) -> list[dict[str, Any]]:
        """The events of the body (empty when it could not be decoded)."""
        events = (self.payload or {}).get("events")
        return events if isinstance(events, list) else []

    @property
    def insert_ids(self) -> list[str]:
        """The ``insert_id`` of every event sent."""
        return [e.get("insert_id") for e in self.events if isinstance(e, dict)]

    @property
    def decoded_size(self) -> int:
        """Size of the JSON body before compression."""
        raw = self.body
        if self.headers.get("content-encoding") == "gzip":
            with contextlib.suppress(OSError, EOFError):
                raw = gzip.decompress(raw)
        return len(raw)

    @property
    def accepted(self) -> bool:
        """The client got a 2xx for this request (it may delete these events)."""
        return self.status is not None and 200 <= self.status < 300


class FaultServer:
    """A threaded HTTP/1.1 server on 127.0.0.1; see the module docstring.

    Args:
        upstream: the collector's base URL (``http://127.0.0.1:PORT``) for forwarding.
        default: the action once the script is used up (default: forward).
        tls: a server-side SSL context to serve HTTPS.
        clock: what :attr:`RequestRecord.started` and ``ended`` are read from (a test that
            runs the client on a :class:`telemetry.testing.FakeClock` passes its
            ``monotonic``, so the request timeline is in the client's time).
    """

    def __init__(
        self,
        upstream: str | None = None,
        *,
        default: Action | None = None,
        tls: ssl.SSLContext | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.upstream = upstream
        self.clock = clock
        self.default = default or forward()
        self._tls = tls
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._script: list[Action] = []
        self._records: list[RequestRecord] = []
        self._stopping = threading.Event()
        self._listener: socket.socket | None = None
        self._accept_thread: threading.Thread | None = None
        self._connections: set[socket.socket] = set()
        self.port: int | None = None
        self.connections_accepted = 0

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> FaultServer:
        """Listen (on the same port as before, after :meth:`stop_listening`)."""
        if self._listener is not None:
            raise RuntimeError("already listening")
        self._stopping.clear()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        deadline = time.monotonic() + 10.0
        while True:
            try:
                sock.bind((_HOST, self.port or 0))
                break
            except OSError:
                if time.monotonic() > deadline:
                    sock.close()
                    raise
                time.sleep(0.05)
        sock.listen(64)
        self.port = sock.getsockname()[1]
        self._listener = sock
        self._accept_thread = threading.Thread(
            target=self._accept_loop, args=(sock,), name=f"fault-server:{self.port}", daemon=True
        )
        self._accept_thread.start()
        return self

    def stop_listening(self, *, drop_connections: bool = True) -> None:
        """Stop accepting (new connections are refused); keep the records and the port."""
        sock, self._listener = self._listener, None
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
        if self._accept_thread is not None:
            self._accept_thread.join(5.0)
            self._accept_thread = None
        if drop_connections:
            self._stopping.set()
            with self._lock:
                conns = list(self._connections)
            for conn in conns:
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)

    def stop(self) -> None:
        """Stop listening and drop every connection (hung handlers end too)."""
        self.stop_listening(drop_connections=True)

    def __enter__(self) -> FaultServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """``http(s)://127.0.0.1:PORT``."""
        if self.port is None:
            raise RuntimeError("never started")
        return f"{'https' if self._tls else 'http'}://{_HOST}:{self.port}"

    # ------------------------------------------------------------------ script and records

    def script(self, *actions: Action) -> None:
        """Queue actions for the next requests, in order."""
        with self._lock:
            self._script.extend(actions)

    @property
    def script_left(self) -> int:
        """Scripted actions not used yet."""
        with self._lock:
            return len(self._script)

    @property
    def requests(self) -> list[RequestRecord]:
        """Every request so far, in arrival order."""
        with self._lock:
            return list(self._records)

    def wait_for(self, predicate: Callable[[list[RequestRecord]], bool], timeout: float) -> bool:
        """Wait (bounded) until ``predicate(requests)`` holds; returns whether it did."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while not predicate(list(self._records)):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._changed.wait(min(remaining, 0.1))
            return True

    def sent_counts(self) -> Counter[str]:
        """How many requests carried each insert_id (resends included)."""
        return Counter(i for r in self.requests for i in r.insert_ids)

    def accepted_counts(self) -> Counter[str]:
        """How many 2xx-answered requests carried each insert_id (should be 1 each)."""
        return Counter(i for r in self.requests if r.accepted for i in r.insert_ids)

    # ------------------------------------------------------------------ serving

    def _accept_loop(self, listener: socket.socket) -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            self.connections_accepted += 1
            threading.Thread(
                target=self._serve_connection, args=(conn,), name="fault-conn", daemon=True
            ).start()

    def _serve_connection(self, raw: socket.socket) -> None:
        conn = raw
        with self._lock:
            self._connections.add(raw)
        try:
            if self._tls is not None:
                raw.settimeout(10.0)
                conn = self._tls.wrap_socket(raw, server_side=True)
                with self._lock:
                    self._connections.add(conn)
            conn.settimeout(None)
            reader = _Reader(conn)
            while not self._stopping.is_set():
                if not self._serve_one(conn, reader):
                    return
        except (OSError, ssl.SSLError, ValueError):
            return
        finally:
            with self._lock:
                self._connections.discard(raw)
                self._connections.discard(conn)
            with contextlib.suppress(OSError):
                conn.close()

    def _next_action(self) -> Action:
        with self._lock:
            return self._script.pop(0) if self._script else self.default

    def _serve_one(self, conn: socket.socket, reader: _Reader) -> bool:
        """Handle one request; False when the connection must end."""
        head = reader.read_head()
        if head is None:
            return False
        started = self.clock()
        lines = head.decode("latin-1").split("\r\n")
        method, target, _ = lines[0].split(" ", 2)
        headers: dict[str, str] = {}
        for line in lines[1:]:
            if ":" in line:
                name, value = line.split(":", 1)
                headers[name.strip().lower()] = value.strip()
        action = self._next_action()
        with self._changed:
            record = RequestRecord(
                len(self._records), started, method, target, headers, str(action)
            )
            self._records.append(record)
            self._changed.notify_all()
        length = int(headers.get("content-length", "0") or 0)
        try:
            if action.kind == "reset":
                record.body = reader.read_exact(min(action.after_bytes, length))
                _reset(conn)
                record.error = "reset by server"
                return False
            record.body = reader.read_exact(length)
            record.payload = _decode(record.body, headers)
            return self._act(conn, action, record)
        finally:
            record.ended = self.clock()
            with self._changed:
                self._changed.notify_all()

    def _act(self, conn: socket.socket, action: Action, record: RequestRecord) -> bool:
        kind = action.kind
        if kind == "status":
            record.status = action.status
            record.response_headers = {k.lower(): v for k, v in action.headers}
            _respond(conn, action.status, action.body, action.headers)
            return True
        if kind == "hang":
            record.error = "never answered"
            _wait_until_closed(conn, self._stopping)
            return False
        upstream = self._forward(record)
        if upstream is None:
            record.status = 502
            _respond(conn, 502, b'{"code":502,"error":"upstream unavailable"}', ())
            return True
        code, body, headers = upstream
        record.upstream_status = code
        if kind == "forward":
            record.status = code
            record.response_headers = {k.lower(): v for k, v in headers}
            _respond(conn, code, body, headers)
            return True
        if kind == "store_then":
            record.status = action.status
            _respond(conn, action.status, b'{"code":%d}' % action.status, ())
            return True
        if kind == "store_then_reset":
            _reset(conn)
            record.error = "reset by server after storing"
            return False
        if kind == "trickle":
            record.error = "trickled"
            payload = b"x" * action.total_bytes
            head = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
            data = head + b"Content-Length: %d\r\n\r\n" % len(payload) + payload
            for i in range(len(data)):
                if self._stopping.wait(action.interval):
                    return False
                try:
                    conn.sendall(data[i : i + 1])
                except OSError:
                    record.error = "trickled; client gave up"
                    return False
            return False
        raise ValueError(f"unknown action {kind!r}")

    def _forward(
        self, record: RequestRecord
    ) -> tuple[int, bytes, tuple[tuple[str, str], ...]] | None:
        if self.upstream is None:
            return 200, b'{"code":200}', ()
        base = urlsplit(self.upstream)
        path = urlsplit(record.target).path or "/"
        headers = {
            k: v
            for k, v in record.headers.items()
            if k in ("content-type", "content-encoding", "user-agent")
        }
        conn = http.client.HTTPConnection(base.hostname or _HOST, base.port, timeout=30)
        try:
            conn.request(record.method, path, body=record.body, headers=headers)
            response = conn.getresponse()
            body = response.read()
            extra = tuple((k, v) for k, v in response.getheaders() if k.lower() in ("retry-after",))
            return response.status, body, (("Content-Type", "application/json"), *extra)
        except OSError as exc:
            record.error = f"upstream: {exc}"
            return None
        finally:
            conn.close()


class _Reader:
    """Buffered reads from a socket (HTTP heads and exact-size bodies)."""

    def __init__(self, conn: socket.socket) -> None:
        self._conn = conn
        self._buffer = b""

    def read_head(self) -> bytes | None:
        while b"\r\n\r\n" not in self._buffer:
            if len(self._buffer) > _MAX_HEADER_BYTES:
                return None
            chunk = self._conn.recv(65536)
            if not chunk:
                return None
            self._buffer += chunk
        head, self._buffer = self._buffer.split(b"\r\n\r\n", 1)
        return head

    def read_exact(self, size: int) -> bytes:
        while len(self._buffer) < size:
            chunk = self._conn.recv(max(65536, size - len(self._buffer)))
            if not chunk:
                break
            self._buffer += chunk
        data, self._buffer = self._buffer[:size], self._buffer[size:]
        return data


def _decode(body: bytes, headers: dict[str, str]) -> dict[str, Any] | None:
    try:
        raw = gzip.decompress(body) if headers.get("content-encoding") == "gzip" else body
        data = json.loads(raw)
    except (OSError, EOFError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _respond(
    conn: socket.socket, code: int, body: bytes, headers: Iterable[tuple[str, str]]
) -> None:
    reason = http.client.responses.get(code, "Status")
    lines = [f"HTTP/1.1 {code} {reason}", f"Content-Length: {len(body)}"]
    names = set()
    for name, value in headers:
        lines.append(f"{name}: {value}")
        names.add(name.lower())
    if "content-type" not in names:
        lines.append("Content-Type: application/json")
    conn.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)


def _reset(conn: socket.socket) -> None:
    """Close with RST (SO_LINGER 0), as a crashing server or middlebox would."""
    with contextlib.suppress(OSError):
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    with contextlib.suppress(OSError):
        conn.close()


def _wait_until_closed(conn: socket.socket, stopping: threading.Event) -> None:
    """Hold the connection open without answering until the peer closes or we stop."""
    conn.settimeout(0.1)
    while not stopping.is_set():
        try:
            if not conn.recv(65536):
                return
        except TimeoutError:
            continue
        except OSError:
            return
