"""The sysfs reader against a fake /sys: devices vanishing mid-scan never raise."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import psutil
import pytest

from telemetry.drives import _scan, _sysfs, _udev


def _device(root: Path, devpath: str, subsystem: str, uevent: dict[str, str], **attrs: str) -> Path:
    path = root / "sys" / devpath.lstrip("/")
    path.mkdir(parents=True, exist_ok=True)
    (path / "uevent").write_text("".join(f"{k}={v}\n" for k, v in uevent.items()))
    subsystem_dir = root / "sys" / "class" / subsystem
    subsystem_dir.mkdir(parents=True, exist_ok=True)
    os.symlink(os.path.relpath(subsystem_dir, path), path / "subsystem")
    for name, value in attrs.items():
        f = path / name.replace("__", "/")
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text(value + "\n")
    return path


def _block(root: Path, devpath: str, name: str, devtype: str, size: int, minor: int) -> Path:
    path = _device(
        root,
        devpath,
        "block",
        {"DEVNAME": name, "DEVTYPE": devtype, "MAJOR": "8", "MINOR": str(minor)},
        size=str(size),
        ro="0",
        removable="1",
        queue__logical_block_size="512",
        queue__physical_block_size="512",
    )
    link_dir = root / "sys" / "class" / "block"
    link_dir.mkdir(parents=True, exist_ok=True)
    os.symlink(os.path.relpath(path, link_dir), link_dir / name)
    return path


@pytest.fixture
def fake_sys(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    usb = "/devices/pci0000:00/0000:00:14.0/usb1/1-1"
    _device(
        tmp_path,
        usb,
        "usb",
        {"DEVTYPE": "usb_device", "DRIVER": "usb"},
        idVendor="0951",
        idProduct="1625",
        version=" 2.00",
        speed="480",
    )
    _device(
        tmp_path, usb + "/1-1:1.0", "usb", {"DEVTYPE": "usb_interface", "DRIVER": "usb-storage"}
    )
    for i, name in enumerate(("sdb", "sdc")):
        host = f"{usb}/1-1:1.0/host{6 + i}"
        _device(tmp_path, host, "scsi", {"DEVTYPE": "scsi_host"})
        sdev = f"{host}/target{6 + i}:0:0/{6 + i}:0:0:0"
        _device(
            tmp_path,
            sdev,
            "scsi",
            {"DEVTYPE": "scsi_device", "DRIVER": "sd"},
            vendor="Kingston",
            model="DT 101 II",
        )
        disk = _block(tmp_path, f"{sdev}/block/{name}", name, "disk", 15646720, 16 * (i + 1))
        _block(
            tmp_path, f"{sdev}/block/{name}/{name}1", f"{name}1", "partition", 100, 16 * (i + 1) + 1
        )
        assert disk.exists()
    # a class/block entry whose device is already gone
    os.symlink("../../devices/virtual/block/gone", tmp_path / "sys" / "class" / "block" / "gone")
    sys_root = str(tmp_path / "sys")
    monkeypatch.setattr(_sysfs, "SYS", sys_root)
    monkeypatch.setattr(_sysfs, "SYS_DEVICES", sys_root + "/devices")
    monkeypatch.setattr(_sysfs, "SYS_CLASS_BLOCK", sys_root + "/class/block")
    monkeypatch.setattr(_udev.UdevDatabase, "present", staticmethod(lambda: False))
    monkeypatch.setattr(psutil, "PROCFS_PATH", str(tmp_path / "no-procfs"))
    return tmp_path


def test_fake_sysfs_lists_both_luns(fake_sys: Path) -> None:
    drives = _scan.collect_drives()
    assert [(d.device, d.drive_type, d.size) for d in drives] == [
        # two disks on one USB interface: the LUNs of a card reader
        ("/dev/sdb", "usb-card-reader", 8011120640),
        ("/dev/sdc", "usb-card-reader", 8011120640),
    ]


def test_a_disk_vanishing_mid_read_is_tolerated(
    fake_sys: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_read = _sysfs.read
    victim = next((fake_sys / "sys" / "devices").rglob("block/sdc"))

    def read(path: str) -> str | None:
        if path == f"{victim}/size" and victim.exists():
            shutil.rmtree(victim.parents[2])  # the whole SCSI device goes, mid-read
        return real_read(path)

    monkeypatch.setattr(_sysfs, "read", read)
    drives = _scan.collect_drives()
    by_dev = {d.device: d for d in drives}
    assert by_dev["/dev/sdb"].size == 8011120640
    # sdc was half read: it may be reported without media, but nothing raised
    assert "/dev/sdc" not in by_dev or not by_dev["/dev/sdc"].has_media


def test_every_file_vanishing_is_tolerated(fake_sys: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Reads failing at any point (device unplugged while listing) give a partial list."""
    real_read = _sysfs.read
    calls = {"n": 0}

    def flaky(path: str) -> str | None:
        calls["n"] += 1
        return None if calls["n"] % 3 == 0 else real_read(path)

    monkeypatch.setattr(_sysfs, "read", flaky)
    for _ in range(5):
        _scan.collect_drives()
