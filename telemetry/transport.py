"""HTTP for the uploader and the collector's forwarder: the one module that imports httpx.

* :class:`HttpTransport` posts the uploader's batches (TLS verified against the system's trust
  store plus certifi, proxy variables honoured, a hard deadline per request, cancellable from
  any thread). It implements :class:`Destination`, the small interface the uploader sends
  through; :class:`telemetry.testing.RecordingDestination` is another one.
* :class:`AsyncHttpClient` posts the collector's forwarded batches from its event loop.

Both return a :class:`Response` and raise :class:`~telemetry.errors.TransportError` (never an
httpx exception) when no full answer came.

Importing this module imports httpx, which is slow: ``import telemetry`` does not import it.
The uploader imports it on its own thread, when it first needs the network.
"""

from __future__ import annotations

import contextlib
import ssl
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Final, Protocol

import certifi
import httpx

from telemetry._platform import library_version
from telemetry.errors import TransportError

__all__ = [
    "MAX_RESPONSE_BYTES",
    "AsyncHttpClient",
    "Destination",
    "HttpTransport",
    "Response",
    "TransportError",
    "tls_context",
]

#: The uploader reads at most this much of an answer (it only needs small JSON bodies).
MAX_RESPONSE_BYTES: Final = 1024 * 1024


def tls_context() -> ssl.SSLContext:
    """A verifying TLS context: the system's trust store (which honours ``SSL_CERT_FILE`` and
    ``SSL_CERT_DIR``, so corporate roots work) plus certifi's bundle as a fallback."""
    context = ssl.create_default_context()
    context.load_verify_locations(cafile=certifi.where())
    return context


@dataclass(frozen=True, slots=True)
class Response:
    """An answer: its status, its body (possibly cut at :data:`MAX_RESPONSE_BYTES`) and its
    headers, names in lower case."""

    status: int
    body: bytes = b""
    headers: Mapping[str, str] = field(default_factory=dict)

    def header(self, name: str) -> str | None:
        """The value of header ``name`` (any case), or None."""
        return self.headers.get(name.lower())


class Destination(Protocol):
    """Where the uploader sends: one blocking POST at a time, cancellable from another thread.

    ``post`` sends ``body`` (gzip-encoded JSON when ``gzipped``, else plain JSON) to ``url``
    and returns the answer, or raises :class:`~telemetry.errors.TransportError` when none
    came. ``give_up_after``: seconds after which to abandon the request (raised as
    ``cancelled``) if that is sooner than the destination's own deadline. ``cancel`` aborts
    the request in flight (only one to ``url`` when given); ``close`` releases connections.
    """

    def post(
        self, url: str, body: bytes, *, gzipped: bool = True, give_up_after: float | None = None
    ) -> Response: ...

    def cancel(self, url: str | None = None) -> None: ...

    def close(self) -> None: ...


def _error(exc: Exception) -> TransportError:
    """The :class:`TransportError` for an exception raised while a request was under way."""
    detail = str(exc) or type(exc).__name__
    if isinstance(exc, httpx.TimeoutException):
        return TransportError("timeout", detail)
    if isinstance(exc, httpx.ConnectError | httpx.ProxyError | httpx.UnsupportedProtocol):
        return TransportError("connect_error", detail)
    return TransportError("network_error", detail)


def _headers(response: httpx.Response) -> dict[str, str]:
    return {name.lower(): value for name, value in response.headers.items()}


@dataclass(slots=True)
class _Request:
    url: str
    done: threading.Event = field(default_factory=threading.Event)
    outcome: Response | TransportError | None = None
    cancelled: bool = False


