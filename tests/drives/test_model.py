"""The Drive value type: field names, JSON form, telemetry properties, size buckets."""

from __future__ import annotations

import dataclasses
import json

import pytest

from telemetry.drives import Drive, DriveEvent, Mountpoint, size_bucket

from .test_classify import TELEMETRY_KEYS, make_drive

#: drivelist's Drive fields in snake case, then ours (issue 4, "Drive fields").
DRIVELIST_FIELDS = [
    "device",
    "device_path",
    "raw",
    "description",
    "display_name",
    "size",
    "block_size",
    "logical_block_size",
    "mountpoints",
    "partition_table_type",
    "bus_type",
    "bus_version",
    "enumerator",
    "is_read_only",
    "is_system",
    "is_virtual",
    "is_removable",
    "is_card",
    "is_scsi",
    "is_usb",
    "is_uas",
]
OUR_FIELDS = [
    "has_media",
    "card_type",
    "usb_driver",
    "drive_type",
    "warnings",
    "is_flash_target",
    "vendor",
    "model",
]


def test_field_names_and_order() -> None:
    assert [f.name for f in dataclasses.fields(Drive)] == DRIVELIST_FIELDS + OUR_FIELDS


def test_drive_is_frozen_and_hashable() -> None:
    d = make_drive("/dev/sdb", mountpoints=(Mountpoint("/media/u/A", "A"),))
    with pytest.raises(dataclasses.FrozenInstanceError):
        d.size = 1  # type: ignore[misc]
    assert hash(d) == hash(dataclasses.replace(d))


def test_to_json_is_plain_json_with_every_field() -> None:
    d = make_drive(
        "/dev/sdb",
        mountpoints=(Mountpoint("/media/u/MY FILES", "MY FILES"), Mountpoint("[SWAP]")),
        warnings=("mounted",),
    )
    data = d.to_json()
    assert list(data) == DRIVELIST_FIELDS + OUR_FIELDS
    assert data["mountpoints"] == [
        {"path": "/media/u/MY FILES", "label": "MY FILES"},
        {"path": "[SWAP]", "label": None},
    ]
    assert data["warnings"] == ["mounted"]
    assert json.loads(json.dumps(data)) == data


def test_telemetry_properties_leave_identifying_data_out() -> None:
    d = make_drive(
        "/dev/disk/by-id/usb-Kingston_0013729982D5B97196320049",
        device_path="/dev/disk/by-path/pci-0000:00:14.0-usb-0:1:1.0-scsi-0:0:0:0",
        description="MYLABEL Kingston DT 101 II (MYLABEL)",
        mountpoints=(Mountpoint("/media/alice/MYLABEL", "MYLABEL"),),
        vendor="Kingston",
        model="DT 101 II\x00\x1b[31m" + "x" * 100,
        size=15_500_000_000,
    )
    props = d.telemetry_properties()
    assert set(props) == TELEMETRY_KEYS
    text = json.dumps(props)
    for secret in ("0013729982D5B97196320049", "MYLABEL", "alice", "/dev/", "by-path"):
        assert secret not in text
    assert props["size_bucket"] == "16GB"
    assert props["vendor"] == "Kingston"
    model = props["model"]
    assert isinstance(model, str)
    assert model.startswith("DT 101 II")
    assert len(model) <= 48
    assert model.isprintable()
    assert "\x1b" not in model


@pytest.mark.parametrize(
    ("size", "bucket"),
    [
        (0, "none"),
        (-1, "none"),
        (64 << 20, "<1GB"),
        (1 << 30, "1GB"),
        (4_000_000_000, "4GB"),
        (7_948_206_080, "8GB"),
        (15_500_000_000, "16GB"),
        (31_914_983_424, "32GB"),
        (61_530_000_000, "64GB"),
        (123_000_000_000, "128GB"),
        (128_000_000_000, "128GB"),
        (256_060_514_304, "256GB"),
        (500_107_862_016, "512GB"),
        (1_000_204_886_016, "1TB"),
        (2_000_398_934_016, "2TB"),
        (16 << 40, "16TB"),
        ((16 << 40) + 1, ">16TB"),
    ],
)
def test_size_bucket(size: int, bucket: str) -> None:
    assert size_bucket(size) == bucket


def test_drive_event_json() -> None:
    before = make_drive("/dev/sdf", size=0)
    after = dataclasses.replace(before, size=32_000_000_000, has_media=True)
    event = DriveEvent("changed", after, before)
    assert event.device == "/dev/sdf"
    data = event.to_json()
    assert data["event"] == "changed"
    assert data["drive"]["has_media"] is True
    assert data["previous"]["has_media"] is False
    assert "previous" not in DriveEvent("attached", after).to_json()
