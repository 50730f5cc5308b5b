"""The uploader thread survives failing to load its HTTP transport: an import that fails once
(as one racing the app's own import of the same modules did in CI: "No module named
'urllib.request'" in the uploader thread) is retried at the first send, and events are delivered.
A child process, so that httpx is not imported yet; a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

CHILD = textwrap.dedent(
    """
    import importlib.abc, sys, threading, json, gzip
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class FailOnce(importlib.abc.MetaPathFinder):
        failed = False
        def find_spec(self, name, path, target=None):
            if name == "httpx" and not FailOnce.failed:
                FailOnce.failed = True
                raise ModuleNotFoundError("No module named 'urllib.request'")
            return None

    received = []
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.extend(json.loads(gzip.decompress(body))["events"])
            self.send_response(200); self.send_header("Content-Length", "2"); self.end_headers()
            self.wfile.write(b"{}")
        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    sys.meta_path.insert(0, FailOnce())
    import telemetry
    from telemetry._delivery import UploadPolicy
    policy = UploadPolicy(flush_interval=0.2, backoff_initial=0.2, backoff_cap=0.5)
    client = telemetry.create_client(
        "p", "a", "1", f"http://127.0.0.1:{server.server_address[1]}",
        data_dir=sys.argv[1], upload_policy=policy,
    )
    client.mark_notice_answered()
    client.track("After a failed import")
    delivered = client.flush(30)
    alive = client._uploader._thread.is_alive()
    errors = client.status()["counters"].get("upload_transport_errors")
    client.close()
    print(json.dumps({"failed_once": FailOnce.failed, "delivered": delivered, "alive": alive,
                      "errors": errors, "types": [e["event_type"] for e in received]}))
    """
)


def test_the_uploader_retries_a_transport_that_failed_to_load(tmp_path: Path):
    import json

    proc = subprocess.run(
        [sys.executable, "-c", CHILD, str(tmp_path / "data")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["failed_once"] is True
    assert result["alive"] is True
    assert result["delivered"] is True
    assert result["errors"] == 1
    assert result["types"] == ["$identify", "After a failed import"]
