"""Pure classification rules (no sysfs): DiskFacts in, Drive out."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from telemetry.drives import CARD_TYPES, DRIVE_TYPES, WARNINGS, Drive, Mountpoint
from telemetry.drives._classify import classify, resolve_system_disks
from telemetry.drives._facts import DiskFacts, MmcFacts, PartitionFacts, ScsiFacts, UsbFacts
from telemetry.drives._text import decode_udev_string

TELEMETRY_KEYS = {
    "drive_type",
    "bus_type",
    "bus_version",
    "size_bucket",
    "card_type",
    "usb_driver",
    "has_media",
    "is_read_only",
    "is_system",
    "is_virtual",
    "is_removable",
    "is_card",
    "is_scsi",
    "is_usb",
    "is_uas",
    "is_flash_target",
    "vendor",
    "model",
}
USB_PATH = "/devices/pci0000:00/0000:00:14.0/usb1/1-1/1-1:1.0/host6/target6:0:0/6:0:0:0/block/sdb"


def make_drive(device: str, **overrides: Any) -> Drive:
    """A plausible Drive for tests that do not care about most fields."""
    size = overrides.get("size", 8_000_000_000)
    base: dict[str, Any] = {
        "device": device,
        "device_path": None,
        "raw": device,
        "description": device,
        "display_name": device,
        "size": size,
        "block_size": 512,
        "logical_block_size": 512,
        "mountpoints": (),
        "partition_table_type": None,
        "bus_type": "USB",
        "bus_version": None,
        "enumerator": "test",
        "is_read_only": False,
        "is_system": False,
        "is_virtual": False,
        "is_removable": True,
        "is_card": False,
        "is_scsi": False,
        "is_usb": True,
        "is_uas": False,
        "has_media": size > 0,
        "card_type": None,
        "usb_driver": None,
        "drive_type": "usb-flash",
        "warnings": (),
        "is_flash_target": size > 0,
    }
    base.update(overrides)
    return Drive(**base)


def usb_facts(**kw: Any) -> DiskFacts:
    defaults: dict[str, Any] = {
        "name": "sdb",
        "devnode": "/dev/sdb",
        "devpath": USB_PATH,
        "size": 16_000_000_000,
        "removable": True,
        "subsystems": ("scsi", "scsi", "scsi", "usb", "usb", "usb", "pci"),
        "usb": UsbFacts(
            vendor_id="0951",
            product_id="1625",
            version=" 2.00",
            speed="480",
            interface_driver="usb-storage",
            interface_path="/sys/x/1-1:1.0",
        ),
        "scsi": ScsiFacts(
            vendor="Kingston", model="DT 101 II", lun=0, host_proc_name="usb-storage"
        ),
    }
    defaults.update(kw)
    return DiskFacts(**defaults)


def test_usb_stick() -> None:
    d = classify(usb_facts())
    assert (d.drive_type, d.bus_type, d.bus_version) == ("usb-flash", "USB", "2.00")
    assert d.is_usb
    assert d.is_removable
    assert not d.is_scsi
    assert not d.is_card
    assert d.usb_driver == "usb-storage"
    assert not d.is_uas
    assert d.is_flash_target
    assert d.warnings == ()
    assert d.description == "Kingston DT 101 II"
    assert d.display_name == d.device == d.raw == "/dev/sdb"


def test_id_bus_ata_does_not_hide_usb() -> None:
    """systemd#21450: a USB-SATA bridge gets ID_BUS=ata from ata_id."""
    d = classify(usb_facts(removable=False, properties={"ID_BUS": "ata", "ID_ATA": "1"}))
    assert d.is_usb
    assert d.bus_type == "USB"
    assert d.drive_type == "usb-disk"
    assert not d.is_system
    assert d.is_flash_target


