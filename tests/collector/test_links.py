"""The signed link tracker (``GET /r/collect``): signatures, redirects, pixel, lead sessions."""

from __future__ import annotations

import hashlib
import io
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

import telemetry.cli as cli
from telemetry.collector._config import parse_config
from telemetry.collector._links import EMPTY_GIF, mask_ip
from telemetry.signed_links import signed_url
from tests.collector_process import start_in_thread

SECRET = "Secret%20!"


@contextmanager
def tracker(tmp_path: Path, **links: Any) -> Iterator[tuple[str, Path]]:
    settings = {"secret": SECRET, "allowed_hosts": ["github.com", ".example.com"]} | links
    database = tmp_path / "c.db"
    url, stop = start_in_thread(database, config=parse_config({"links": settings}))
    try:
        yield url, database
    finally:
        stop()


def hits(database: Path) -> list[dict[str, Any]]:
    conn = sqlite3.connect(database)
    conn.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in conn.execute("SELECT * FROM link_hits ORDER BY id")]
    finally:
        conn.close()


def link(base: str, method: str = "hmac-sha256", **params: str) -> str:
    return signed_url(f"{base}/r/collect", list(params.items()), SECRET, method)  # type: ignore[arg-type]


def get(url: str, **kwargs: Any) -> httpx.Response:
    return httpx.get(url, follow_redirects=False, timeout=10, **kwargs)


def test_valid_pixel_stores_a_row_with_the_ip_masked(tmp_path: Path) -> None:
    with tracker(tmp_path) as (base, database):
        answer = get(
            link(base, p="prog-1", k="impression", d1="home", d3="x y", sp="1"),
            headers={"User-Agent": "test-agent"},
        )
        assert answer.status_code == 200
        assert answer.content == EMPTY_GIF
        assert answer.headers["content-type"] == "image/gif"
        assert answer.headers["cache-control"] == "public, max-age=0"
        assert answer.headers["access-control-allow-origin"] == "*"
        [row] = hits(database)
    assert row["program_id"] == "prog-1" and row["kind"] == "impression"
    assert (row["lead"], row["is_sponsored"], row["affiliate"]) == (0, 1, "")
    assert (row["dimension1"], row["dimension2"], row["dimension3"]) == ("home", "", "x y")
    assert row["client_ip"] == "127.0.0.0"  # masked: the host part is gone
    assert row["user_agent"] == "test-agent"


def test_valid_click_redirects_to_an_allowed_host(tmp_path: Path) -> None:
    with tracker(tmp_path) as (base, database):
        for target in ("https://github.com/balena-io/etcher?x=1", "https://www.example.com/a"):
            answer = get(link(base, p="p", k="click", url=target))
            assert answer.status_code == 307
            assert answer.headers["location"] == target
        assert [h["url"] for h in hits(database)] == [
            "https://github.com/balena-io/etcher?x=1",
            "https://www.example.com/a",
        ]


@pytest.mark.parametrize(
    "target",
    [
        "https://evil.test/",
        "https://github.com.evil.test/",
        "https://evilexample.com/",
        "javascript:alert(1)",
        "//evil.test/x",
        "https:\\\\evil.test",
        "ftp://github.com/",
    ],
)
def test_redirect_to_a_host_not_allowed_is_refused(tmp_path: Path, target: str) -> None:
    with tracker(tmp_path) as (base, database):
        answer = get(link(base, p="p", k="click", url=target))
        assert answer.status_code == 400
        assert "location" not in answer.headers
        assert hits(database) == []


def test_tampered_links_are_refused(tmp_path: Path) -> None:
    with tracker(tmp_path) as (base, database):
        good = link(base, p="prog-1", k="click", url="https://github.com/")
        assert get(good).status_code == 307
        tampered = [
            good.replace("p=prog-1", "p=prog-2"),
            good.replace("github.com", "github.co"),
            good.replace("&k=click", "&k=click&a=1"),
            good[:-1] + ("0" if good[-1] != "0" else "1"),
            good + "&d1=extra",
            link(base, "md5", p="prog-1", k="click"),  # md5 not enabled here
        ]
        for url in tampered:
            answer = get(url)
            assert answer.status_code == 400, url
            assert "signed" in answer.text
        assert len(hits(database)) == 1


def test_md5_links_are_accepted_when_configured(tmp_path: Path) -> None:
    with tracker(tmp_path, signature="md5") as (base, database):
        uri = "/r/collect?p=42&k=impression"
        # The seed's scheme, computed independently: md5(SECRET + uri).
        signature = hashlib.md5((SECRET + uri).encode()).hexdigest()
        assert get(f"{base}{uri}&s={signature}").status_code == 200
        assert get(link(base, p="42", k="impression")).status_code == 400  # HMAC now refused
        assert [h["program_id"] for h in hits(database)] == ["42"]


