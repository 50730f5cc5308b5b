"""A scripted failing flash for the privacy scan: the demo's window, embedded collector and
client, offscreen, with the library's log at DEBUG on standard error.

``python tests/demo/privacy_child.py DATA_DIR IMAGE TARGET``: loads ``IMAGE``, flashes it to
``TARGET`` (a path the writer cannot open) and waits until ``Write failed`` reached the
collector; exits with 1, saying why on standard error, when something else happens.
"""

from __future__ import annotations

import logging
import sys
import threading
from pathlib import Path

from demo_app.app import _qapp, _start_collector, build_window, make_client, wait_for
from demo_app.flasher import Target


def main(root: Path, image: Path, target: Path) -> int:
    logging.basicConfig(level=logging.DEBUG, stream=sys.stderr)
    collector = _start_collector(root)
    client = make_client(root / "telemetry", collector.url)
    try:
        app = _qapp(offscreen=True)
        window = build_window(client, root, connectivity=False)
        window.show()
        if window.notice is not None:
            window.notice.ok_button.click()
        if not window.load_image(image):
            print("privacy-child: the image was refused", file=sys.stderr)
            return 1
        window.select_target(Target.file(target))
        if not window.start_flash() or not wait_for(app, lambda: window.state != "flashing", 60):
            print("privacy-child: the flash did not start or end", file=sys.stderr)
            return 1
        threading.Thread(target=client.flush, args=(20.0,), daemon=True).start()

        def failed_rows() -> list[dict[str, object]]:
            return [r for r in collector.rows() if r["event_type"] == "[Etcher] Write failed"]

        delivered = wait_for(app, lambda: bool(failed_rows()), 30)
        window.shutdown()
        window.stop_helpers()
        if not delivered:
            print(f"privacy-child: no failure delivered ({window.state})", file=sys.stderr)
            return 1
        print(f"privacy-child: {window.state} {window.last_error and window.last_error.code}")
        return 0
    finally:
        client.close()
        collector.stop()


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])))
