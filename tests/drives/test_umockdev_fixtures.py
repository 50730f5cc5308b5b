"""list_drives() on umockdev device trees written from real devices (see fixtures/*.umockdev).

All fixtures together make one busy machine (device names and USB ports do not clash; the
shared xHCI and root hubs are merged); it is listed twice in a ``umockdev-run`` child: as
described (with udev's ID_* properties) and with every udev-only property and symlink
removed, as on a machine without a udev daemon. Classification must not change; only udev's
extras (labels, by-path links, partition table type) may disappear. One fixture alone in a
test bed is checked too (the multi-LUN reader, whose LUNs are counted per USB interface).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from . import _umockdev as um

# Expected classification per fixture and device. Keys are Drive fields; "mounts" lists the
# mount paths (with procfs "desktop").
T = True
F = False
EXPECTED: dict[str, dict[str, dict[str, Any]]] = {
    "usb2-flash-stick.umockdev": {
        "/dev/sdb": {
            "drive_type": "usb-flash",
            "bus_type": "USB",
            "bus_version": "2.00",
            "size": 8011120640,
            "is_usb": T,
            "is_uas": F,
            "usb_driver": "usb-storage",
            "is_card": F,
            "card_type": None,
            "is_removable": T,
            "is_read_only": F,
            "is_system": F,
            "is_virtual": F,
            "is_scsi": F,
            "has_media": T,
            "is_flash_target": T,
            "warnings": [],
            "mounts": [],
        },
    },
    "uas-ssd.umockdev": {
        # ID_BUS=ata (systemd#21450) must not matter: USB from the parent chain.
        "/dev/sdc": {
            "drive_type": "usb-disk",
            "bus_type": "USB",
            "bus_version": "3.10",
            "size": 500107862016,
            "is_usb": T,
            "is_uas": T,
            "usb_driver": "uas",
            "is_card": F,
            "card_type": None,
            "is_removable": T,
            "is_read_only": F,
            "is_system": F,
            "is_virtual": F,
            "is_scsi": F,
            "has_media": T,
            "is_flash_target": T,
            "warnings": ["large"],
            "mounts": [],
        },
    },
    "card-reader-multi-lun.umockdev": {
        **{
            dev: {
                "drive_type": "usb-card-reader",
                "bus_type": "USB",
                "size": 0,
                "is_usb": T,
                "is_uas": F,
                "is_card": T,
                "card_type": card,
                "is_removable": T,
                "is_read_only": F,
                "is_system": F,
                "is_virtual": F,
                "has_media": F,
                "is_flash_target": F,
                "warnings": [],
                "mounts": [],
            }
            for dev, card in (("/dev/sdd", "cf"), ("/dev/sde", "sm"), ("/dev/sdg", "ms"))
        },
        "/dev/sdf": {
            "drive_type": "usb-card-reader",
            "bus_type": "USB",
            "size": 31914983424,
            "is_usb": T,
            "is_uas": F,
            "is_card": T,
            "card_type": "sd",
            "is_removable": T,
            "is_read_only": F,
            "is_system": F,
            "is_virtual": F,
            "has_media": T,
            "is_flash_target": T,
            "warnings": ["mounted"],
            "mounts": ["/media/user/CANON_DC"],
        },
    },
    "sd-internal-partitioned.umockdev": {
        # drivelist#303: mmcblk0 has removable=0 but is a removable SD card.
        "/dev/mmcblk0": {
            "drive_type": "sd-internal",
            "bus_type": "SD",
            "size": 15931539456,
            "is_usb": F,
            "is_uas": F,
            "usb_driver": None,
            "is_card": T,
            "card_type": "sd",
            "is_removable": T,
            "is_read_only": F,
            "is_system": F,
            "is_virtual": F,
            "has_media": T,
            "is_flash_target": T,
            "warnings": ["mounted"],
            "mounts": ["/media/user/bootfs", "/media/user/rootfs1"],
        },
    },
    "sd-write-protected.umockdev": {
        "/dev/sdh": {
            "drive_type": "usb-card-reader",
            "bus_type": "USB",
            "bus_version": "3.00",
            "size": 7948206080,
            "is_usb": T,
            "is_card": T,
            "card_type": "sd",
            "is_removable": T,
            "is_read_only": T,
            "is_system": F,
            "is_virtual": F,
            "has_media": T,
            "is_flash_target": F,
            "warnings": ["locked"],
            "mounts": [],
        },
    },
    "nvme-system.umockdev": {
        "/dev/nvme0n1": {
            "drive_type": "nvme",
            "bus_type": "NVME",
            "size": 500107862016,
            "is_usb": F,
            "is_card": F,
            "card_type": None,
            "is_removable": F,
            "is_read_only": F,
            "is_system": T,
            "is_virtual": F,
            "has_media": T,
            "is_flash_target": F,
            "warnings": ["system", "mounted"],
            "mounts": ["/", "/boot/efi", "[SWAP]"],
            "model": "Samsung SSD 970 EVO Plus 500GB",
        },
        # the dm-crypt mapping on nvme0n1p2 that holds /
        "/dev/dm-0": {
            "drive_type": "other",
            "bus_type": "VIRTUAL",
            "size": 482646949888,
            "is_virtual": T,
            "is_system": T,
            "is_flash_target": F,
            "warnings": ["system", "mounted"],
            "mounts": ["/"],
        },
    },
    "sata-ssd.umockdev": {
        "/dev/sda": {
            "drive_type": "sata",
            "bus_type": "SATA",
            "size": 1000204886016,
            "is_usb": F,
            "is_scsi": T,
            "is_card": F,
            "is_removable": F,
            "is_read_only": F,
            "is_system": T,
            "is_virtual": F,
            "has_media": T,
            "is_flash_target": F,
            "warnings": ["system"],
            "mounts": [],
        },
    },
    "emmc.umockdev": {
        # etcher#3608: soldered eMMC must never be offered.
        **{
            dev: {
                "drive_type": "emmc",
                "bus_type": "MMC",
                "size": size,
                "is_usb": F,
                "is_card": F,
                "card_type": None,
                "is_removable": F,
                "is_read_only": ro,
                "is_system": T,
                "is_virtual": F,
                "has_media": T,
                "is_flash_target": F,
                "warnings": (["locked", "system"] if ro else ["system"]),
                "mounts": [],
            }
            for dev, size, ro in (
                ("/dev/mmcblk1", 62537072640, F),
                ("/dev/mmcblk1boot0", 4194304, T),
                ("/dev/mmcblk1boot1", 4194304, T),
            )
        },
    },
    "usb-stick-mounted-partitions.umockdev": {
        "/dev/sdi": {
            "drive_type": "usb-flash",
            "bus_type": "USB",
            "bus_version": "3.20",
            "size": 30752636928,
            "is_usb": T,
            "is_uas": F,
            "usb_driver": "usb-storage",
            "is_card": F,
            "is_removable": T,
            "is_read_only": F,
            "is_system": F,
            "is_virtual": F,
            "has_media": T,
            "is_flash_target": T,
            "warnings": ["mounted"],
            "mounts": ["/media/user/BOOT", "/media/user/rootfs", "/media/user/MY FILES"],
        },
    },
    "virtio.umockdev": {
        "/dev/vda": {
            "drive_type": "virtio",
            "bus_type": "VIRTIO",
            "size": 274877906944,
            "block_size": 4096,
            "logical_block_size": 512,
            "is_usb": F,
            "is_card": F,
            "is_removable": F,
            "is_read_only": F,
            "is_system": T,
            "is_virtual": F,
            "has_media": T,
            "is_flash_target": F,
            "warnings": ["system"],
            "mounts": [],
        },
    },
    "loop.umockdev": {
        "/dev/loop0": {
            "drive_type": "loop",
            "bus_type": "VIRTUAL",
            "size": 67108864,
            "is_virtual": T,
            "is_removable": F,
            "is_system": F,
            "has_media": T,
            "is_flash_target": F,
            "warnings": [],
            "description": "Loop device (raspios-test.img)",
        },
        "/dev/loop1": {
            "drive_type": "loop",
            "size": 0,
            "is_virtual": T,
            "has_media": F,
            "is_flash_target": F,
        },
    },
    "zram.umockdev": {
        "/dev/zram0": {
            "drive_type": "zram",
            "size": 0,
            "is_virtual": T,
            "is_system": F,
            "has_media": F,
        },
        # zram1 is swap in procfs "desktop"
        "/dev/zram1": {
            "drive_type": "zram",
            "size": 4294967296,
            "is_virtual": T,
            "is_system": T,
            "is_flash_target": F,
            "warnings": ["system", "mounted"],
            "mounts": ["[SWAP]"],
        },
    },
}

#: What only udev knows, checked in the "with udev" run.
UDEV_EXTRAS: dict[str, dict[str, Any]] = {
    "/dev/sdb": {
        "partition_table_type": "mbr",
        "device_path": "/dev/disk/by-path/pci-0000:00:14.0-usb-0:1:1.0-scsi-0:0:0:0",
        "description": "Kingston DT 101 II (KINGSTON)",
    },
    "/dev/sdc": {
        "partition_table_type": "gpt",
        "description": "Samsung SSD 860 EVO 500GB (Backup)",
    },
    "/dev/sdf": {"partition_table_type": "mbr", "description": "Generic- SD/MMC (CANON_DC)"},
    "/dev/mmcblk0": {"partition_table_type": "mbr", "description": "SC16G (bootfs, rootfs)"},
    "/dev/nvme0n1": {
        "partition_table_type": "gpt",
        "device_path": "/dev/disk/by-path/pci-0000:3d:00.0-nvme-1",
        "description": "Samsung SSD 970 EVO Plus 500GB (ESP, root, swap)",
    },
    "/dev/sda": {"description": "Samsung SSD 860 EVO 1TB (Data)"},
    "/dev/sdi": {"description": "SanDisk Ultra (BOOT, rootfs, MY FILES)"},
}

FIXTURE_NAMES = sorted(EXPECTED)


@pytest.fixture(scope="module")
def listings(tmp_path_factory: pytest.TempPathFactory) -> dict[bool, Any]:
    """All fixtures in one test bed, listed with and without udev properties (procfs
    desktop), keyed by "with udev"."""
    return {
        udev: um.run_listing(
            FIXTURE_NAMES, tmp_path_factory.mktemp("um"), procfs="desktop", udev=udev
        )
        for udev in (True, False)
    }


def _by_device(listing: Any) -> dict[str, dict[str, Any]]:
    return {entry["drive"]["device"]: entry for entry in listing}


def test_umockdev_tools_are_installed() -> None:
    assert um.tools_present(), "umockdev-run and /usr/bin/python3 are required (.ci/apt)"


@pytest.mark.parametrize("udev", [True, False], ids=["with-udev", "without-udev"])
@pytest.mark.parametrize("name", FIXTURE_NAMES)
def test_fixture_classification(listings: dict[bool, Any], name: str, udev: bool) -> None:
    drives = _by_device(listings[udev])
    expected = EXPECTED[name]
    assert set(expected) <= set(drives), sorted(drives)
    for device, fields in expected.items():
        drive = drives[device]["drive"]
        for key, value in fields.items():
            if key == "mounts":
                assert [m["path"] for m in drive["mountpoints"]] == value, (device, drive)
            elif key == "description" and not udev:
                continue
            else:
                assert drive[key] == value, (device, key, drive[key], value)


@pytest.mark.parametrize("name", FIXTURE_NAMES)
def test_udev_extras_are_used_when_present(listings: dict[bool, Any], name: str) -> None:
    with_udev = _by_device(listings[True])
    without = _by_device(listings[False])
    for device, extras in UDEV_EXTRAS.items():
        if device in EXPECTED[name]:
            for key, value in extras.items():
                assert with_udev[device]["drive"][key] == value, (device, key)
            # without a udev database there is no by-path link and no ID_PART_TABLE_TYPE
            assert without[device]["drive"]["device_path"] is None
            assert without[device]["drive"]["partition_table_type"] is None
            assert without[device]["drive"]["enumerator"] == "udev"


def test_every_listing_is_json_and_telemetry_safe(
    listings: dict[bool, Any],
) -> None:
    """No serial, label, mount path or device path ever reaches telemetry_properties()."""
    secrets = [
        "0013729982D5B97196320049",  # serials in the fixtures
        "S4XBNF0M123456X",
        "058F63666485",
        "0x1b2c3d4e",
        "000000000037",
        "S4EVNX0R123456A",
        "S3Z9NB0K654321W",
        "0x9a8b7c6d",
        "4C530001230512105412",
        "0123456789abcdef",
        "KINGSTON",  # labels
        "CANON_DC",
        "bootfs",
        "MY FILES",
        "/media/",  # mount paths
        "[SWAP]",
        "/dev/",  # device nodes and by-path links
        "by-path",
        "raspios",  # loop backing file
    ]
    for listing in listings.values():
        for entry in listing:
            props = entry["telemetry"]
            assert all(isinstance(v, str | int | bool | type(None)) for v in props.values())
            text = json.dumps(props)
            for secret in secrets:
                assert secret not in text, (secret, props)
            assert props["drive_type"] == entry["drive"]["drive_type"]
            assert props["size_bucket"]


def test_default_list_is_flash_targets_only(listings: dict[bool, Any], tmp_path: Path) -> None:
    """On the busy desktop the default list is exactly the writable removable media;
    system, read-only, empty and virtual disks are left out."""
    default = um.run_listing(FIXTURE_NAMES, tmp_path, procfs="desktop", mode="default")
    full = listings[True]
    offered = [e["drive"]["device"] for e in default]
    assert offered == ["/dev/mmcblk0", "/dev/sdb", "/dev/sdc", "/dev/sdf", "/dev/sdi"]
    listed = {e["drive"]["device"] for e in full}
    expected_all = {dev for devices in EXPECTED.values() for dev in devices}
    assert expected_all <= listed
    # mmcblk0 (internal SD) and the eMMC are told apart by the card type, not the bus
    kinds = {e["drive"]["device"]: e["drive"]["drive_type"] for e in full}
    assert kinds["/dev/mmcblk0"] == "sd-internal"
    assert kinds["/dev/mmcblk1"] == "emmc"
    assert not listed - expected_all - {"/dev/zram0"}, "no unexpected drives"


@pytest.mark.parametrize("udev", [True, False], ids=["with-udev", "without-udev"])
def test_card_reader_alone(tmp_path: Path, udev: bool) -> None:
    """The reader on its own (no other USB disks): LUN count, slot types, empty slots."""
    listing = _by_device(
        um.run_listing(["card-reader-multi-lun.umockdev"], tmp_path, procfs="empty", udev=udev)
    )
    assert sorted(listing) == ["/dev/sdd", "/dev/sde", "/dev/sdf", "/dev/sdg"]
    cards = {dev: e["drive"]["card_type"] for dev, e in listing.items()}
    assert cards == {"/dev/sdd": "cf", "/dev/sde": "sm", "/dev/sdf": "sd", "/dev/sdg": "ms"}
    media = {dev: e["drive"]["has_media"] for dev, e in listing.items()}
    assert media == {"/dev/sdd": False, "/dev/sde": False, "/dev/sdf": True, "/dev/sdg": False}
    assert listing["/dev/sdf"]["drive"]["is_flash_target"]
    assert listing["/dev/sdf"]["drive"]["mountpoints"] == []  # procfs "empty"


def test_the_build_vm(tmp_path: Path) -> None:
    """The recorded build VM (virtio root disk, loop and zram devices) with its own mounts."""
    listing = _by_device(
        um.run_listing(
            ["virtio.umockdev", "loop.umockdev", "zram.umockdev"], tmp_path, procfs="vm", udev=False
        )
    )
    vda = listing["/dev/vda"]["drive"]
    assert [m["path"] for m in vda["mountpoints"]] == ["/"]
    assert vda["warnings"] == ["system", "mounted"]
    assert not any(e["drive"]["is_flash_target"] for e in listing.values())
    assert listing["/dev/zram1"]["drive"]["is_system"] is False  # no swap in this procfs
