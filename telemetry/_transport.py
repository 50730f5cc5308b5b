"""The HTTP side of uploads (the one home of httpx): TLS, proxies, timeouts, one POST."""

from __future__ import annotations

import ssl
import threading
import time
from dataclasses import dataclass

import certifi
import httpx

from telemetry._platform import library_version


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
    """The request did not get an answer (connection refused or reset, timeout, TLS, proxy)."""

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(f"{kind}: {detail}")
        self.kind = kind


class Transport:
    """POSTs gzip-encoded JSON bodies to one URL, verifying TLS and honouring proxy variables.

    A request that has no full answer after ``total_timeout`` seconds is aborted by a
    watchdog (a trickling server cannot hold it open); :meth:`cancel` aborts it at once.
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
        self._aborted: str | None = None

    def _new_client(self) -> httpx.Client:
        return httpx.Client(
            verify=tls_context(),
            trust_env=True,
            timeout=httpx.Timeout(self._total_timeout, connect=self._connect_timeout),
            transport=self._transport,
            headers={"User-Agent": f"desktop-telemetry/{library_version()}", "Accept": "*/*"},
        )

    def post_gzip(self, body_gzip: bytes) -> Response:
        """POST one body; raise NetworkError when no full answer arrives in time."""
        with self._lock:
            if self._client is None:
                self._client = self._new_client()
            client = self._client
            self._aborted = None
        deadline = time.monotonic() + self._total_timeout
        watchdog = threading.Timer(self._total_timeout, self._abort, args=(client, "timeout"))
        watchdog.daemon = True
        watchdog.start()
        try:
            with client.stream(
                "POST",
                self.url,
                content=body_gzip,
                headers={"Content-Type": "application/json", "Content-Encoding": "gzip"},
            ) as response:
                chunks: list[bytes] = []
                for chunk in response.iter_bytes():
                    chunks.append(chunk)
                    if time.monotonic() > deadline:
                        raise NetworkError("timeout", "answer not complete within the deadline")
                return Response(
                    response.status_code, b"".join(chunks), response.headers.get("Retry-After")
                )
        except NetworkError:
            self._abort(client, "timeout")
            raise
        except httpx.TimeoutException as exc:
            raise NetworkError("timeout", str(exc) or type(exc).__name__) from exc
        except Exception as exc:  # noqa: BLE001 - any failure of an aborted or broken request
            reason = self._aborted
            if reason is not None:
                raise NetworkError(reason, f"request aborted ({reason})") from exc
            if isinstance(exc, httpx.HTTPError):
                raise NetworkError("network_error", str(exc) or type(exc).__name__) from exc
            raise
        finally:
            watchdog.cancel()

    def _abort(self, client: httpx.Client, reason: str) -> None:
        with self._lock:
            self._aborted = reason
            if self._client is client:
                self._client = None
        client.close()

    def cancel(self) -> None:
        """Abort the request in flight, if any (from any thread)."""
        with self._lock:
            client = self._client
        if client is not None:
            self._abort(client, "cancelled")

    def close(self) -> None:
        """Close the connection pool."""
        self.cancel()