def test_uas_from_interface_driver_then_host_then_udev() -> None:
    uas = UsbFacts(interface_driver="uas")
    assert classify(usb_facts(usb=uas)).is_uas
    no_iface = UsbFacts(interface_driver=None)
    scsi = ScsiFacts(model="X", host_proc_name="uas")
    assert classify(usb_facts(usb=no_iface, scsi=scsi)).usb_driver == "uas"
    scsi_unknown = ScsiFacts(model="X", host_proc_name=None)
    d = classify(usb_facts(usb=no_iface, scsi=scsi_unknown, properties={"ID_USB_DRIVER": "uas"}))
    assert d.is_uas
    # udev's ID_USB_INTERFACES lists UAS *capability*; it must not make a BOT disk UAS
    d = classify(usb_facts(properties={"ID_USB_INTERFACES": ":080650:080662:"}))
    assert not d.is_uas


def test_usb_disk_vs_stick_by_removable_bit() -> None:
    assert classify(usb_facts(removable=True)).drive_type == "usb-flash"
    assert classify(usb_facts(removable=False)).drive_type == "usb-disk"


def _reader(**kw: Any) -> Drive:
    return classify(usb_facts(**kw))


def test_card_reader_detection_paths() -> None:
    plain = ScsiFacts(vendor="Generic", model="Flash Disk", lun=0)
    # several LUNs on one interface
    assert _reader(scsi=plain, luns_on_interface=4).drive_type == "usb-card-reader"
    # a known reader id (udisks list), slot type per LUN
    ids = UsbFacts(vendor_id="8564", product_id="4000")
    d = _reader(usb=ids, scsi=dataclasses.replace(plain, model="Transcend", lun=0))
    assert (d.drive_type, d.card_type) == ("usb-card-reader", "sd")
    # model text
    for model, card in [
        ("SD/MMC", "sd"),
        ("Compact Flash", "cf"),
        ("SM/xD-Picture", "sm"),
        ("MS/MS-Pro", "ms"),
        ("USB3.0 CRW   -SD", "sd"),
        ("STORAGE DEVICE", "sd"),
    ]:
        d = _reader(scsi=dataclasses.replace(plain, model=model))
        assert (d.drive_type, d.card_type, d.is_card) == ("usb-card-reader", card, True), model
    # udisks' flags win over the model text
    d = _reader(scsi=plain, properties={"ID_DRIVE_FLASH_CF": "1"})
    assert d.card_type == "cf"
    # an empty removable LUN is a slot without a card
    d = _reader(scsi=plain, size=0)
    assert d.drive_type == "usb-card-reader"
    assert not d.has_media
    assert not d.is_flash_target
    # a plain stick is not a reader
    assert _reader(scsi=plain).drive_type == "usb-flash"


def mmc_facts(card_type: str | None, **kw: Any) -> DiskFacts:
    defaults: dict[str, Any] = {
        "name": "mmcblk0",
        "devnode": "/dev/mmcblk0",
        "devpath": "/devices/pci0000:00/0000:00:1c.0/mmc_host/mmc0/mmc0:aaaa/block/mmcblk0",
        "size": 32_000_000_000,
        "removable": False,
        "subsystems": ("mmc", "mmc_host", "pci"),
        "mmc": MmcFacts(card_type=card_type, name="SC32G", host_driver="sdhci-pci"),
    }
    defaults.update(kw)
    return DiskFacts(**defaults)


def test_sd_card_in_internal_slot_is_removable_and_offered() -> None:
    """drivelist#303: removable=0 on mmcblk must not make an SD card a system disk."""
    for card_type in ("SD", "SDcombo", None):
        d = classify(mmc_facts(card_type))
        assert (d.drive_type, d.bus_type, d.card_type) == ("sd-internal", "SD", "sd")
        assert d.is_card
        assert d.is_removable
        assert not d.is_system
        assert d.is_flash_target


def test_emmc_is_system_and_never_offered() -> None:
    """etcher#3608 / udisks#358: eMMC is on the mmc bus but soldered."""
    d = classify(mmc_facts("MMC"))
    assert (d.drive_type, d.bus_type, d.card_type) == ("emmc", "MMC", None)
    assert d.is_system
    assert not d.is_removable
    assert not d.is_card
    assert not d.is_flash_target


