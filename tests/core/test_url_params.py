"""AnalyticsUrlParams: the seed's d_id/s_id/optOutAnalytics rules, persisted in the store."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import telemetry
from telemetry.testing import RecordingDestination
from telemetry.url_params import AnalyticsUrlParams


@pytest.fixture
def sharing(data_dir: Path) -> Iterator[telemetry.Client]:
    """A client that may upload (the user answered the notice): its links carry device ids."""
    with telemetry.create_client(
        "test-project", "test-app", "1.2.3", data_dir=data_dir, destination=RecordingDestination()
    ) as client:
        client.mark_notice_answered()
        yield client


def test_consume_removes_d_id_and_switches_device(client: telemetry.Client) -> None:
    params = AnalyticsUrlParams(client)
    original = client.device_id
    assert params.consume_url_parameters("d_id=dev-d1,dev-d2 , dev-d3&other=value") == "other=value"
    assert client.device_id == "dev-d1"
    assert params.get_passed_device_id() == "dev-d1"
    assert params.all_device_ids()[:4] == ["dev-d1", "dev-d2", "dev-d3", original]
    assert params.consume_url_parameters("other=value&and=another") is None


def test_session_and_opt_out(client: telemetry.Client) -> None:
    params = AnalyticsUrlParams(client)
    params.consume_url_parameters("s_id=1700000000000&optOutAnalytics=true")
    assert client.session_id == 1700000000000
    assert params.is_opt_out_requested() is True
    params.consume_url_parameters("optOutAnalytics=false")
    assert params.is_opt_out_requested() is False


def test_linked_ids_persist_newest_first(data_dir: Path) -> None:
    with telemetry.create_client("proj1", "app", data_dir=data_dir, upload=False) as client:
        AnalyticsUrlParams(client).consume_url_parameters("d_id=old-one1")
    with telemetry.create_client("proj1", "app", data_dir=data_dir, upload=False) as client:
        params = AnalyticsUrlParams(client)
        assert params.get_passed_device_id() == "old-one1"  # the first stored id
        params.consume_url_parameters("d_id=new-one2")
        assert params.all_device_ids()[:2] == ["new-one2", "old-one1"]
    with telemetry.create_client("proj1", "app", data_dir=data_dir, upload=False) as client:
        assert client._store.linked_device_ids()[:2] == ["new-one2", "old-one1"]


def test_set_client_only_once(client: telemetry.Client) -> None:
    params = AnalyticsUrlParams(client)
    with pytest.raises(RuntimeError, match="Client is already set"):
        params.set_client(client)


@pytest.mark.parametrize(
    ("destination", "current", "expect_params"),
    [
        ("/signup", None, False),
        ("signup.html", None, False),
        ("https://hub.balena.io/x", "https://www.balena.io", False),
        ("https://dashboard.balena-cloud.com", "https://www.balena.io", True),
        ("https://etcher.balena.io", None, True),
        ("www.example.org", None, True),
    ],
)
def test_query_string_for_destinations(
    sharing: telemetry.Client, destination: str, current: str | None, expect_params: bool
) -> None:
    params = AnalyticsUrlParams(sharing)
    query = params.get_query_string(destination, current)
    if expect_params:
        assert query == f"d_id={sharing.device_id}&s_id={sharing.session_id}"
    else:
        assert query == ""


def test_device_ids_are_url_encoded_and_decorate_keeps_fragment(
    sharing: telemetry.Client,
) -> None:
    params = AnalyticsUrlParams(sharing)
    params.consume_url_parameters("d_id=%25%25%24!!")
    assert params.get_device_ids_query_string().startswith("d_id=%25%25%24!!")
    url = params.decorate("https://www.example.org/page?x=1#top")
    assert url.startswith("https://www.example.org/page?x=1&d_id=%25%25%24!!")
    assert url.endswith("#top")


def test_no_device_id_in_links_before_the_notice_is_answered(data_dir: Path) -> None:
    """Found by an outside audit: links carried ``d_id`` before the user answered the notice,
    and an opt-out then sent no deletion request, although the id had left in a link. Now a
    link carries it only once uploads are allowed (when the id is marked as having left)."""
    destination = RecordingDestination()

    def deletions() -> list[str]:
        return [r.url for r in destination.requests if "deletion" in r.url]

    with telemetry.create_client(
        "test-project",
        "test-app",
        "1.2.3",
        "http://127.0.0.1:9",  # where deletions would go; the destination records them
        data_dir=data_dir,
        destination=destination,
    ) as client:
        params = AnalyticsUrlParams(client)
        assert params.get_device_ids_query_string() == ""
        assert params.decorate("https://www.example.org/") == (
            f"https://www.example.org/?s_id={client.session_id}"
        )
        client.set_consent(False)  # from the notice: nothing of this device ever left
        assert client.status()["deletion_requests"] == 0
        assert deletions() == []
        client.set_consent(True)
        shared = client.device_id
        assert params.get_device_ids_query_string() == f"d_id={shared}"
        client.set_consent(False)  # the id left (in a link, or in uploads): one deletion
        assert params.get_device_ids_query_string() == ""
        deadline = time.monotonic() + 10
        while not deletions() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert len(deletions()) == 1
