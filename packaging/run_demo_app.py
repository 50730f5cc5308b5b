"""PyInstaller entry point of the frozen demo: runs ``demo_app`` exactly as ``python -m demo_app``.

The frozen app has no ``-m``: its ``sys.executable`` is the bundle's own ``demo-app`` binary, so
the demo starts its collector child as ``sys.executable --collector-child ...`` and ``demo_app``'s
``main`` dispatches on that flag. Nothing here knows the demo's options.
"""

from __future__ import annotations

import runpy

if __name__ == "__main__":
    runpy.run_module("demo_app", run_name="__main__", alter_sys=True)
