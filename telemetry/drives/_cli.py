"""``telemetry drives [--json] [--all] [--watch]``: ``run_cli()``, which the main CLI calls."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from typing import TextIO

from ._listing import list_drives
from ._model import Drive, DriveEvent
from ._monitor import DriveMonitor

__all__ = ["format_size", "format_table", "run_cli"]


def format_size(size: int) -> str:
    """Decimal units as drive vendors (and Etcher) print them: ``15.5 GB``; ``-`` for 0."""
    if size <= 0:
        return "-"
    value = float(size)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if value < 1000 or unit == "TB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    raise AssertionError("unreachable")  # pragma: no cover


def format_table(drives: list[Drive]) -> str:
    """A plain-text table: device, size, type, description, flags and warnings."""
    rows = [("DEVICE", "SIZE", "TYPE", "DESCRIPTION", "NOTES")]
    for d in drives:
        notes = list(d.warnings)
        if not d.has_media:
            notes.append("no media")
        if d.is_flash_target:
            notes.insert(0, "target")
        rows.append((d.device, format_size(d.size), d.drive_type, d.description, ",".join(notes)))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    lines = [
        "  ".join(cell.ljust(widths[i]) for i, cell in enumerate(r[:4])) + "  " + r[4] for r in rows
    ]
    return "\n".join(line.rstrip() for line in lines)


def _write_drives(drives: list[Drive], *, as_json: bool, show_all: bool, out: TextIO) -> None:
    if as_json:
        for drive in drives:
            out.write(json.dumps(drive.to_json(), sort_keys=False) + "\n")
        if not drives:
            out.write("[]\n")  # said, and still JSON
    elif drives:
        out.write(format_table(drives) + "\n")
    else:
        out.write("No drives found." + ("" if show_all else " (--all shows every disk)") + "\n")
    out.flush()


def _event_writer(*, as_json: bool, show_all: bool, out: TextIO) -> Callable[[DriveEvent], None]:
    """The monitor callback printing each event (of a flash target, unless ``show_all``)."""
    lock = threading.Lock()

    def on_event(event: DriveEvent) -> None:
        if not show_all and not (
            event.drive.is_flash_target
            or (event.previous is not None and event.previous.is_flash_target)
        ):
            return
        with lock:
            if as_json:
                out.write(json.dumps(event.to_json()) + "\n")
            else:
                d = event.drive
                out.write(
                    f"{event.action:<8}  {d.device}  {format_size(d.size)}  "
                    f"{d.drive_type}  {d.description}\n"
                )
            out.flush()

    return on_event


def _watch(on_event: Callable[[DriveEvent], None], stop: threading.Event | None) -> None:
    """Run a ``DriveMonitor`` until Ctrl-C or ``stop``."""
    done = stop if stop is not None else threading.Event()
    monitor = DriveMonitor(on_event)
    monitor.start()
    try:
        while not done.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        monitor.stop()


def run_cli(
    *,
    as_json: bool,
    show_all: bool,
    watch: bool,
    out: TextIO,
    stop: threading.Event | None = None,
) -> int:
    """The ``telemetry drives`` command: list drives (flash targets only unless ``show_all``),
    then optionally watch.

    ``as_json`` prints one JSON object per line: a drive (``Drive.to_json()`` field names)
    per drive (``[]`` when there is none), and in ``watch`` mode one
    ``{"event": …, "drive": {…}}`` per event.
    ``watch`` runs until Ctrl-C (or until ``stop`` is set, for embedding and tests).
    Returns the process exit status.
    """
    _write_drives(list_drives(all=show_all), as_json=as_json, show_all=show_all, out=out)
    if watch:
        _watch(_event_writer(as_json=as_json, show_all=show_all, out=out), stop)
    return 0
