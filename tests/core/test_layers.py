"""The core stands alone and starts light: it imports with Qt, the web framework and the
PostgreSQL driver made unimportable, and ``import telemetry`` plus a client that records
loads neither the HTTP stack nor sqlite-utils on the caller's thread."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

BLOCKER = textwrap.dedent(
    """
    import importlib.abc, sys

    BLOCKED = {blocked!r}

    class Block(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in BLOCKED:
                raise ImportError(f"{{name}} is blocked in this test")
            return None

    sys.meta_path.insert(0, Block())
    """
)


def run_child(code: str, blocked: tuple[str, ...], tmp_path: Path) -> dict[str, object]:
    script = BLOCKER.format(blocked=set(blocked)) + textwrap.dedent(code)
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    proc = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert proc.returncode == 0, proc.stderr
    result: dict[str, object] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def test_the_core_imports_and_records_without_qt_web_framework_or_postgres(
    tmp_path: Path,
) -> None:
    result = run_child(
        f"""
        import json, sys
        import telemetry, telemetry.drives, telemetry.cli, telemetry.testing
        with telemetry.create_client("proj1", "app", data_dir={str(tmp_path / "d")!r},
                                     upload=False) as client:
            client.track("Started", {{"n": 1}})
            queued = client.queue_stats().events
        loaded = sorted(m for m in sys.modules
                        if m.split(".")[0] in ("PySide6", "starlette", "uvicorn", "psycopg"))
        print(json.dumps({{"queued": queued, "loaded": loaded}}))
        """,
        ("PySide6", "shiboken6", "starlette", "uvicorn", "psycopg"),
        tmp_path,
    )
    assert result == {"queued": 2, "loaded": []}  # the event and the client's $identify


def test_import_and_a_recording_client_leave_http_and_sqlite_utils_unloaded(
    tmp_path: Path,
) -> None:
    result = run_child(
        f"""
        import json, sys
        import telemetry
        after_import = sorted(m for m in ("httpx", "sqlite_utils", "psutil") if m in sys.modules)
        client = telemetry.create_client("proj1", "app", data_dir={str(tmp_path / "d")!r},
                                         upload=False)
        client.track("Started")
        after_track = sorted(m for m in ("httpx", "sqlite_utils") if m in sys.modules)
        client.close()
        print(json.dumps({{"after_import": after_import, "after_track": after_track}}))
        """,
        (),
        tmp_path,
    )
    assert result == {"after_import": [], "after_track": []}
