"""Helpers to run drive-listing code inside umockdev test beds, in child processes.

umockdev's LD_PRELOAD must be active before an interpreter starts, so every check that needs
mocked /sys and /dev runs in a child process started by ``umockdev-run`` (static device trees)
or by ``helpers/hotplug_driver.py`` (a ``UMockdev.Testbed`` driven through PyGObject, for
uevents). The fixtures carry ``#`` provenance lines that umockdev does not accept: they are
stripped here.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
FIXTURES = HERE / "fixtures"
PROCFS = FIXTURES / "procfs"
HELPERS = HERE / "helpers"
REPO = HERE.parent.parent
SYSTEM_PYTHON = "/usr/bin/python3"

#: uevent properties the kernel itself sends; every other ``E:`` line is udev's (ID_*, DM_*,
#: DEVLINKS, ...) and is dropped by ``description(..., udev=False)`` to mimic a machine
#: without a udev daemon (containers, CI).
KERNEL_PROPERTIES = frozenset(
    {
        "ACTION",
        "BUSNUM",
        "DEVNAME",
        "DEVNUM",
        "DEVPATH",
        "DEVTYPE",
        "DISKSEQ",
        "DRIVER",
        "INTERFACE",
        "MAJOR",
        "MINOR",
        "MMC_NAME",
        "MMC_TYPE",
        "MODALIAS",
        "NVME_TRTYPE",
        "PARTN",
        "PARTNAME",
        "PCI_CLASS",
        "PCI_ID",
        "PCI_SLOT_NAME",
        "PCI_SUBSYS_ID",
        "PRODUCT",
        "SUBSYSTEM",
        "TYPE",
    }
)


def description(name: str, *, udev: bool = True) -> str:
    """A fixture's device description without the ``#`` lines (and udev's extras if asked)."""
    lines = []
    for line in (FIXTURES / name).read_text(encoding="utf-8").splitlines():
        if line.startswith("#"):
            continue
        if not udev:
            if line.startswith("S: "):
                continue
            if line.startswith("E: ") and line[3:].split("=", 1)[0] not in KERNEL_PROPERTIES:
                continue
        lines.append(line)
    return "\n".join(lines).strip("\n") + "\n"


def split_devices(text: str) -> list[tuple[str, str]]:
    """``(sysfs path, block)`` for every device of a description."""
    out = []
    for block in text.strip().split("\n\n"):
        block = block.strip("\n")
        if block:
            first = block.splitlines()[0]
            assert first.startswith("P: "), first
            out.append((first[3:].strip(), block))
    return out


def merge(texts: list[str]) -> str:
    """Several descriptions as one, each device once (umockdev refuses duplicates)."""
    seen: set[str] = set()
    blocks = []
    for text in texts:
        for path, block in split_devices(text):
            if path not in seen:
                seen.add(path)
                blocks.append(block)
    return "\n\n".join(blocks) + "\n"


def tools_present() -> bool:
    return bool(shutil.which("umockdev-run")) and Path(SYSTEM_PYTHON).exists()


def child_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env.pop("LD_PRELOAD", None)
    env.pop("UMOCKDEV_DIR", None)
    env.update(extra)
    return env


def run_hotplug_driver(driver: Path, *, timeout: float = 120) -> dict[str, Any]:
    """Run a hot-plug driver script (Debian's python3 with the UMockdev typelib) under
    ``umockdev-run``, with this interpreter for its worker; return its JSON summary."""
    proc = subprocess.run(
        ["umockdev-run", "--", SYSTEM_PYTHON, str(driver), sys.executable, str(FIXTURES)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=child_env(DRIVES_TEST_PROCFS=str(PROCFS / "empty")),
        check=False,
    )
    if proc.returncode != 0:
        raise AssertionError(f"driver failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    result: dict[str, Any] = json.loads(proc.stdout)
    return result


def run_listing(
    fixtures: list[str],
    tmp_path: Path,
    *,
    procfs: str = "empty",
    udev: bool = True,
    mode: str = "list",
    timeout: float = 60,
) -> Any:
    """List drives under ``umockdev-run`` with the given fixtures; returns the child's JSON.

    ``mode`` is ``list`` (``list_drives(all=True)`` as ``to_json()`` dicts plus telemetry
    properties), ``default`` (``list_drives()``), ``cli-json`` / ``cli-table`` (``run_cli``).
    """
    merged = merge([description(name, udev=udev) for name in fixtures])
    tmp_path.mkdir(parents=True, exist_ok=True)
    device_file = tmp_path / "devices.umockdev"
    device_file.write_text(merged, encoding="utf-8")
    cmd = [
        "umockdev-run",
        "-d",
        str(device_file),
        "--",
        sys.executable,
        str(HELPERS / "list_child.py"),
        mode,
    ]
    proc = subprocess.run(
        cmd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=child_env(DRIVES_TEST_PROCFS=str(PROCFS / procfs)),
        check=False,
    )
    if proc.returncode != 0:
        raise AssertionError(f"child failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    if mode == "cli-table":
        return proc.stdout
    return json.loads(proc.stdout)
