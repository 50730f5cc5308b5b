"""Pins ``telemetry.drives``' public surface: names, signatures, constants and Drive's fields.

A change here is an API change for every app using the package: when one is intended,
update the expectation in the same commit and say so in its message.
"""

from __future__ import annotations

import dataclasses
import inspect
import typing

import telemetry.drives as drives

ALL = [
    "CARD_TYPES",
    "DRIVE_TYPES",
    "WARNINGS",
    "Drive",
    "DriveEvent",
    "DriveEventAction",
    "DriveMonitor",
    "Mountpoint",
    "backend_name",
    "list_drives",
    "run_cli",
    "size_bucket",
]

# str(inspect.signature(...)) of each public function and class constructor.
SIGNATURES = {
    "Drive": (
        "(device: 'str', device_path: 'str | None', raw: 'str', description: 'str', "
        "display_name: 'str', size: 'int', block_size: 'int', logical_block_size: 'int', "
        "mountpoints: 'tuple[Mountpoint, ...]', partition_table_type: 'str | None', "
        "bus_type: 'str', bus_version: 'str | None', enumerator: 'str', "
        "is_read_only: 'bool', is_system: 'bool', is_virtual: 'bool', is_removable: 'bool', "
        "is_card: 'bool', is_scsi: 'bool', is_usb: 'bool', is_uas: 'bool', "
        "has_media: 'bool', card_type: 'str | None', usb_driver: 'str | None', "
        "drive_type: 'str', warnings: 'tuple[str, ...]', is_flash_target: 'bool', "
        "vendor: 'str | None' = None, model: 'str | None' = None) -> None"
    ),
    "DriveEvent": (
        "(action: 'DriveEventAction', drive: 'Drive', previous: 'Drive | None' = None) -> None"
    ),
    "DriveMonitor": (
        "(callback: 'Callable[[DriveEvent], None]', *, rescan_interval: 'float' = 30.0, "
        "debounce: 'float' = 0.2, lister: 'Callable[[], list[Drive]] | None' = None, "
        "event_source: 'Callable[[], EventSource | None] | None' = None) -> 'None'"
    ),
    "Mountpoint": "(path: 'str', label: 'str | None' = None) -> None",
    "backend_name": "() -> 'str'",
    "list_drives": "(*, all: 'bool' = False, backend: 'Backend' = 'auto') -> 'list[Drive]'",
    "run_cli": (
        "(*, as_json: 'bool', show_all: 'bool', watch: 'bool', out: 'TextIO', "
        "stop: 'threading.Event | None' = None) -> 'int'"
    ),
    "size_bucket": "(size: 'int') -> 'str'",
}

# Public methods (signature) and properties of the public classes.
MEMBERS = {
    "Drive": {
        "telemetry_properties": "(self) -> 'dict[str, str | int | bool | None]'",
        "to_json": "(self) -> 'dict[str, Any]'",
    },
    "DriveEvent": {"device": "property", "to_json": "(self) -> 'dict[str, Any]'"},
    "DriveMonitor": {
        "drives": "property",
        "has_event_source": "property",
        "rescan": "(self) -> 'None'",
        "running": "property",
        "start": "(self) -> 'None'",
        "stop": "(self, timeout: 'float' = 2.0) -> 'bool'",
    },
    "Mountpoint": {"to_json": "(self) -> 'dict[str, str | None]'"},
}

DRIVE_FIELDS = [
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
    "has_media",
    "card_type",
    "usb_driver",
    "drive_type",
    "warnings",
    "is_flash_target",
    "vendor",
    "model",
]


def test_all_is_pinned() -> None:
    assert drives.__all__ == ALL
    assert all(hasattr(drives, name) for name in ALL)


def test_signatures_are_pinned() -> None:
    callables = {
        name: str(inspect.signature(getattr(drives, name)))
        for name in ALL
        if inspect.isclass(getattr(drives, name)) or inspect.isfunction(getattr(drives, name))
    }
    assert callables == SIGNATURES


def test_public_members_are_pinned() -> None:
    found: dict[str, dict[str, str]] = {}
    for cls_name in MEMBERS:
        members: dict[str, str] = {}
        for name, member in vars(getattr(drives, cls_name)).items():
            if name.startswith("_"):
                continue
            if inspect.isfunction(member):
                members[name] = str(inspect.signature(member))
            elif isinstance(member, property):
                members[name] = "property"
        found[cls_name] = members
    assert found == MEMBERS


def test_drive_fields_are_pinned() -> None:
    assert [f.name for f in dataclasses.fields(drives.Drive)] == DRIVE_FIELDS


def test_constants_are_pinned() -> None:
    assert drives.CARD_TYPES == ("sd", "cf", "sm", "ms")
    assert drives.DRIVE_TYPES == (
        "usb-flash",
        "usb-disk",
        "usb-card-reader",
        "sd-internal",
        "emmc",
        "nvme",
        "sata",
        "virtio",
        "loop",
        "zram",
        "other",
    )
    assert drives.WARNINGS == ("locked", "system", "large", "mounted")
    assert typing.get_args(drives.DriveEventAction) == ("attached", "changed", "removed")
