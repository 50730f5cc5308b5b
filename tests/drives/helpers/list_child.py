"""Child process for tests: list drives (inside umockdev-run) and print JSON on stdout.

Usage: list_child.py MODE, with DRIVES_TEST_PROCFS naming a fixture procfs folder.
"""

from __future__ import annotations

import io
import json
import os
import sys

import psutil

psutil.PROCFS_PATH = os.environ.get("DRIVES_TEST_PROCFS", "/proc")

from telemetry.drives import list_drives, run_cli  # noqa: E402

mode = sys.argv[1] if len(sys.argv) > 1 else "list"
if mode in ("list", "default"):
    drives = list_drives(all=(mode == "list"))
    out = [{"drive": d.to_json(), "telemetry": d.telemetry_properties()} for d in drives]
    print(json.dumps(out))
elif mode in ("cli-json", "cli-table", "cli-json-all"):
    buf = io.StringIO()
    status = run_cli(
        as_json=mode.startswith("cli-json"),
        show_all=mode.endswith("-all"),
        watch=False,
        out=buf,
    )
    if mode == "cli-table":
        sys.stdout.write(buf.getvalue())
    else:
        print(json.dumps({"status": status, "lines": buf.getvalue().splitlines()}))
else:
    raise SystemExit(f"unknown mode {mode}")
