"""``telemetry drives [--json] [--all] [--watch]`` through ``run_cli()``."""

from __future__ import annotations

import io
import json
import threading
from pathlib import Path

import pytest

from telemetry.drives import list_drives
from telemetry.drives import run_cli as run
from telemetry.drives._cli import format_size

from . import _umockdev as um
from .test_model import DRIVELIST_FIELDS, OUR_FIELDS


def test_json_all_prints_one_object_per_drive() -> None:
    out = io.StringIO()
    assert run(as_json=True, show_all=True, watch=False, out=out) == 0
    lines = out.getvalue().splitlines()
    assert len(lines) == len(list_drives(all=True))
    for line in lines:
        obj = json.loads(line)
        assert list(obj) == DRIVELIST_FIELDS + OUR_FIELDS


def test_table_on_a_busy_desktop(tmp_path: Path) -> None:
    every = [
        "usb2-flash-stick.umockdev",
        "card-reader-multi-lun.umockdev",
        "nvme-system.umockdev",
        "emmc.umockdev",
    ]
    table = um.run_listing(every, tmp_path, procfs="desktop", mode="cli-table")
    lines = table.splitlines()
    assert lines[0].split() == ["DEVICE", "SIZE", "TYPE", "DESCRIPTION", "NOTES"]
    body = "\n".join(lines[1:])
    assert "/dev/sdb" in body
    assert "8.0 GB" in body
    assert "usb-flash" in body
    assert "/dev/sdf" in body
    assert "target,mounted" in body
    for hidden in ("/dev/nvme0n1", "/dev/mmcblk1", "/dev/sdd "):
        assert hidden not in body  # not flash targets: only shown with --all


def test_json_default_and_all_under_umockdev(tmp_path: Path) -> None:
    fixtures = ["usb2-flash-stick.umockdev", "sata-ssd.umockdev"]
    default = um.run_listing(fixtures, tmp_path / "a", procfs="empty", mode="cli-json")
    every = um.run_listing(fixtures, tmp_path / "b", procfs="empty", mode="cli-json-all")
    assert default["status"] == every["status"] == 0
    assert [json.loads(x)["device"] for x in default["lines"]] == ["/dev/sdb"]
    assert [json.loads(x)["device"] for x in every["lines"]] == ["/dev/sda", "/dev/sdb"]


def test_watch_runs_until_stopped() -> None:
    out = io.StringIO()
    stop = threading.Event()
    status: list[int] = []
    t = threading.Thread(
        target=lambda: status.append(
            run(as_json=False, show_all=True, watch=True, out=out, stop=stop)
        )
    )
    t.start()
    stop.set()
    t.join(30)  # two real drive listings and a monitor start, then the stop
    assert not t.is_alive()
    assert status == [0]
    assert out.getvalue().startswith("DEVICE")


def test_empty_list_message(monkeypatch: pytest.MonkeyPatch) -> None:
    import telemetry.drives._cli as cli

    monkeypatch.setattr(cli, "list_drives", lambda all=False: [])
    out = io.StringIO()
    assert run(as_json=False, show_all=False, watch=False, out=out) == 0
    assert out.getvalue() == "No drives found. (--all shows every disk)\n"


@pytest.mark.parametrize(
    ("size", "text"),
    [(0, "-"), (512, "512 B"), (8_011_120_640, "8.0 GB"), (1_000_204_886_016, "1.0 TB")],
)
def test_format_size(size: int, text: str) -> None:
    assert format_size(size) == text
