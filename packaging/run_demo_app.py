"""PyInstaller entry point of the frozen demo: runs ``demo_app`` exactly as ``python -m demo_app``.

The frozen app has no ``-m``: its ``sys.executable`` is the bundle's own ``demo-app`` binary, so
the demo starts its collector child as ``sys.executable --collector-child ...`` and ``demo_app``'s
``main`` dispatches on that flag.

One flag belongs to the bundle itself: ``demo-app --bundle-check`` prints, as JSON, what freezing
can break (the user data dir, the CA bundle and a TLS context built from it, libudev loaded from
the system and the drives it lists, the Qt platform plugins inside) and exits non-zero if one of
them is missing. The packaging tests and ``test_deb_chroot.sh`` run it next to ``--self-test``.
"""

from __future__ import annotations

import json
import runpy
import sys
from pathlib import Path
from typing import Any

BUNDLE_CHECK_FLAG = "--bundle-check"


def _loaded_library(prefix: str) -> str | None:
    """The path this process mapped ``prefix*`` from (``/proc/self/maps``), if any."""
    try:
        maps = Path("/proc/self/maps").read_text()
    except OSError:
        return None
    for line in maps.splitlines():
        path = line.split()[-1]
        if Path(path).name.startswith(prefix):
            return path
    return None


def bundle_check() -> int:
    """Print the bundle's view of the machine as JSON; 0 when every part is usable."""
    import ssl

    import certifi

    from demo_app.app import default_root
    from telemetry.drives import list_drives

    report: dict[str, Any] = {
        "frozen": bool(getattr(sys, "frozen", False)),
        "executable": sys.executable,
        "user_data_dir": str(default_root()),
        "filesystem_encoding": sys.getfilesystemencoding(),
    }
    problems = []
    if report["filesystem_encoding"] != "utf-8":  # non-ASCII image paths would fail
        problems.append(f"file names decode as {report['filesystem_encoding']}, not UTF-8")
    cafile = Path(certifi.where())
    report["cafile"] = str(cafile)
    report["cafile_in_bundle"] = str(cafile).startswith(getattr(sys, "_MEIPASS", "\0"))
    try:
        context = ssl.create_default_context(cafile=str(cafile))
        report["tls_ca_certs"] = context.cert_store_stats()["x509_ca"]
    except (OSError, ssl.SSLError) as exc:
        report["tls_ca_certs"] = 0
        problems.append(f"TLS: {exc}")
    if report["tls_ca_certs"] < 100:
        problems.append("TLS: fewer than 100 CA certificates loaded")
    try:
        report["drives"] = len(list_drives(all=True, backend="udev"))
        import pyudev  # loads the system's libudev through ctypes (never bundled)

        block = pyudev.Context().list_devices(subsystem="block")
        report["udev_block_devices"] = sum(1 for _ in block)
    except Exception as exc:  # noqa: BLE001 (reported, not raised: this is a diagnostic)
        problems.append(f"drives: {exc!r}")
    report["libudev"] = _loaded_library("libudev.so")
    if report["libudev"] is None:
        problems.append("drives: libudev was not loaded")
    plugins = Path(getattr(sys, "_MEIPASS", "")) / "PySide6" / "Qt" / "plugins" / "platforms"
    report["qt_platforms"] = sorted(p.name for p in plugins.glob("*.so"))
    if report["frozen"] and not {"libqxcb.so", "libqoffscreen.so"} <= set(report["qt_platforms"]):
        problems.append("Qt: xcb or offscreen platform plugin missing")
    report["problems"] = problems
    print(json.dumps(report, indent=1))
    return 1 if problems else 0


if __name__ == "__main__":
    if sys.argv[1:2] == [BUNDLE_CHECK_FLAG]:
        raise SystemExit(bundle_check())
    runpy.run_module("demo_app", run_name="__main__", alter_sys=True)
