"""The psutil-only fallback, and the package without pyudev (other platforms)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import psutil
import pytest

from telemetry.drives import list_drives
from telemetry.drives._fallback import collect_drives, is_removable_mount

from . import _umockdev as um


@pytest.fixture
def desktop_procfs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(psutil, "PROCFS_PATH", str(um.PROCFS / "desktop"))


def test_lists_mounted_removable_volumes(desktop_procfs: None) -> None:
    drives = {d.device: d for d in collect_drives()}
    assert sorted(drives) == [
        "/dev/mmcblk0p1",
        "/dev/mmcblk0p2",
        "/dev/sdf1",
        "/dev/sdi1",
        "/dev/sdi2",
        "/dev/sdi3",
    ]
    files = drives["/dev/sdi3"]
    assert [m.path for m in files.mountpoints] == ["/media/user/MY FILES"]  # \040 decoded
    assert files.enumerator == "psutil"
    assert files.is_removable
    assert not files.is_system
    assert (files.drive_type, files.bus_type, files.card_type) == ("other", "UNKNOWN", None)
    assert "mounted" in files.warnings
    # the mount points do not exist here: no filesystem size, so nothing to offer
    assert files.size == 0
    assert not files.has_media
    assert not files.is_flash_target


def test_all_adds_system_volumes(desktop_procfs: None) -> None:
    drives = {d.device: d for d in collect_drives(include_all=True)}
    root = drives["/dev/mapper/nvme0n1p2_crypt"]
    assert root.is_system
    assert "system" in root.warnings
    assert not root.is_flash_target
    assert drives["/dev/nvme0n1p1"].is_system  # /boot/efi
    assert not drives["/dev/nvme0n1p1"].is_removable
    assert list_drives(backend="psutil", all=True) == sorted(
        drives.values(), key=lambda d: d.device
    )


def test_size_read_only_and_windows_style_removable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "self").mkdir()
    (tmp_path / "filesystems").write_text("\tvfat\n\text4\n")
    mnt = tmp_path / "stick"
    mnt.mkdir()
    (tmp_path / "self" / "mounts").write_text(
        f"/dev/sdz1 {mnt} vfat rw,removable 0 0\n/dev/sdy1 {mnt} vfat ro,removable 0 0\n"
    )
    monkeypatch.setattr(psutil, "PROCFS_PATH", str(tmp_path))
    drives = {d.device: d for d in list_drives(backend="psutil")}
    assert sorted(drives) == ["/dev/sdz1"]  # the read-only one is not a flash target
    d = drives["/dev/sdz1"]
    assert d.size == psutil.disk_usage(str(mnt)).total > 0
    assert d.has_media
    assert d.is_flash_target
    locked = {x.device: x for x in list_drives(backend="psutil", all=True)}["/dev/sdy1"]
    assert locked.is_read_only
    assert locked.warnings[0] == "locked"


def test_is_removable_mount() -> None:
    assert is_removable_mount("/dev/sdb1", "/media/u/X", "rw")
    assert is_removable_mount("/dev/disk4s1", "/Volumes/NO NAME", "rw,local")
    assert is_removable_mount("E:\\", "E:\\", "rw,removable")
    assert not is_removable_mount("D:\\", "D:\\", "ro,cdrom")
    assert not is_removable_mount("/dev/sda2", "/home", "rw")


def _run_child(code: str) -> dict[str, object]:
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=60,
        env=um.child_env(),
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    result: dict[str, object] = json.loads(proc.stdout.splitlines()[-1])
    return result


def test_works_without_pyudev() -> None:
    """pyudev unavailable (other platforms): imports, lists, monitors by polling."""
    result = _run_child(
        f"""
        import json, sys
        sys.modules["pyudev"] = None  # import pyudev now raises ImportError
        import psutil
        psutil.PROCFS_PATH = {str(um.PROCFS / "desktop")!r}
        import telemetry.drives as drives
        from telemetry.drives import DriveMonitor, backend_name, list_drives
        try:
            import telemetry.drives._udev
            udev = True
        except ImportError:
            udev = False
        listed = list_drives(all=True)
        mon = DriveMonitor(lambda e: None, rescan_interval=0.1)
        mon.start()
        has_source = mon.has_event_source
        stopped = mon.stop(timeout=15.0)
        print(json.dumps({{
            "backend": backend_name(),
            "udev_importable": udev,
            "enumerators": sorted({{d.enumerator for d in listed}}),
            "count": len(listed),
            "has_source": has_source,
            "stopped": stopped,
        }}))
        """
    )
    assert result == {
        "backend": "psutil",
        "udev_importable": False,
        "enumerators": ["psutil"],
        "count": 8,
        "has_source": False,
        "stopped": True,
    }


def test_other_platforms_use_the_fallback() -> None:
    result = _run_child(
        """
        import json, sys
        import psutil  # loaded for the real platform before the child pretends to be another
        from telemetry.drives import backend_name, list_drives
        sys.platform = "darwin"
        print(json.dumps({"backend": backend_name(),
                          "enumerators": sorted({d.enumerator for d in list_drives(all=True)})}))
        """
    )
    assert result["backend"] == "psutil"
    assert result["enumerators"] in ([], ["psutil"])
