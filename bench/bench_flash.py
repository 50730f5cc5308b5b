"""Flash throughput to a file target next to ``dd bs=4M conv=fsync``, and peak RSS while flashing.

Usage: ``uv run python bench/bench_flash.py [--size-mib 1024] [--dir DIR] [--rounds 1]``

One run: a random image of ``--size-mib`` MiB is written in ``--dir`` (default: the system temp
folder), then, alternately for ``--rounds`` rounds, ``dd if=IMG of=T bs=4M conv=fsync`` and the
demo's flasher (write + fsync, no validation: what dd does) copy it to a file in the same
folder. Each flash runs in a fresh child process whose RSS is sampled every 20 ms (psutil);
its peak comes from ``getrusage`` (``ru_maxrss``). A last child flashes with validation (the
demo's default), for the full cost. As root, the page cache is dropped before each copy, so
every run reads the image from disk; otherwise every run starts with the image cached.
Targets: flasher >= 0.9x dd, RSS flat and < 150 MB.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

_CHILD = """
import json, resource, sys, time
from demo_app.flasher import Flasher, Target, open_image
source = open_image(sys.argv[1])
validate = sys.argv[3] == "1"
sys.stdout.write("ready\\n"); sys.stdout.flush()
sys.stdin.readline()
start = time.perf_counter()
result = Flasher(source, Target.file(sys.argv[2]), validate=validate).run()
elapsed = time.perf_counter() - start
print(json.dumps({"seconds": elapsed, "write_seconds": result.write_seconds,
                  "validation": result.validation, "bytes": result.bytes_written,
                  "maxrss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))
"""


def _drop_caches() -> bool:
    if os.geteuid() != 0:
        return False
    os.sync()
    try:
        Path("/proc/sys/vm/drop_caches").write_text("3\n")
    except OSError:
        return False
    return True


def _warm(path: Path) -> None:
    with open(path, "rb") as f:
        while f.read(8 << 20):
            pass


def _prepare(image: Path, cold: bool) -> None:
    if not (cold and _drop_caches()):
        _warm(image)


def _dd(image: Path, target: Path) -> float:
    start = time.perf_counter()
    subprocess.run(
        ["dd", f"if={image}", f"of={target}", "bs=4M", "conv=fsync", "status=none"], check=True
    )
    return time.perf_counter() - start


def _flash_child(image: Path, target: Path, validate: bool) -> dict[str, float]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        [sys.executable, "-c", _CHILD, str(image), str(target), "1" if validate else "0"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env, cwd=REPO,
    )  # fmt: skip
    assert proc.stdin is not None
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "ready"
    watched = psutil.Process(proc.pid)
    baseline = watched.memory_info().rss
    samples: list[int] = []
    proc.stdin.write("go\n")
    proc.stdin.flush()
    while proc.poll() is None:
        try:
            samples.append(watched.memory_info().rss)
        except psutil.Error:
            break
        time.sleep(0.02)
    out = proc.stdout.read()
    if proc.wait() != 0:
        raise SystemExit(f"flash child failed ({proc.returncode})")
    data = json.loads(out.strip().splitlines()[-1])
    data["baseline_rss"] = baseline
    data["samples"] = samples
    return data


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--dir", type=Path, default=None, help="where image and targets go")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--warm", action="store_true", help="never drop the page cache")
    args = parser.parse_args()
    if shutil.which("dd") is None:
        raise SystemExit("dd not found")
    folder = Path(tempfile.mkdtemp(prefix="bench-flash-", dir=args.dir))
    size = args.size_mib << 20
    cold = not args.warm and os.geteuid() == 0
    try:
        image = folder / "image.img"
        with open(image, "wb") as f:
            for _ in range(args.size_mib):
                f.write(os.urandom(1 << 20))
        target = folder / "target.img"
        dd_times: list[float] = []
        flash_times: list[float] = []
        peaks: list[int] = []
        for _ in range(args.rounds):
            target.unlink(missing_ok=True)
            _prepare(image, cold)
            dd_times.append(_dd(image, target))
            target.unlink()
            _prepare(image, cold)
            run = _flash_child(image, target, validate=False)
            flash_times.append(run["seconds"])
            peaks.append(int(run["maxrss_kb"]) * 1024)
            assert run["bytes"] == size
        target.unlink(missing_ok=True)
        _prepare(image, cold)
        full = _flash_child(image, target, validate=True)
        assert full["validation"] == "passed"
        dd_s = statistics.median(dd_times)
        fl_s = statistics.median(flash_times)
        mb = size / 1e6
        fs = psutil.disk_partitions(all=True)
        mount = max((p for p in fs if str(folder).startswith(p.mountpoint)),
                    key=lambda p: len(p.mountpoint), default=None)  # fmt: skip
        print(f"image: {args.size_mib} MiB of random data in {folder.parent} "
              f"({mount.fstype if mount else '?'}); page cache "
              f"{'dropped before each copy (cold)' if cold else 'warm'}; "
              f"rounds: {args.rounds} (medians)")  # fmt: skip
        print()
        print(f"| {'copy':<42} | {'seconds':>8} | {'MB/s':>7} | {'vs dd':>6} |")
        print(f"|{'-' * 44}|{'-' * 10}|{'-' * 9}|{'-' * 8}|")
        rows = [
            ("dd bs=4M conv=fsync", dd_s),
            ("demo flasher (write + fsync)", fl_s),
            ("demo flasher (write + fsync + validate)", full["seconds"]),
        ]
        for name, secs in rows:
            print(f"| {name:<42} | {secs:>8.2f} | {mb / secs:>7.1f} | {dd_s / secs:>5.2f}x |")
        print()
        samples = full["samples"][len(full["samples"]) // 10 :] or full["samples"]
        mib = 1 << 20
        print("RSS of the flashing process (1 child per flash, sampled every 20 ms):")
        print(f"  after imports, before flashing: {full['baseline_rss'] / mib:7.1f} MiB")
        print(f"  while flashing with validation: min {min(samples) / mib:.1f} / median "
              f"{statistics.median(samples) / mib:.1f} / max {max(samples) / mib:.1f} MiB "
              f"({len(full['samples'])} samples)")  # fmt: skip
        print(f"  peak (ru_maxrss), with validation: {full['maxrss_kb'] / 1024:7.1f} MiB; "
              f"write only: {max(peaks) / mib:.1f} MiB (target < 150 MB)")  # fmt: skip
        ratio = dd_s / fl_s
        print(f"\nthroughput vs dd: {ratio:.2f}x (target >= 0.90x)")
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
