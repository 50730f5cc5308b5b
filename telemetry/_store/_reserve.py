"""A small file of reserved space in the data dir, given up when the disk is full.

When the disk fills up, the counts of what was lost still have to reach the database. The
store keeps :data:`RESERVE_NAME` (:data:`RESERVE_BYTES` of zeros) next to ``telemetry.db``
while there is space, and removes it when counters cannot be written otherwise (at close);
it is made again once writes work.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Final

RESERVE_NAME: Final = "telemetry.reserve"
RESERVE_BYTES: Final = 64 * 1024


def ensure(data_dir: Path) -> None:
    """Create the reserve file unless it exists (silently not, when there is no space)."""
    path = data_dir / RESERVE_NAME
    if path.exists():
        return
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError:
        return
    try:
        os.write(fd, bytes(RESERVE_BYTES))
        os.fsync(fd)
    except OSError:
        with contextlib.suppress(OSError):
            path.unlink()
    finally:
        os.close(fd)


def release(data_dir: Path) -> bool:
    """Remove the reserve file to free its space; True when there was one."""
    try:
        (data_dir / RESERVE_NAME).unlink()
    except OSError:
        return False
    return True
