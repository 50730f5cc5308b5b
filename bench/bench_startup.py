"""Benchmark (not a test): what an app pays at launch for telemetry, next to Amplitude's SDK.

Each sample is a fresh interpreter (bytecode caches warm, as for an installed app) that
client exists: ``import telemetry`` + ``telemetry.create_client(...)`` (a real SQLite data
dir in a temporary directory, an endpoint on a closed loopback port, so nothing leaves the
machine), and ``import amplitude`` alone and with ``amplitude.Amplitude(...)``. Prints the
median of ``--runs`` samples of each and the ratio ours / amplitude's import.

    uv run python bench/bench_startup.py [--runs 9]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

OURS = """
import time
start = time.perf_counter()
import telemetry
client = telemetry.create_client("bench-project", "bench-app", "1.0",
                                 endpoint="http://127.0.0.1:9", data_dir={data_dir!r})
ready = time.perf_counter()
client.close()
print((ready - start) * 1000)
"""

OURS_IMPORT = """
import time
start = time.perf_counter()
import telemetry
print((time.perf_counter() - start) * 1000)
"""

AMPLITUDE_IMPORT = """
import time
start = time.perf_counter()
import amplitude
print((time.perf_counter() - start) * 1000)
"""

AMPLITUDE_CLIENT = """
import time
start = time.perf_counter()
import amplitude
client = amplitude.Amplitude("bench-key", amplitude.Config(server_url="http://127.0.0.1:9"))
ready = time.perf_counter()
client.shutdown()
print((ready - start) * 1000)
"""


def sample(code: str, runs: int) -> list[float]:
    """``runs`` timings (ms) of ``code``, each in a fresh interpreter, after one warm-up run
    that is not counted: bytecode caches are written (``PYTHONDONTWRITEBYTECODE`` is removed),
    as they are for an installed app, so neither side pays for compiling its sources."""
    dropped = ("DO_NOT_TRACK", "TELEMETRY_DISABLED", "PYTHONDONTWRITEBYTECODE")
    env = {k: v for k, v in os.environ.items() if k not in dropped}
    values = []
    for index in range(runs + 1):
        with tempfile.TemporaryDirectory() as tmp:
            text = code.replace("{data_dir!r}", repr(os.path.join(tmp, "data")))
            out = subprocess.run(
                [sys.executable, "-c", text],
                capture_output=True,
                text=True,
                check=True,
                env=env,
                timeout=120,
            ).stdout
        if index:  # the first run only warms the caches
            values.append(float(out.strip().splitlines()[-1]))
    return values


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=9)
    args = parser.parse_args()
    results = {
        "import telemetry": sample(OURS_IMPORT, args.runs),
        "import telemetry + create_client()": sample(OURS, args.runs),
        "import amplitude": sample(AMPLITUDE_IMPORT, args.runs),
        "import amplitude + Amplitude()": sample(AMPLITUDE_CLIENT, args.runs),
    }
    medians = {name: statistics.median(values) for name, values in results.items()}
    for name, value in medians.items():
        print(f"{name:<38} median {value:7.1f} ms   (of {args.runs} fresh interpreters)")
    ratio = medians["import telemetry + create_client()"] / medians["import amplitude"]
    print(f"ratio (telemetry + create_client) / (import amplitude): {ratio:.2f}")
    print(json.dumps({"medians_ms": medians, "ratio": ratio}))


if __name__ == "__main__":
    main()
