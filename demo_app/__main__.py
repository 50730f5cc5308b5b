"""``python -m demo_app``: the Etcher-like flasher (see ``demo_app.app``)."""

from __future__ import annotations

from demo_app.app import main

if __name__ == "__main__":
    raise SystemExit(main())
