"""The HTTP side of uploads (the one home of httpx): TLS, proxies, timeouts, one POST."""

from __future__ import annotations

import contextlib
import ssl
import threading
import time
from dataclasses import dataclass, field
from typing import Final

import certifi
import httpx

from telemetry._platform import library_version

#: Answers longer than this are cut (the uploader reads only small JSON bodies).
MAX_RESPONSE_BYTES: Final = 1024 * 1024


def tls_context() -> ssl.SSLContext:
    """A verifying TLS context: the system's trust store (which honours ``SSL_CERT_FILE`` and
    ``SSL_CERT_DIR``, so corporate roots work) plus certifi's bundle as a fallback."""
    context = ssl.create_default_context()
    context.load_verify_locations(cafile=certifi.where())
    return context


@dataclass(frozen=True, slots=True)
class Response:
    """What the uploader needs from an answer."""

    status: int
    body: bytes
    retry_after: str | None


class NetworkError(Exception):
    """The request did not get an answer.

    ``kind`` is ``connect_error`` (refused, unreachable, DNS, TLS or proxy failure before the
    request went out), ``network_error`` (the connection broke mid-request), ``timeout`` (no
    full answer within the deadline) or ``cancelled`` (aborted by :meth:`Transport.cancel`).
    """

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(f"{kind}: {detail}")
        self.kind = kind


@dataclass(slots=True)
class _Request:
    url: str
    done: threading.Event = field(default_factory=threading.Event)
    outcome: Response | NetworkError | None = None
    cancelled: bool = False


class Transport:
    """POSTs gzip-encoded JSON bodies to one URL, verifying TLS and honouring proxy variables.

    Each request runs on its own short-lived daemon thread while the caller waits at most
    ``total_timeout`` seconds for it. Nothing can hold the caller longer: not a server that
    never answers or trickles bytes (httpx's timeouts are per read), not a slow DNS lookup
    (which no socket timeout covers). :meth:`cancel` releases the caller at once. An abandoned
    request's connection is closed; its thread ends at its next read or its read timeout.
    """

    def __init__(
        self,
        url: str,
        *,
        connect_timeout: float,
        total_timeout: float,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.url = url
        self._connect_timeout = connect_timeout
        self._total_timeout = total_timeout
        self._transport = transport
        self._lock = threading.Lock()
        self._client: httpx.Client | None = None
        self._inflight: _Request | None = None

    def _new_client(self) -> httpx.Client:
        return httpx.Client(
            verify=tls_context(),
            trust_env=True,
            timeout=httpx.Timeout(self._total_timeout, connect=self._connect_timeout),
            transport=self._transport,
            headers={"User-Agent": f"desktop-telemetry/{library_version()}", "Accept": "*/*"},
        )

    def post_gzip(
        self,
        body_gzip: bytes,
        *,
        give_up_after: float | None = None,
        url: str | None = None,
        gzipped: bool = True,
    ) -> Response:
        """POST one JSON body; raise NetworkError when no full answer arrives in time.

        ``give_up_after``: abandon the request after this many seconds if that is sooner
        than ``total_timeout`` (raised as ``cancelled``; used while shutting down).
        ``url``: another URL than the upload URL (the deletion request); ``gzipped``: False
        for a plain JSON body.
        """
        limit = self._total_timeout
        if give_up_after is not None and give_up_after < limit:
            limit = max(0.0, give_up_after)
        request = _Request(url or self.url)
        with self._lock:
            if self._client is None:
                self._client = self._new_client()
            client = self._client
            self._inflight = request
        worker = threading.Thread(
            target=self._perform,
            args=(client, body_gzip, request, gzipped),
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
        if request.cancelled or limit < self._total_timeout:
            raise NetworkError("cancelled", "request aborted")
        raise NetworkError("timeout", f"no full answer within {self._total_timeout:g} s")

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
                    response.headers.get("Retry-After"),
                )
        except httpx.TimeoutException as exc:
            request.outcome = NetworkError("timeout", str(exc) or type(exc).__name__)
        except (httpx.ConnectError, httpx.ProxyError, httpx.UnsupportedProtocol) as exc:
            request.outcome = NetworkError("connect_error", str(exc) or type(exc).__name__)
        except Exception as exc:  # noqa: BLE001 - any other failure is a broken request
            request.outcome = NetworkError("network_error", str(exc) or type(exc).__name__)
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