def test_missing_parameters(tmp_path: Path) -> None:
    with tracker(tmp_path) as (base, database):
        assert get(f"{base}/r/collect?p=1&k=click").status_code == 400  # no signature
        no_kind = get(link(base, p="1"))
        assert no_kind.status_code == 400
        assert "programId" in no_kind.text
        assert get(link(base, k="click")).status_code == 400
        assert hits(database) == []
    with tracker(tmp_path, site_url="https://www.example.com/") as (base, database):
        answer = get(link(base, k="click"))
        assert (answer.status_code, answer.headers["location"]) == (307, "https://www.example.com/")
        assert hits(database) == []


def test_lead_flow_across_two_hits(tmp_path: Path) -> None:
    with tracker(tmp_path) as (base, database), httpx.Client(follow_redirects=False) as client:
        first = client.get(link(base, p="prog-A", k="click", a="1", url="https://github.com/"))
        assert first.status_code == 307
        assert "_ba" in client.cookies
        assert "HttpOnly" in first.headers["set-cookie"]
        other_kind = client.get(link(base, p="prog-B", k="impression"))
        assert other_kind.status_code == 200
        second = client.get(link(base, p="prog-C", k="click"))
        assert second.status_code == 200
        assert "_ba" not in client.cookies  # the session is cleared after the lead
        client.get(link(base, p="prog-D", k="click"))
    rows = [(h["program_id"], h["kind"], h["lead"], h["affiliate"]) for h in hits(database)]
    assert rows == [
        ("prog-A", "click", 0, "1"),
        ("prog-B", "impression", 0, ""),
        ("prog-C", "click", 0, ""),
        ("prog-A", "click", 1, ""),
        ("prog-D", "click", 0, ""),
    ]


def test_expired_or_forged_session_gives_no_lead(tmp_path: Path) -> None:
    with tracker(tmp_path, session_max_age=1 / 60, session_name="sess") as (base, database):
        first = get(link(base, p="prog-A", k="click", a="1"))
        cookie = first.cookies["sess"]
        payload, _, mac = cookie.rpartition(".")
        forged = payload[:-2] + ("AA" if payload[-2:] != "AA" else "BB") + "." + mac
        assert get(link(base, p="prog-B", k="click"), cookies={"sess": forged}).status_code == 200
        time.sleep(1.1)
        # Sent by hand: a browser would have dropped it; the server must not trust it either.
        assert get(link(base, p="prog-C", k="click"), cookies={"sess": cookie}).status_code == 200
    assert [h["lead"] for h in hits(database)] == [0, 0, 0]


def test_robots_and_favicon(tmp_path: Path) -> None:
    with tracker(tmp_path) as (base, _):
        robots = get(f"{base}/robots.txt")
        assert robots.text == "User-agent: *\nDisallow: /\n"
        assert get(f"{base}/favicon.ico").status_code == 204


def test_sign_url_command_makes_links_the_tracker_accepts(tmp_path: Path) -> None:
    with tracker(tmp_path) as (base, database):
        out = io.StringIO()
        args = ["sign-url", "--secret", SECRET, "--base", f"{base}/r/collect"]
        parsed = cli.build_parser().parse_args([*args, "p=7", "k=click", "url=https://github.com/"])
        assert parsed.func(parsed, out) == 0
        url = out.getvalue().strip()
        assert get(url).status_code == 307
        bad = io.StringIO()
        parsed = cli.build_parser().parse_args([*args, "p=7", "zz=1"])
        assert parsed.func(parsed, bad) == 2
        assert "unknown link parameter" in bad.getvalue()
        assert [h["program_id"] for h in hits(database)] == ["7"]


def test_mask_ip() -> None:
    assert mask_ip("203.0.113.77") == "203.0.113.0"
    assert mask_ip("2001:db8:abcd:12:1:2:3:4") == "2001:db8:abcd::"
    assert mask_ip("::ffff:198.51.100.9") == "198.51.100.0"
    assert mask_ip(None) == mask_ip("not an ip") == ""


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_a_nul_in_a_signed_parameter_is_stored_as_a_replacement_character(
    tmp_path: Path, backend: str, request: pytest.FixtureRequest
) -> None:
    # PostgreSQL's text refuses NUL: before, the row was lost (logged) on that backend.
    from telemetry.collector import EventStore
    from telemetry.collector._postgres_store import PostgresStore

    settings = {"secret": SECRET, "allowed_hosts": ["github.com"]}
    if backend == "sqlite":
        store: Any = EventStore(tmp_path / "c.db")
    else:
        store = PostgresStore(request.getfixturevalue("postgres_dsn"))
    url, stop = start_in_thread(store, config=parse_config({"links": settings}))
    try:
        answer = get(link(url, p="prog", k="click", d1="a\0b", a="aff\0"))
        assert answer.status_code == 200
        if backend == "sqlite":
            rows = hits(tmp_path / "c.db")
        else:
            import psycopg

            with psycopg.connect(request.getfixturevalue("postgres_dsn")) as conn:
                cur = conn.execute("SELECT dimension1, affiliate FROM link_hits")
                rows = [{"dimension1": d1, "affiliate": aff} for d1, aff in cur.fetchall()]
        assert [(r["dimension1"], r["affiliate"]) for r in rows] == [("a\ufffdb", "aff\ufffd")]
    finally:
        stop()
        store.close()
