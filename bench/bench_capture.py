"""Benchmark (not a test): the cost of capturing one exception, our client next to sentry-sdk.

Prints, from one run on one machine, the median and p99 caller latency of ``capture_exception``
for a distinct error (a new fingerprint each time) and a repeated one (the same fingerprint,
another message each time):

- ``desktop-telemetry``: ``client.capture_exception(exc)`` on a real data dir (the report is
  built, anonymised and committed to SQLite in its own transaction before the call returns; a
  repeat updates the waiting report's count). At most 100 distinct reports may wait, so the
  distinct errors run in rounds of 99 on a fresh client and data dir.
- ``sentry_sdk.capture_exception(exc)`` in the same process and run, initialised with a DSN to
  127.0.0.1 and ``default_integrations=False``, once with a transport that drops every envelope
  (the SDK's own work only) and once with its real HTTP transport to a loopback server that
  answers 200 (its background worker sending while the caller captures; the SDK keeps at most
  100 envelopes in memory and drops beyond that, as it does on a slow network). Its defaults
  are kept otherwise (``include_local_variables=True``), and a third run drops envelopes with
  ``include_local_variables=False`` (our reports never hold local variables).

Each exception is raised and caught outside the timed region, through the same 8-frame stack;
only the capture call is timed. The clients take turns round by round, so a slow spell of this
shared machine falls on all of them alike. No traffic leaves the machine.

    uv run python bench/bench_capture.py [--captures 2000] [--rounds 10] [--dir PATH]
"""

from __future__ import annotations

import argparse
import gc
import http.server
import logging
import statistics
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import telemetry

DEAD_URL = "http://127.0.0.1:9"  # discard port: connection refused, loopback only
#: Distinct fingerprints one client may keep waiting (telemetry._store._reports).
MAX_WAITING = 100
DEPTH = 8

Capture = Callable[[BaseException], object]


# ---------------------------------------------------------------------------- errors


class WriteFailed(Exception):
    """The repeated error."""


_DISTINCT: list[type[Exception]] = []


def distinct_type(i: int) -> type[Exception]:
    """A new exception class per index: a new fingerprint for every SDK that groups."""
    while len(_DISTINCT) <= i:
        _DISTINCT.append(type(f"DistinctError{len(_DISTINCT)}", (Exception,), {}))
    return _DISTINCT[i]


def _raise(kind: type[Exception], message: str, depth: int) -> None:
    if depth:
        _raise(kind, message, depth - 1)
    raise kind(message)


def make_error(kind: type[Exception], message: str) -> BaseException:
    """``kind(message)`` raised through ``DEPTH`` frames and caught: it has a traceback."""
    try:
        _raise(kind, message, DEPTH)
    except Exception as exc:
        return exc
    raise AssertionError("unreachable")


def repeated(i: int) -> BaseException:
    return make_error(WriteFailed, f"could not write block {i}: No space left on device")


def distinct(i: int) -> BaseException:
    return make_error(distinct_type(i), f"distinct failure {i}")


def measure(
    capture: Capture, errors: Callable[[int], BaseException], start: int, n: int
) -> list[float]:
    """µs per ``capture(exc)`` call, the exceptions made before each timed call."""
    samples: list[float] = []
    clock = time.perf_counter_ns
    for i in range(start, start + n):
        exc = errors(i)
        begin = clock()
        capture(exc)
        samples.append((clock() - begin) / 1000.0)
    return samples


# ---------------------------------------------------------------------------- our client


@contextmanager
def our_client(root: str | None) -> Iterator[telemetry.Client]:
    with tempfile.TemporaryDirectory(dir=root) as tmp:
        client = telemetry.create_client("bench", "bench-app", "1.0", DEAD_URL, data_dir=tmp)
        try:
            client.capture_message("warm-up")  # builds the reporter (made on first use)
            yield client
        finally:
            client.close()


def ours_repeated(root: str | None, start: int, n: int) -> list[float]:
    with our_client(root) as client:
        client.capture_exception(repeated(-1))  # the first one inserts; the rest update
        samples = measure(client.capture_exception, repeated, start, n)
        [report] = [r for r in client.queued_reports() if "exception" in r]
        assert report["contexts"]["telemetry"]["count"] == n + 1, report["contexts"]
    return samples


def ours_distinct(root: str | None, start: int, n: int) -> list[float]:
    samples: list[float] = []
    done = 0
    while done < n:  # at most 99 distinct reports (and the warm-up) per client
        chunk = min(MAX_WAITING - 1, n - done)
        with our_client(root) as client:
            samples += measure(client.capture_exception, distinct, start + done, chunk)
            assert len(client.queued_reports()) == chunk + 1
        done += chunk
    return samples


