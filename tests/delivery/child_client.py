"""A child process running a real client, for crash, restart and multi-process tests.

Usage: ``python child_client.py MODE DATA_DIR ENDPOINT [ARGS...]`` with the upload policy's
fields as JSON in ``$CHILD_POLICY`` (empty: the defaults). Modes:

* ``track COUNT IDS_FILE``: track COUNT events, write their insert_ids to IDS_FILE (one a
  line, fsynced), wait until an upload failed (the endpoint must refuse), print ``tracked``,
  then wait (at most 120 s) to be killed;
* ``deliver TIMEOUT``: start a client (it replays the queue), ``flush(TIMEOUT)``, print a JSON
  summary, close;
* ``track-flush COUNT TAG TIMEOUT IDS_FILE``: track COUNT events tagged TAG, write their ids,
  ``flush(TIMEOUT)``, print a JSON summary, close.
"""

from __future__ import annotations

import json
import os
import sys
import time

import telemetry


def _client(data_dir: str, endpoint: str) -> telemetry.Client:
    fields = json.loads(os.environ.get("CHILD_POLICY") or "{}")
    client = telemetry.create_client(
        "delivery-test",
        "delivery-app",
        "1.0.0",
        endpoint,
        data_dir=data_dir,
        upload_policy=telemetry.UploadPolicy(**fields),
    )
    client.mark_notice_answered()  # the user answered the first-run notice: uploads may start
    return client


def _write_ids(path: str, ids: list[str]) -> None:
    with open(path, "w", encoding="utf-8") as out:
        out.write("".join(f"{i}\n" for i in ids))
        out.flush()
        os.fsync(out.fileno())


def _summary(client: telemetry.Client, drained: bool) -> str:
    return json.dumps(
        {
            "drained": drained,
            "queued": client._store.stats().events,
            "counters": client._store.counters(),
            "device_id": client.device_id,
        }
    )


def main(argv: list[str]) -> int:
    mode, data_dir, endpoint, *args = argv
    client = _client(data_dir, endpoint)
    if mode == "track":
        count, ids_file = int(args[0]), args[1]
        ids = [client.track("Crash test", {"i": i}) for i in range(count)]
        _write_ids(ids_file, [i for i in ids if i is not None])
        # Crash while the uploader is failing (the collector is down), not before it tried.
        deadline = time.monotonic() + 20
        while "upload_connect_error" not in client._store.counters():
            if time.monotonic() > deadline:
                return 2
            time.sleep(0.02)
        print("tracked", flush=True)
        time.sleep(120)  # the test kills us long before
        return 1
    if mode == "deliver":
        drained = client.flush(float(args[0]))
        print(_summary(client, drained), flush=True)
        client.close()
        return 0
    if mode == "track-flush":
        count, tag, timeout, ids_file = int(args[0]), args[1], float(args[2]), args[3]
        ids = [client.track("Lease test", {"i": i, "tag": tag}) for i in range(count)]
        _write_ids(ids_file, [i for i in ids if i is not None])
        drained = client.flush(timeout)
        print(_summary(client, drained), flush=True)
        client.close()
        return 0
    raise SystemExit(f"unknown mode {mode!r}")


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