def test_sd_in_usb_attached_mmc_host_is_a_card_reader() -> None:
    d = classify(mmc_facts("SD", subsystems=("mmc", "mmc_host", "platform", "usb", "usb")))
    assert (d.drive_type, d.is_usb, d.is_card) == ("usb-card-reader", True, True)


def fixed(name: str, **kw: Any) -> DiskFacts:
    return DiskFacts(name=name, devnode=f"/dev/{name}", size=10**12, **kw)


def test_internal_fixed_disks_are_system() -> None:
    nvme = classify(
        fixed(
            "nvme0n1",
            devpath="/devices/pci0000:00/0000:00:1d.0/nvme/nvme0/nvme0n1",
            subsystems=("nvme", "pci"),
            nvme_model="Samsung SSD 970 EVO Plus 500GB",
        )
    )
    sata = classify(
        fixed(
            "sda",
            devpath="/devices/pci0000:00/0000:00:17.0/ata1/host0/target0:0:0/0:0:0:0/block/sda",
            subsystems=("scsi", "scsi", "scsi"),
            scsi=ScsiFacts(vendor="ATA", model="Samsung SSD 860", host_proc_name="ahci"),
        )
    )
    virtio = classify(
        fixed(
            "vda",
            devpath="/devices/pci0000:00/0000:00:02.0/virtio1/block/vda",
            subsystems=("virtio", "pci"),
            virtio=True,
        )
    )
    virtio_scsi = classify(
        fixed(
            "sda",
            devpath="/devices/pci0000:00/0000:00:03.0/virtio2/host0/target0:0:0/0:0:0:0/block/sda",
            subsystems=("scsi", "scsi", "scsi", "virtio", "pci"),
            virtio=True,
            scsi=ScsiFacts(vendor="QEMU", model="QEMU HARDDISK", host_proc_name="virtio_scsi"),
        )
    )
    sas = classify(
        fixed(
            "sdz",
            devpath="/devices/pci0000:00/0000:00:05.0/host3/target3:0:0/3:0:0:0/block/sdz",
            subsystems=("scsi", "scsi", "scsi", "pci"),
            scsi=ScsiFacts(vendor="SEAGATE", model="ST4000NM0023", host_proc_name="mpt3sas"),
        )
    )
    got = [(d.drive_type, d.bus_type, d.is_scsi) for d in (nvme, sata, virtio, virtio_scsi, sas)]
    assert got == [
        ("nvme", "NVME", False),
        ("sata", "SATA", True),
        ("virtio", "VIRTIO", False),
        ("virtio", "VIRTIO", False),
        ("other", "SCSI", True),
    ]
    for d in (nvme, sata, virtio, virtio_scsi, sas):
        assert d.is_system
        assert not d.is_removable
        assert not d.is_flash_target
        assert d.warnings == ("system",)  # "large" is not shown for system drives
    assert sata.vendor is None  # libata's "ATA" placeholder is not a vendor


def test_virtual_devices() -> None:
    loop = classify(
        DiskFacts(
            name="loop0",
            devnode="/dev/loop0",
            devpath="/devices/virtual/block/loop0",
            size=64 << 20,
            loop_backing_file="/home/u/image.img",
        )
    )
    zram = classify(
        DiskFacts(
            name="zram0", devnode="/dev/zram0", devpath="/devices/virtual/block/zram0", size=4 << 30
        )
    )
    dm = classify(
        DiskFacts(
            name="dm-0", devnode="/dev/dm-0", devpath="/devices/virtual/block/dm-0", size=4 << 30
        )
    )
    assert [(d.drive_type, d.bus_type) for d in (loop, zram, dm)] == [
        ("loop", "VIRTUAL"),
        ("zram", "VIRTUAL"),
        ("other", "VIRTUAL"),
    ]
    for d in (loop, zram, dm):
        assert d.is_virtual
        assert not d.is_system
        assert not d.is_removable
        assert not d.is_flash_target
    assert loop.description == "Loop device (image.img)"


