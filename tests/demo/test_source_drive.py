"""The source-drive guard (``demo_app.targets``): the drive holding the image is found from the
image file's filesystem device, through the drive's mount points and through sysfs.

The sysfs trees here are built the way the kernel lays them out (``/sys/dev/block/M:m``
links into ``/sys/devices``, a partition's folder inside its disk's, ``slaves/`` links
under a dm device), keyed by the real device number of the filesystem holding the test's
image, so the lookup runs on a real ``os.stat`` of a real file.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

from demo_app.targets import SOURCE_DRIVE_REASON, drive_rows, holds_image, image_location
from telemetry.drives import Drive, Mountpoint

from .conftest import image_bytes, write_image

PCI = "devices/pci0000:00/0000:00:14.0/usb1/1-1/1-1:1.0/host6/target6:0:0/6:0:0:0/block"


def _devnum(path: Path) -> str:
    st_dev = os.stat(path).st_dev
    return f"{os.major(st_dev)}:{os.minor(st_dev)}"


def _disk(sysfs: Path, name: str, partitions: int = 0) -> Path:
    disk = sysfs / PCI / name
    disk.mkdir(parents=True)
    (disk / "dev").write_text("8:240\n")
    for n in range(1, partitions + 1):
        part = disk / f"{name}{n}"
        part.mkdir()
        (part / "partition").write_text(f"{n}\n")
    return disk


def _link(sysfs: Path, devnum: str, target: Path) -> None:
    links = sysfs / "dev" / "block"
    links.mkdir(parents=True, exist_ok=True)
    (links / devnum).symlink_to(os.path.relpath(target, links))


def _drive(template: Drive, device: str, mountpoints: tuple[Mountpoint, ...] = ()) -> Drive:
    return dataclasses.replace(template, device=device, raw=device, mountpoints=mountpoints)


def test_image_on_a_partition_marks_the_whole_disk(
    tmp_path: Path, umockdev_drives: list[Drive]
) -> None:
    image = write_image(tmp_path / "img", image_bytes(1 << 20), "img")
    sysfs = tmp_path / "sys"
    disk = _disk(sysfs, "sdz", partitions=2)
    _link(sysfs, _devnum(image), disk / "sdz2")
    location = image_location(image, sysfs=sysfs)
    assert location is not None and location.disks == {"sdz"}
    template = umockdev_drives[0]
    assert holds_image(_drive(template, "/dev/sdz"), location)
    assert not holds_image(_drive(template, "/dev/sdy"), location)


def test_image_on_a_dm_device_marks_the_disks_under_it(
    tmp_path: Path, umockdev_drives: list[Drive]
) -> None:
    # LUKS or LVM: the filesystem is dm-0, on sdx2 and (a second physical volume) sdw.
    image = write_image(tmp_path / "img", image_bytes(1 << 20), "img")
    sysfs = tmp_path / "sys"
    sdx = _disk(sysfs, "sdx", partitions=2)
    sdw = _disk(sysfs, "sdw")
    dm = sysfs / "devices" / "virtual" / "block" / "dm-0"
    (dm / "slaves").mkdir(parents=True)
    (dm / "slaves" / "sdx2").symlink_to(os.path.relpath(sdx / "sdx2", dm / "slaves"))
    (dm / "slaves" / "sdw").symlink_to(os.path.relpath(sdw, dm / "slaves"))
    _link(sysfs, _devnum(image), dm)
    location = image_location(image, sysfs=sysfs)
    assert location is not None and location.disks == {"sdx", "sdw"}
    template = umockdev_drives[0]
    assert holds_image(_drive(template, "/dev/sdx"), location)
    assert holds_image(_drive(template, "/dev/sdw"), location)
    assert not holds_image(_drive(template, "/dev/sdv"), location)


def test_mount_points_on_the_images_filesystem_mark_the_drive(
    tmp_path: Path, umockdev_drives: list[Drive]
) -> None:
    # No sysfs entry for the filesystem (tmpfs, overlayfs, another OS): the mount points decide.
    image = write_image(tmp_path / "img", image_bytes(1 << 20), "img")
    location = image_location(image, sysfs=tmp_path / "no-sysfs")
    assert location is not None and location.disks == frozenset()
    stick = next(d for d in umockdev_drives if d.device == "/dev/sdi")
    on_it = _drive(stick, "/dev/sdi", (Mountpoint("[SWAP]"), Mountpoint(str(tmp_path / "img"))))
    elsewhere = _drive(stick, "/dev/sdj", (Mountpoint("/proc"), Mountpoint("/no/such/mount")))
    rows = drive_rows([on_it, elsewhere], image_size=1 << 20, show_system=False, image=location)
    by_device = {r.drive.device: r for r in rows}
    assert not by_device["/dev/sdi"].enabled
    assert by_device["/dev/sdi"].reason == SOURCE_DRIVE_REASON
    assert by_device["/dev/sdj"].enabled and by_device["/dev/sdj"].reason is None
    # Without an image nothing is the source drive.
    assert all(r.enabled for r in drive_rows([on_it], image_size=None, show_system=False))


def test_an_unreadable_image_has_no_location(tmp_path: Path) -> None:
    assert image_location(tmp_path / "missing.img") is None
