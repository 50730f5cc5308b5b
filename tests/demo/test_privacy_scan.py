"""Nothing leaked: after the demo's self-test and a flash that fails with a Python error naming
the image's path, no stored byte names the user, the home, the host, the image or its folder.

Both demo runs are child processes with a made-up user (``USER``, ``LOGNAME``) and home
(``HOME``), whose names are random markers: the scan cannot match anything by chance. The
scan reads every file of the client's and the collector's data (every SQLite cell, gzip-ed
sent batches unzipped) and every line the runs logged.
"""

from __future__ import annotations

import getpass
import gzip
import json
import os
import secrets
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def place() -> Iterator[Path]:
    """A fresh folder outside pytest's (whose path holds the real user name)."""
    folder = Path(tempfile.mkdtemp(prefix="privacy-scan-"))
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def _run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, timeout=240, cwd=REPO,
        env=env, check=False,
    )  # fmt: skip


def _cells(database: Path) -> Iterator[tuple[str, bytes]]:
    """Every cell of every table (named by its table), a gzip blob unzipped."""
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as conn:
        tables = [r[0] for r in conn.execute("select name from sqlite_master where type='table'")]
        for table in tables:
            for row in conn.execute(f'select * from "{table}"'):  # names from the db itself
                for cell in row:
                    if isinstance(cell, bytes) and cell[:2] == b"\x1f\x8b":
                        yield f"{table} (gzip)", gzip.decompress(cell)
                    elif cell is not None:
                        yield table, cell if isinstance(cell, bytes) else str(cell).encode()


def _stored_bytes(folder: Path) -> Iterator[tuple[str, bytes]]:
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        raw = path.read_bytes()
        yield str(path), raw
        if raw.startswith(b"SQLite format 3\x00"):
            yield from ((f"{path}: {table}", cell) for table, cell in _cells(path))


def unzipped_events(batches: list[bytes]) -> Iterator[str]:
    """Each event of the sent batches (an Amplitude body or a list of events), as JSON."""
    for batch in batches:
        body = json.loads(batch)
        yield from map(json.dumps, body["events"] if isinstance(body, dict) else body)


def test_no_stored_byte_names_the_user_home_host_or_image(place: Path) -> None:
    user = f"zq{secrets.token_hex(4)}"  # a made-up user name no file or word contains
    home = place / f"privacy-{user}-home"
    folder = f"My Images {secrets.token_hex(3)}"
    image = home / folder / f"secret-pi-{secrets.token_hex(3)}.img"
    image.parent.mkdir(parents=True)
    image.write_bytes(os.urandom(1 << 20))
    data = place / "data"
    env = {**os.environ, "PYTHONPATH": str(REPO), "HOME": str(home), "USER": user,
           "LOGNAME": user, "QT_QPA_PLATFORM": "offscreen"}  # fmt: skip
    env.pop("DO_NOT_TRACK", None)

    self_test = _run(["-m", "demo_app", "--self-test", "--data-dir", str(data)], env)
    assert "self-test: OK" in self_test.stdout, self_test.stderr
    # The target is inside the image file: opening it fails with a Python error whose text
    # holds the path ("[Errno 20] Not a directory: '.../secret-pi-....img/card.img'"),
    # whoever runs the test (root is not stopped by file modes).
    child = "tests/demo/privacy_child.py"
    failed = _run([child, str(data), str(image), str(image / "card.img")], env)
    assert failed.returncode == 0, failed.stderr[-3000:]

    needles = {user, str(home), home.name, folder, image.name, image.stem}
    real_user, host = getpass.getuser(), socket.gethostname()
    needles |= {n for n in (real_user, host) if len(n) >= 3 and n != "root"}
    logs = [("self-test output", self_test.stdout + self_test.stderr),
            ("failing flash output", failed.stdout + failed.stderr)]  # fmt: skip
    # The self-test's telemetry.db is in DATA itself, the child's in DATA/telemetry.
    blobs = list(_stored_bytes(data))
    blobs += [(name, text.encode()) for name, text in logs]
    unzipped = [blob for name, blob in blobs if name.endswith("sent_batches (gzip)")]
    assert any(b"[Etcher] Write failed" in blob for blob in unzipped)  # the scan saw the batches
    found = sorted({(name, n) for name, blob in blobs for n in needles if n.encode() in blob})
    assert not found, found
    (failure,) = [e for e in map(json.loads, unzipped_events(unzipped))
                  if e["event_type"] == "[Etcher] Write failed"]  # fmt: skip
    message = failure["event_properties"]["errorMessage"]
    assert message.startswith("[Errno 20] Not a directory: '<path>.img'"), message