def test_system_mounts_make_a_usb_disk_a_system_disk() -> None:
    """etcher#4051: booted from a USB SSD, that SSD is the system drive."""
    d = classify(
        usb_facts(removable=False), system_backing=True, mountpoints=[Mountpoint("/", "root")]
    )
    assert d.is_system
    assert not d.is_flash_target
    assert d.warnings == ("system", "mounted")


def test_warnings_order_and_rules() -> None:
    d = classify(
        usb_facts(read_only=True, size=256_000_000_000),
        mountpoints=[Mountpoint("/media/u/X", None)],
    )
    assert d.warnings == ("locked", "large", "mounted")
    assert not d.is_flash_target
    assert classify(usb_facts(size=128_000_000_000)).warnings == ()  # "above" 128e9
    assert classify(usb_facts(size=128_000_000_001)).warnings == ("large",)


def test_description_like_drivelist() -> None:
    facts = usb_facts(
        partitions=(
            PartitionFacts("sdb1", fs_label="BOOT"),
            PartitionFacts("sdb2", fs_label=None),
            PartitionFacts("sdb3", fs_label="BOOT"),
            PartitionFacts("sdb4", part_label="data"),
        ),
        scsi=ScsiFacts(vendor="  SanDisk ", model="Ultra   Fit  "),
    )
    d = classify(facts, partition_mounts={"sdb2": "/media/u/rootfs"})
    assert d.description == "SanDisk Ultra Fit (BOOT, /media/u/rootfs, data)"
    whole = classify(usb_facts(fs_label="STICK"))
    assert whole.description == "STICK Kingston DT 101 II"
    nothing = classify(mmc_facts("SD", mmc=MmcFacts(card_type="SD", name=None)))
    assert nothing.description == "SD card"


def test_udev_text_is_preferred_for_vendor_and_model_when_present() -> None:
    props = {"ID_MODEL_ENC": "Samsung\\x20SSD\\x20860\\x20EVO\\x20500GB\\x20\\x20", "ID_BUS": "ata"}
    d = classify(usb_facts(scsi=ScsiFacts(vendor="ASMT", model="2115"), properties=props))
    assert (d.vendor, d.model) == (None, "Samsung SSD 860 EVO 500GB")
    d = classify(usb_facts(properties={"ID_VENDOR": "Kingston", "ID_MODEL": "DT_101_II"}))
    assert (d.vendor, d.model) == ("Kingston", "DT 101 II")


def test_partition_table_and_device_path() -> None:
    assert (
        classify(usb_facts(properties={"ID_PART_TABLE_TYPE": "dos"})).partition_table_type == "mbr"
    )
    assert classify(usb_facts(partition_table_type="gpt")).partition_table_type == "gpt"
    assert (
        classify(usb_facts(properties={"ID_PART_TABLE_TYPE": "atari"})).partition_table_type is None
    )
    d = classify(usb_facts(properties={"ID_PATH": "pci-0000:00:14.0-usb-0:1:1.0-scsi-0:0:0:0"}))
    assert d.device_path == "/dev/disk/by-path/pci-0000:00:14.0-usb-0:1:1.0-scsi-0:0:0:0"
    links = "/dev/disk/by-id/usb-X /dev/disk/by-path/platform-xhci-usb-0:1:1.0-scsi-0:0:0:0"
    d = classify(usb_facts(properties={"DEVLINKS": links}))
    assert d.device_path == "/dev/disk/by-path/platform-xhci-usb-0:1:1.0-scsi-0:0:0:0"


def test_decode_udev_string() -> None:
    assert decode_udev_string("DT\\x20101\\x20II\\x20\\x20") == "DT 101 II"
    assert decode_udev_string("\\x20\\x20") is None
    assert decode_udev_string(None) is None


