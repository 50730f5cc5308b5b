"""``python -m demo_app``: the Etcher-like flasher (see ``demo_app.app``); with
``--write-helper`` first, the write helper (``demo_app.write_helper``), as the frozen bundle
runs it."""

from __future__ import annotations

import sys

if __name__ == "__main__":
    if sys.argv[1:2] == ["--write-helper"]:  # demo_app.flasher._protocol.HELPER_FLAG
        from demo_app.write_helper import main as helper_main

        raise SystemExit(helper_main(sys.argv[2:]))
    from demo_app.app import main

    raise SystemExit(main())
