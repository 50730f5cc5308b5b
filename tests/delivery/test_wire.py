"""The wire format (the analytics-client's Amplitude HTTP V2 request), batch limits, TLS
verification with ``SSL_CERT_FILE`` and the proxy variables, all over real sockets."""

from __future__ import annotations

import re
import time
from pathlib import Path

import httpx
import pytest

import telemetry
from telemetry._delivery import Uploader
from telemetry._store import EventStore
from telemetry.transport import HttpTransport
from tests._fixtures import RunningCollector
from tests.delivery._support import (
    COMPONENT,
    PROJECT,
    assert_exactly_once,
    make_client,
    prefill,
    queued_ids,
    track_many,
    uploader_of,
    wait_until,
)
from tests.delivery._tls import make_certificates
from tests.delivery.fault_server import FaultServer


def test_request_is_amplitude_http_v2_gzip(
    server: FaultServer, collector: RunningCollector, data_dir: Path
):
    ids = prefill(data_dir, 1_200)
    with make_client(data_dir, server.url) as client:
        assert client.flush(20)
        device_id = client.device_id
    requests = server.requests
    assert [len(r.events) for r in requests] == [500, 500, 201]
    for request in requests:
        assert request.method == "POST"
        assert request.target == "/amplitude/2/httpapi"
        assert request.headers["content-type"] == "application/json"
        assert request.headers["content-encoding"] == "gzip"
        assert request.headers["user-agent"].startswith("desktop-telemetry/")
        assert len(request.body) < request.decoded_size / 5  # really compressed
        payload = request.payload
        assert payload is not None
        assert set(payload) == {"api_key", "events", "options", "device_proofs"}
        assert list(payload["device_proofs"]) == [device_id]
        assert re.fullmatch("[0-9a-f]{64}", payload["device_proofs"][device_id])
        assert payload["api_key"] == PROJECT
        assert payload["options"] == {"min_id_length": 5}
        for event in request.events:
            assert event["device_id"] == device_id
            assert isinstance(event["insert_id"], str)
            assert isinstance(event["time"], int)
    assert [i for r in requests for i in r.insert_ids] == ids  # oldest first, none twice
    assert_exactly_once(collector.database, ids)


def test_batches_stay_within_512_kib_before_compression(
    server: FaultServer, collector: RunningCollector, data_dir: Path
):
    with telemetry.create_client(
        PROJECT, COMPONENT, "1.0.0", data_dir=data_dir, upload=False
    ) as client:
        for i in range(80):
            client.track("Big", {"i": i, "blob": f"{i:05d}" * 4_000})  # about 20 KB each
        ids = queued_ids(client)
    with make_client(data_dir, server.url) as client:
        assert client.flush(20)
    sizes = [r.decoded_size for r in server.requests]
    assert len(sizes) >= 4
    assert max(sizes) <= 512 * 1024
    assert max(sizes) > 480 * 1024  # filled up to the limit, not cut short
    assert_exactly_once(collector.database, ids)


def test_no_endpoint_means_amplitude_http_v2(tmp_path: Path):
    with telemetry.create_client(PROJECT, COMPONENT, data_dir=tmp_path, upload=False) as client:
        assert client.endpoint_url == "https://api2.amplitude.com/2/httpapi"
    assert telemetry.endpoint_url("http://127.0.0.1:8555/") == (
        "http://127.0.0.1:8555/amplitude/2/httpapi"
    )
    assert telemetry.endpoint_url("data.balena-cloud.com") == (
        "https://data.balena-cloud.com/amplitude/2/httpapi"
    )


def test_timeouts_are_10_s_to_connect_and_30_s_in_all(tmp_path: Path):
    with EventStore(tmp_path) as store:
        uploader = Uploader(store, url="http://127.0.0.1:9/amplitude/2/httpapi", api_key=PROJECT)
        transport = uploader._transport()
        assert isinstance(transport, HttpTransport)
        client = transport._new_client()
        try:
            assert client.timeout == httpx.Timeout(30.0, connect=10.0)
        finally:
            client.close()
    # The 30 s are enforced as a whole (see the trickle test), not per read only.
    assert transport.total_timeout == 30.0


# ---------------------------------------------------------------------- TLS


def test_tls_is_verified_and_honours_ssl_cert_file(
    collector: RunningCollector, tmp_path: Path, data_dir: Path, monkeypatch: pytest.MonkeyPatch
):
    certificates = make_certificates(tmp_path)  # for 127.0.0.1
    server_tls = certificates.server_context()
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    ids = prefill(data_dir, 10)
    with FaultServer(collector.url, tls=server_tls) as server:
        assert server.url.startswith("https://")
        # A CA the client does not know: the handshake fails, nothing is sent or lost.
        with make_client(data_dir, server.url) as client:
            uploader = uploader_of(client)
            assert wait_until(
                lambda: "CERTIFICATE_VERIFY_FAILED" in uploader.status().get("last_result", ""),
                10,
            )
            assert client._store.counters()["upload_connect_error"] >= 1
            assert client._store.stats().events == 11
            uploader.set_online(False)
        assert server.requests == []
        assert server.connections_accepted >= 1
        # The corporate root, given the usual way: verified, delivered.
        monkeypatch.setenv("SSL_CERT_FILE", str(certificates.ca))
        with make_client(data_dir, server.url) as client:
            assert client.flush(10)
    assert_exactly_once(collector.database, ids)


# ---------------------------------------------------------------------- proxies


def test_http_proxy_variable_is_honoured(
    server: FaultServer,
    collector: RunningCollector,
    data_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
):
    ids = prefill(data_dir, 5)
    monkeypatch.setenv("HTTP_PROXY", server.url)  # the fault server works as a forward proxy
    # No DNS name resolves under .invalid: only the proxy can deliver this.
    with make_client(data_dir, "http://collector.invalid") as client:
        assert client.flush(10)
    assert [r.target for r in server.requests] == ["http://collector.invalid/amplitude/2/httpapi"]
    assert_exactly_once(collector.database, ids)


def test_each_request_says_when_it_left_for_clock_skew_correction(
    server: FaultServer, data_dir: Path
):
    with make_client(data_dir, server.url) as client:
        track_many(client, 3)
        before = time.time_ns() // 1_000_000
        assert client.flush(10)
        after = time.time_ns() // 1_000_000
    stamps = [int(r.headers["x-client-upload-time"]) for r in server.requests]
    assert stamps and all(before - 60_000 <= s <= after for s in stamps)