def test_resolve_system_disks() -> None:
    mounted = {
        "nvme0n1p1": ["/boot/efi"],
        "dm-0": ["/"],
        "sdb1": ["/media/u/X"],
        "zram0": ["[SWAP]"],
    }
    disks_of = {
        "nvme0n1p1": {"nvme0n1"},
        "dm-0": {"nvme0n1", "dm-0"},
        "sdb1": {"sdb"},
        "zram0": {"zram0"},
    }
    assert resolve_system_disks(mounted, disks_of) == {"nvme0n1", "dm-0", "zram0"}


# -- properties over arbitrary facts --------------------------------------------------------

_text = st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=0x2FF), max_size=20)
_facts = st.builds(
    DiskFacts,
    name=st.sampled_from(["sdb", "mmcblk0", "nvme0n1", "vda", "loop0", "zram0", "dm-1", "md0"]),
    devnode=st.just("/dev/xyz"),
    devpath=st.sampled_from(
        [
            USB_PATH,
            "/devices/virtual/block/loop0",
            "/devices/pci0000:00/0000:00:02.0/virtio1/block/vda",
            "/devices/platform/fe320000.mmc/mmc_host/mmc1/mmc1:0001/block/mmcblk1",
        ]
    ),
    size=st.integers(min_value=0, max_value=1 << 44),
    read_only=st.booleans(),
    removable=st.booleans(),
    subsystems=st.lists(
        st.sampled_from(["usb", "scsi", "mmc", "nvme", "virtio", "pci"]), max_size=5
    ).map(tuple),
    usb=st.none()
    | st.builds(
        UsbFacts,
        interface_driver=st.sampled_from([None, "uas", "usb-storage"]),
        vendor_id=st.sampled_from([None, "058f", "8564"]),
        product_id=st.sampled_from([None, "6366", "4000"]),
        version=_text,
    ),
    scsi=st.none()
    | st.builds(
        ScsiFacts,
        vendor=_text,
        model=_text,
        lun=st.integers(0, 7),
        host_proc_name=st.sampled_from([None, "ahci", "uas", "usb-storage", "sata_nv", "pata_x"]),
    ),
    mmc=st.none()
    | st.builds(
        MmcFacts, card_type=st.sampled_from([None, "SD", "SDcombo", "MMC", "SDIO"]), name=_text
    ),
    nvme_model=st.none() | _text,
    virtio=st.booleans(),
    luns_on_interface=st.integers(1, 6),
    properties=st.dictionaries(
        st.sampled_from(
            ["ID_BUS", "ID_USB_DRIVER", "ID_MODEL", "ID_SERIAL", "ID_DRIVE_FLASH_SD", "ID_PATH"]
        ),
        _text,
        max_size=4,
    ),
    fs_label=st.none() | _text,
)


@given(_facts, st.booleans(), st.lists(st.builds(Mountpoint, _text, st.none() | _text), max_size=3))
def test_invariants(facts: DiskFacts, system: bool, mounts: list[Mountpoint]) -> None:
    d = classify(facts, mountpoints=mounts, system_backing=system)
    assert d.drive_type in DRIVE_TYPES
    assert d.card_type is None or d.card_type in CARD_TYPES
    assert d.is_card == (d.card_type is not None)
    assert d.has_media == (d.size > 0)
    assert d.is_flash_target == (
        d.has_media and not d.is_virtual and not d.is_system and not d.is_read_only
    )
    assert list(d.warnings) == [w for w in WARNINGS if w in d.warnings]
    assert ("locked" in d.warnings) == d.is_read_only
    assert ("system" in d.warnings) == d.is_system
    assert ("mounted" in d.warnings) == bool(mounts)
    assert not ("large" in d.warnings and d.is_system)
    assert not (d.is_uas and not d.is_usb)
    if system:
        assert d.is_system
    assert d.description == " ".join(d.description.split())
    json.dumps(d.to_json())
    props = d.telemetry_properties()
    json.dumps(props)
    assert set(props) == TELEMETRY_KEYS
    assert "/dev/xyz" not in json.dumps(props)