# ---------------------------------------------------------------------------- sentry-sdk


class _Answer200(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as a real ingest endpoint

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        body = b'{"id":"0"}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextmanager
def loopback_200() -> Iterator[tuple[str, list[int]]]:
    """A server on 127.0.0.1 answering 200 to every POST; yields its address and a list
    holding the number of requests served."""
    served = [0]
    lock = threading.Lock()

    class Handler(_Answer200):
        def do_POST(self) -> None:
            super().do_POST()
            with lock:
                served[0] += 1

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}", served
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def sentry(address: str, *, drop: bool, local_variables: bool = True) -> Iterator[Capture]:
    import sentry_sdk
    from sentry_sdk.transport import Transport

    class Dropping(Transport):
        def capture_envelope(self, envelope: Any) -> None:
            pass

    options: dict[str, Any] = {"transport": Dropping} if drop else {}
    sentry_sdk.init(
        dsn=f"http://benchkey@{address}/1",
        default_integrations=False,
        include_local_variables=local_variables,
        **options,
    )
    try:
        yield sentry_sdk.capture_exception
    finally:
        sentry_sdk.get_client().close(timeout=5)


def sentry_run(
    address: str,
    drop: bool,
    errors: Callable[[int], BaseException],
    *,
    local_variables: bool = True,
) -> Callable[..., list[float]]:
    def run(_root: str | None, start: int, n: int) -> list[float]:
        with sentry(address, drop=drop, local_variables=local_variables) as capture:
            capture(errors(-1))  # warm-up
            return measure(capture, errors, start, n)

    return run


def no_locals(address: str, errors: Callable[[int], BaseException]) -> Callable[..., list[float]]:
    return sentry_run(address, True, errors, local_variables=False)


# ---------------------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--captures", type=int, default=2_000, help="per client and kind")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--dir", default=None, help="where our data dirs go (default: $TMPDIR)")
    args = parser.parse_args()
    logging.disable(logging.CRITICAL)
    per_round = max(1, args.captures // args.rounds)
    with loopback_200() as (address, served):
        runs: list[tuple[str, str, Callable[..., list[float]]]] = [
            ("desktop-telemetry (SQLite, durable)", "distinct", ours_distinct),
            ("desktop-telemetry (SQLite, durable)", "repeated", ours_repeated),
            ("sentry_sdk, transport drops", "distinct", sentry_run(address, True, distinct)),
            ("sentry_sdk, transport drops", "repeated", sentry_run(address, True, repeated)),
            ("sentry_sdk, HTTP 200 on loopback", "distinct", sentry_run(address, False, distinct)),
            ("sentry_sdk, HTTP 200 on loopback", "repeated", sentry_run(address, False, repeated)),
            ("sentry_sdk, drops, no local variables", "distinct", no_locals(address, distinct)),
            ("sentry_sdk, drops, no local variables", "repeated", no_locals(address, repeated)),
        ]
        samples: dict[tuple[str, str], list[float]] = {(n, k): [] for n, k, _ in runs}
        for round_ in range(args.rounds):
            for name, kind, run in runs:
                gc.collect()
                samples[name, kind] += run(args.dir, round_ * per_round, per_round)
        requests = served[0]
    print(
        f"capture_exception() caller latency, {per_round * args.rounds:,} captures per row"
        f" in {args.rounds} rounds, {DEPTH + 2}-frame tracebacks (µs)"
    )
    print(f"{'client':<38} {'error':<9} {'median':>8} {'p99':>8}")
    medians: dict[tuple[str, str], float] = {}
    for name, kind, _ in runs:
        ordered = sorted(samples[name, kind])
        medians[name, kind] = statistics.median(ordered)
        p99 = ordered[max(0, int(len(ordered) * 0.99) - 1)]
        print(f"{name:<38} {kind:<9} {medians[name, kind]:>8.1f} {p99:>8.1f}")
    for kind in ("distinct", "repeated"):
        ours = medians["desktop-telemetry (SQLite, durable)", kind]
        theirs = medians["sentry_sdk, transport drops", kind]
        print(f"{kind}: ours / sentry_sdk (transport drops) median: {ours / theirs:.2f}x")
    print(f"loopback server: {requests:,} envelopes received from sentry_sdk's HTTP transport")


if __name__ == "__main__":
    main()
