"""Time ``list_drives()`` next to ``lsblk --json --output-all`` on this machine, in one run.

Usage: ``uv run python bench/bench_drives.py [--repeat N]``

Each line is timed ``N`` times after one warm-up call; lsblk runs as the subprocess a program
would start (drivelist does exactly that), list_drives() in-process (what an app does).
The device counts show both look at the same disks: lsblk hides empty devices (unattached
loop devices, card-reader slots without a card) unless ``--all``; ``list_drives(all=True)``
lists them, so it is compared with both.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from telemetry.drives import backend_name, list_drives


def _time(fn: Callable[[], int], repeat: int) -> tuple[int, list[float]]:
    count = fn()  # warm-up (page cache, libudev/pyudev loading, first fork)
    samples = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        count = fn()
        samples.append(time.perf_counter() - t0)
    return count, samples


def _lsblk(*args: str) -> Callable[[], int]:
    cmd = ["lsblk", "--json", "--output-all", *args]

    def run() -> int:
        out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
        return len(json.loads(out)["blockdevices"])

    return run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=50, help="timed runs per line")
    args = parser.parse_args(argv)

    t0 = time.perf_counter()
    first = list_drives(all=True)
    cold = time.perf_counter() - t0

    rows: list[tuple[str, int, list[float]]] = []
    for label, fn in (
        ("list_drives(all=True)", lambda: len(list_drives(all=True))),
        ("list_drives()  [flash targets]", lambda: len(list_drives())),
        ("lsblk --json --output-all", _lsblk()),
        ("lsblk --json --output-all --all", _lsblk("--all")),
    ):
        count, samples = _time(fn, args.repeat)
        rows.append((label, count, samples))

    print(f"drives backend: {backend_name()}; {len(first)} disks; {args.repeat} runs per line")
    print(f"first list_drives(all=True) call in this process: {cold * 1000:.2f} ms")
    print()
    header = f"{'what':<34} {'disks':>5} {'min ms':>8} {'median ms':>10} {'p90 ms':>8}"
    print(header)
    print("-" * len(header))
    medians: dict[str, float] = {}
    for label, count, samples in rows:
        ordered = sorted(samples)
        median = statistics.median(ordered)
        p90 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.9))]
        medians[label] = median
        print(
            f"{label:<34} {count:>5} {ordered[0] * 1000:>8.2f} {median * 1000:>10.2f} "
            f"{p90 * 1000:>8.2f}"
        )
    ours = medians["list_drives(all=True)"]
    theirs = medians["lsblk --json --output-all"]
    print()
    print(
        f"list_drives(all=True) vs lsblk --json --output-all (median): "
        f"{theirs / ours:.1f}x {'faster' if ours < theirs else 'SLOWER'} "
        f"-> target {'met' if ours < theirs else 'missed'}"
    )
    return 0 if ours < theirs else 1


if __name__ == "__main__":
    sys.exit(main())
