"""Anonymising what Python and desktop apps really put in properties: paths, user, home, host."""

from __future__ import annotations

import json

import pytest

import telemetry
from telemetry import _anonymise, events
from tests.core.conftest import user_events

USER, HOME, HOST = "alice", "/home/alice", "alice-laptop.example.org"
#: No anonymised output may contain one of these (case-insensitively).
SECRETS = ("alice", "secret", "laptop", "/home")

#: Real-world strings and what is stored for them with the identity above.
TABLE = [
    (
        "[Errno 13] Permission denied: '/home/alice/My Images/secret-pi.img'",
        "[Errno 13] Permission denied: '<path>.img'",
    ),
    (
        '[Errno 2] No such file or directory: "/tmp/alice\'s stuff/secret.iso"',
        '[Errno 2] No such file or directory: "<path>.iso"',
    ),
    (
        'Traceback (most recent call last):\n  File "/home/alice/app/secret_mod.py", line 3, in f\n'
        "    open(p)\nPermissionError: [Errno 13] Permission denied: '/srv/secret/pi.img'",
        'Traceback (most recent call last):\n  File "<path>.py", line 3, in f\n'
        "    open(p)\nPermissionError: [Errno 13] Permission denied: '<path>.img'",
    ),
    ('  File "secret/relative.py", line 9, in <module>', '  File "<path>.py", line 9, in <module>'),
    (
        '  File "<frozen runpy>", line 88, in _run_code',
        '  File "<frozen runpy>", line 88, in _run_code',
    ),
    ("file:///home/alice/My%20Images/secret.img", "file://<path>.img"),
    ("opening file:///home/alice/secret.img failed", "opening file://<path>.img failed"),
    (
        "could not open /media/alice/SDCARD/secret.bin, giving up",
        "could not open <path>.bin, giving up",
    ),
    ("/home/alice/My Images/secret-pi.img copied to /mnt", "<path>.img copied to <path>"),
    ("cannot open ~/Downloads/secret.zip.", "cannot open <path>.zip."),
    ("C:\\Users\\alice\\Downloads\\secret.iso", "<path>.iso"),
    ("C:/Users/alice/Downloads/secret.iso", "<path>.iso"),
    (
        "[WinError 5] Access is denied: 'C:\\\\Users\\\\alice\\\\secret.iso'",
        "[WinError 5] Access is denied: '<path>.iso'",
    ),
    ("C:\\Program Files (x86)\\Secret App\\app.exe failed", "<path>.exe failed"),
    ("\\\\fileserver\\secret-share\\pi.img", "<path>.img"),
    ("//fileserver/secret-share/pi.img", "<path>.img"),
    ("build dir: /tmp/alice-build", "build dir: <path>"),
    ("denied:/tmp/secret.img", "denied:<path>.img"),
    ("see (/tmp/secret.log)", "see (<path>.log)"),
    ("HOME=/home/alice", "HOME=<path>"),
    ("signed in as alice", "signed in as <user>"),
    ("Alice_backup", "<user>_backup"),
    ("ssh alice-laptop.example.org or alice-laptop", "ssh <host> or <host>"),
    ("Error at /opt/App/Resources/app.asar/lib/main.js", "Error at <path>.js"),
]

#: Left as they are: no path, no identity, or an ordinary word containing the user name.
KEPT = [
    "no path here",
    "https://www.balena.io/etcher?x=1",
    "50 MB/s and/or 1/2 on 2024/01/02",
    "malice and palace",
    "a / b",
    "/",
]


@pytest.fixture(autouse=True)
def _identity(monkeypatch: pytest.MonkeyPatch) -> None:
    anonymiser = _anonymise.Anonymiser(user=USER, home=HOME, host=HOST)
    monkeypatch.setattr(_anonymise, "current", lambda: anonymiser)


def _leaks(text: str) -> list[str]:
    return [s for s in SECRETS if s in text.lower()]


@pytest.mark.parametrize(("value", "expected"), TABLE)
def test_real_world_strings_are_anonymised(value: str, expected: str) -> None:
    stored = events.normalize_properties({"message": value, "error": {"message": value}})
    assert stored == {"message": expected, "error.message": expected}
    assert not _leaks(expected)


@pytest.mark.parametrize("value", KEPT)
def test_text_without_paths_or_identity_is_kept(value: str) -> None:
    assert events.normalize_properties({"message": value}) == {"message": value}


def test_strings_in_arrays_and_nested_objects_are_anonymised() -> None:
    value = {
        "files": ["/home/alice/a.img", {"path": "C:\\Users\\alice\\b.iso", "n": 1}],
        "drive": {"label": "alice's stick", "mounts": [["/media/alice/BOOT"]]},
    }
    assert events.normalize_properties(value) == {
        "files": ["<path>.img", {"path": "<path>.iso", "n": 1}],
        "drive.label": "<user>'s stick",
        "drive.mounts": [["<path>"]],
    }
    # The caller's objects are left alone.
    assert value["files"][0] == "/home/alice/a.img"


def test_track_and_user_properties_store_no_identity(client: telemetry.Client) -> None:
    client.track("Flash error", {"error": {"message": TABLE[0][0]}, "paths": ["/home/alice/x"]})
    client.set_user_properties(set={"workdir": "/home/alice/work", "who": "alice"})
    (event,) = user_events(client)
    assert event["event_properties"] == {"error.message": TABLE[0][1], "paths": ["<path>"]}
    stored = [json.dumps(e.as_dict()) for e in client._store.iter_events()]
    assert not [t for t in stored if _leaks(t)]
    assert any('"workdir": "<path>"' in t and '"who": "<user>"' in t for t in stored)


def test_plain_text_is_returned_unchanged_and_fast_path_is_identity() -> None:
    anonymiser = _anonymise.current()
    text = "a1b2c3d4-0000-4000-8000-000000000000"
    assert anonymiser.text(text) is text


@pytest.mark.parametrize(
    ("user", "host", "value"),
    [("root", "vm", "run as root on vm"), ("al", "pc", "al and pc"), (None, None, "alice")],
)
def test_short_or_impersonal_names_are_not_replaced(
    user: str | None, host: str | None, value: str
) -> None:
    anonymiser = _anonymise.Anonymiser(user=user, home="/root", host=host)
    assert anonymiser.text(value) == value
    assert anonymiser.text("cd /root && ls") == "cd <path> && ls"


def test_the_home_directory_is_replaced_anywhere() -> None:
    anonymiser = _anonymise.Anonymiser(user=None, home="C:\\Users\\bob", host=None)
    assert anonymiser.text("x=C:\\Users\\bob y") == "x=<path> y"
    assert anonymiser.text("prefixC:\\Users\\bob") == "prefix<home>"


def test_a_failure_stores_a_marker_instead_of_the_text(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*_args: object) -> str:
        raise RuntimeError("boom")

    anonymiser = _anonymise.current()
    monkeypatch.setattr(anonymiser, "_slow", broken)
    assert anonymiser.text("/home/alice/x") == _anonymise.ANONYMIZE_FAILED


def test_the_current_identity_is_this_process_user(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.undo()
    _anonymise.current.cache_clear()
    monkeypatch.setenv("HOME", "/tmp/zed-home-q7")
    monkeypatch.setenv("LOGNAME", "zedq7")
    monkeypatch.setenv("USER", "zedq7")
    try:
        anonymiser = _anonymise.current()
        assert anonymiser.text("zedq7 at /tmp/zed-home-q7/x") == "<user> at <path>"
        assert anonymiser.text("pre/tmp/zed-home-q7") == "pre<home>"
    finally:
        monkeypatch.undo()
        _anonymise.current.cache_clear()
