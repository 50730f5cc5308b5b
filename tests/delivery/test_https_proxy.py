"""HTTPS through a corporate proxy: ``HTTPS_PROXY`` makes the client open a ``CONNECT`` tunnel,
TLS is verified end to end through it (the proxy sees only ciphertext), a proxy that refuses
the tunnel loses nothing, and ``NO_PROXY`` keeps listed hosts direct. All on 127.0.0.1."""

from __future__ import annotations

import contextlib
import select
import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests._fixtures import RunningCollector
from tests.delivery._support import (
    assert_exactly_once,
    make_client,
    prefill,
    uploader_of,
    wait_until,
)
from tests.delivery._tls import make_certificates
from tests.delivery.fault_server import FaultServer

#: Resolves nowhere (RFC 6761): only the proxy can reach it.
HOST = "collector.invalid"


class ConnectProxy:
    """A forward proxy on 127.0.0.1 that only tunnels (``CONNECT host:port``).

    ``routes`` maps ``host:port`` to the local address the tunnel really opens, standing in for
    the proxy's own DNS. Each tunnel is recorded with its target and the first bytes the client
    sent through it. ``refuse`` makes it answer ``403`` instead of opening tunnels.
    """

    def __init__(self, routes: dict[str, tuple[str, int]]) -> None:
        self.routes = routes
        self.refuse = False
        self.targets: list[str] = []
        self.first_bytes: list[bytes] = []
        self.connections = 0
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}"
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []

    def __enter__(self) -> ConnectProxy:
        self._spawn(self._accept_loop)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stopping.set()
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()
        for thread in self._threads:
            thread.join(5)

    def _spawn(self, target: Callable[..., None], *args: object) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)
        self._threads.append(thread)
        thread.start()

    def _accept_loop(self) -> None:
        while not self._stopping.is_set():
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                self.connections += 1
            self._spawn(self._serve, conn)

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(10)
            head = b""
            while b"\r\n\r\n" not in head:
                chunk = conn.recv(4096)
                if not chunk:
                    return
                head += chunk
            method, target, _ = head.split(b"\r\n", 1)[0].decode("ascii").split(" ", 2)
            route = self.routes.get(target)
            if method != "CONNECT" or route is None or self.refuse:
                conn.sendall(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")
                with self._lock:
                    self.targets.append(f"refused {method} {target}")
                return
            with socket.create_connection(route, timeout=10) as upstream:
                conn.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
                first = conn.recv(5)  # the start of the client's TLS record
                with self._lock:
                    self.targets.append(target)
                    self.first_bytes.append(first)
                upstream.sendall(first)
                self._pump(conn, upstream)

    def _pump(self, a: socket.socket, b: socket.socket) -> None:
        peers = {a: b, b: a}
        while not self._stopping.is_set():
            readable, _, _ = select.select(list(peers), [], [], 0.2)
            for sock in readable:
                try:
                    data = sock.recv(65536)
                except OSError:
                    return
                if not data:
                    return
                peers[sock].sendall(data)


@pytest.fixture
def tls_server(
    collector: RunningCollector, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[FaultServer]:
    """An HTTPS fault server for ``collector.invalid`` and 127.0.0.1, signed by a private CA
    that the client trusts through ``SSL_CERT_FILE`` (as with a corporate root)."""
    certificates = make_certificates(tmp_path, HOST, "127.0.0.1")
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    monkeypatch.setenv("SSL_CERT_FILE", str(certificates.ca))
    with FaultServer(collector.url, tls=certificates.server_context()) as server:
        yield server


@pytest.fixture
def proxy(tls_server: FaultServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[ConnectProxy]:
    """The proxy named by ``HTTPS_PROXY``; its tunnels to ``collector.invalid:443`` reach
    :func:`tls_server`."""
    assert tls_server.port is not None
    with ConnectProxy({f"{HOST}:443": ("127.0.0.1", tls_server.port)}) as connect_proxy:
        monkeypatch.setenv("HTTPS_PROXY", connect_proxy.url)
        yield connect_proxy


def test_https_goes_through_a_connect_tunnel_verified_end_to_end(
    proxy: ConnectProxy, tls_server: FaultServer, collector: RunningCollector, data_dir: Path
):
    ids = prefill(data_dir, 20)
    with make_client(data_dir, f"https://{HOST}") as client:
        assert client.flush(20)
        assert client._store.counters().get("upload_connect_error", 0) == 0
    assert proxy.targets and set(proxy.targets) == {f"{HOST}:443"}
    # Through the tunnel the proxy saw a TLS handshake record (0x16, TLS 1.x), not HTTP.
    assert all(b[:1] == b"\x16" and b[1:2] == b"\x03" for b in proxy.first_bytes)
    # Inside it, the server got origin-form requests over TLS, as from a direct client.
    assert [r.target for r in tls_server.requests] == ["/amplitude/2/httpapi"]
    assert_exactly_once(collector.database, ids)


def test_a_proxy_refusing_the_tunnel_loses_nothing(
    proxy: ConnectProxy, tls_server: FaultServer, collector: RunningCollector, data_dir: Path
):
    ids = prefill(data_dir, 10)
    proxy.refuse = True
    with make_client(data_dir, f"https://{HOST}") as client:
        uploader = uploader_of(client)
        assert wait_until(lambda: uploader.status().get("failures", 0) >= 1, 15)
        assert "403" in uploader.status()["last_result"]
        assert client._store.counters()["upload_connect_error"] >= 1
        assert client._store.stats().events == 11  # the 10 and the $identify, all still queued
        uploader.set_online(False)
    assert tls_server.requests == []
    proxy.refuse = False
    with make_client(data_dir, f"https://{HOST}") as client:
        assert client.flush(20)
    assert set(proxy.targets) == {f"refused CONNECT {HOST}:443", f"{HOST}:443"}
    assert_exactly_once(collector.database, ids)


def test_no_proxy_keeps_a_listed_host_direct(
    proxy: ConnectProxy,
    tls_server: FaultServer,
    collector: RunningCollector,
    data_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
):
    ids = prefill(data_dir, 5)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    with make_client(data_dir, tls_server.url) as client:
        assert client.flush(20)
    assert proxy.connections == 0
    assert len(tls_server.requests) == 1
    assert_exactly_once(collector.database, ids)
