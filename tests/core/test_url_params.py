"""AnalyticsUrlParams: the seed's d_id/s_id/optOutAnalytics rules, persisted in the store."""

from __future__ import annotations

from pathlib import Path

import pytest

import telemetry
from telemetry.url_params import AnalyticsUrlParams


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
    client: telemetry.Client, destination: str, current: str | None, expect_params: bool
) -> None:
    params = AnalyticsUrlParams(client)
    query = params.get_query_string(destination, current)
    if expect_params:
        assert query == f"d_id={client.device_id}&s_id={client.session_id}"
    else:
        assert query == ""


def test_device_ids_are_url_encoded_and_decorate_keeps_fragment(client: telemetry.Client) -> None:
    params = AnalyticsUrlParams(client)
    params.consume_url_parameters("d_id=%25%25%24!!")
    assert params.get_device_ids_query_string().startswith("d_id=%25%25%24!!")
    url = params.decorate("https://www.example.org/page?x=1#top")
    assert url.startswith("https://www.example.org/page?x=1&d_id=%25%25%24!!")
    assert url.endswith("#top")