class HttpTransport:
    """POSTs JSON bodies, verifying TLS and honouring the proxy variables (a :class:`Destination`).

    Each request runs on its own short-lived daemon thread while the caller waits at most
    ``total_timeout`` seconds for it. Nothing can hold the caller longer: not a server that
    never answers or trickles bytes (httpx's timeouts are per read), not a slow DNS lookup
    (which no socket timeout covers). :meth:`cancel` releases the caller at once. An abandoned
    request's connection is closed; its thread ends at its next read or its read timeout.

    ``transport``: an httpx transport to send through instead of the network (tests).
    """

    def __init__(
        self,
        *,
        connect_timeout: float = 10.0,
        total_timeout: float = 30.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.connect_timeout = connect_timeout
        self.total_timeout = total_timeout
        self._transport = transport
        self._lock = threading.Lock()
        self._client: httpx.Client | None = None
        self._inflight: _Request | None = None

    def _new_client(self) -> httpx.Client:
        return httpx.Client(
            verify=tls_context(),
            trust_env=True,
            timeout=httpx.Timeout(self.total_timeout, connect=self.connect_timeout),
            transport=self._transport,
            headers={"User-Agent": f"desktop-telemetry/{library_version()}", "Accept": "*/*"},
        )

    def post(
        self, url: str, body: bytes, *, gzipped: bool = True, give_up_after: float | None = None
    ) -> Response:
        """POST one JSON body; raise TransportError when no full answer arrives in time."""
        limit = self.total_timeout
        if give_up_after is not None and give_up_after < limit:
            limit = max(0.0, give_up_after)
        request = _Request(url)
        with self._lock:
            if self._client is None:
                self._client = self._new_client()
            client = self._client
            self._inflight = request
        worker = threading.Thread(
            target=self._perform,
            args=(client, body, request, gzipped),
            name="telemetry-upload-request",
            daemon=True,
        )
        try:
            worker.start()
            request.done.wait(limit)
        finally:
            with self._lock:
                self._inflight = None
        outcome = request.outcome
        if isinstance(outcome, Response):
            return outcome
        self._drop(client)  # a failed connection is not reused; proxy or CA changes apply
        if outcome is not None and not request.cancelled:
            raise outcome
        if request.cancelled or limit < self.total_timeout:
            raise TransportError("cancelled", "request aborted")
        raise TransportError("timeout", f"no full answer within {self.total_timeout:g} s")

    def _perform(self, client: httpx.Client, body: bytes, request: _Request, gzipped: bool) -> None:
        # When the batch left, by the client's clock: lets the collector correct clock skew.
        headers = {
            "Content-Type": "application/json",
            "X-Client-Upload-Time": str(time.time_ns() // 1_000_000),
        }
        if gzipped:
            headers["Content-Encoding"] = "gzip"
        try:
            with client.stream("POST", request.url, content=body, headers=headers) as response:
                chunks: list[bytes] = []
                size = 0
                for chunk in response.iter_bytes():
                    chunks.append(chunk)
                    size += len(chunk)
                    if size >= MAX_RESPONSE_BYTES:
                        break
                request.outcome = Response(
                    response.status_code,
                    b"".join(chunks)[:MAX_RESPONSE_BYTES],
                    _headers(response),
                )
        except Exception as exc:  # noqa: BLE001 - every failure is reported as TransportError
            request.outcome = _error(exc)
        finally:
            request.done.set()

    def _drop(self, client: httpx.Client) -> None:
        with self._lock:
            if self._client is client:
                self._client = None
        with contextlib.suppress(Exception):  # closing a broken pool must not raise
            client.close()

    def cancel(self, url: str | None = None) -> None:
        """Abort the request in flight, if any (from any thread); with ``url``, only a request
        to that URL."""
        with self._lock:
            request = self._inflight
        if request is not None and (url is None or request.url == url):
            request.cancelled = True
            request.done.set()

    def close(self) -> None:
        """Abort the request in flight and close the connection pool."""
        self.cancel()
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            self._drop(client)


class AsyncHttpClient:
    """An asyncio HTTP client for the collector's forwarder (an ``async with`` context).

    No redirects are followed; proxy variables are ignored unless ``trust_env``.
    """

    def __init__(self, *, trust_env: bool = False) -> None:
        self._client = httpx.AsyncClient(follow_redirects=False, trust_env=trust_env)

    async def post(
        self, url: str, body: bytes, *, headers: Mapping[str, str], timeout: float
    ) -> Response:
        """POST ``body``; raise TransportError when no full answer came within ``timeout``."""
        try:
            response = await self._client.post(
                url, content=body, headers=dict(headers), timeout=timeout
            )
        except httpx.HTTPError as exc:
            raise _error(exc) from exc
        return Response(response.status_code, response.content, _headers(response))

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._client.aclose()

    async def __aenter__(self) -> AsyncHttpClient:
        await self._client.__aenter__()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self._client.__aexit__(exc_type, exc, traceback)
