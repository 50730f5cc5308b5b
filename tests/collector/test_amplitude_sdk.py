"""Interoperability: the official Amplitude Python SDK uploads to the collector."""

from __future__ import annotations

import json
import logging
import threading

from amplitude import Amplitude, BaseEvent, Config  # type: ignore[import-untyped]

from tests._fixtures import RunningCollector

from ._support import rows


def test_official_sdk_events_are_stored_exactly_once(collector: RunningCollector) -> None:
    results: list[tuple[str, int, str | None]] = []
    lock = threading.Lock()

    def callback(event: BaseEvent, code: int, message: str | None = None) -> None:
        with lock:
            results.append((str(event.insert_id), code, message))

    config = Config(
        server_url=f"{collector.url}/2/httpapi",
        flush_queue_size=8,  # several batches for 20 events
        flush_interval_millis=200,
        flush_max_retries=3,
        callback=callback,
        logger=logging.getLogger("amplitude-test"),
    )
    client = Amplitude("etcher-sdk-test", config)
    for i in range(20):
        client.track(
            BaseEvent(
                event_type="flash",
                device_id="sdk-device-4242",
                event_properties={"index": i},
            )
        )
    client.flush()
    client.shutdown()

    stored = rows(collector.database)
    assert len(stored) == 20
    assert len({r["insert_id"] for r in stored}) == 20
    assert sorted(json.loads(r["event"])["event_properties"]["index"] for r in stored) == list(
        range(20)
    )
    assert all(r["project"] == "etcher-sdk-test" for r in stored)
    assert all(r["device_id"] == "sdk-device-4242" and r["event_type"] == "flash" for r in stored)
    assert all(isinstance(r["time"], int) for r in stored)
    # The SDK parsed our answers as success for every event.
    assert sorted(code for _, code, _ in results) == [200] * 20
    assert {insert_id for insert_id, _, _ in results} == {r["insert_id"] for r in stored}


def test_official_sdk_min_id_length_option_is_honoured(collector: RunningCollector) -> None:
    codes: list[int] = []
    config = Config(
        server_url=f"{collector.url}/amplitude/2/httpapi",
        min_id_length=3,
        flush_interval_millis=200,
        callback=lambda event, code, message=None: codes.append(code),
    )
    client = Amplitude("etcher-sdk-test", config)
    client.track(BaseEvent(event_type="short id", device_id="abc"))
    client.shutdown()
    assert codes == [200]
    assert [r["device_id"] for r in rows(collector.database)] == ["abc"]
