"""Plays the demo for the collector-child tests: starts the demo's ``EmbeddedCollector`` (the
code path of ``python -m demo_app``), prints ``child <pid> <url>``, then ends as ``MODE`` says.

``python tests/demo/collector_parent.py MODE DATABASE``; MODE is one of:

* ``raise``: an unhandled exception, without stopping the child;
* ``exit``: a normal exit, without stopping the child;
* ``wait``: wait until killed;
* ``thread-wait``: start the child from a worker thread that ends before the line is printed
  (no Linux death signal: the stdin pipe alone ties the child), then wait until killed.
"""

from __future__ import annotations

import sys
import threading
from pathlib import Path

from demo_app.app import EmbeddedCollector


def main(mode: str, database: Path) -> int:
    collector = EmbeddedCollector(database)
    if mode == "thread-wait":
        starter = threading.Thread(target=collector.start)
        starter.start()
        starter.join()
    else:
        collector.start()
    print(f"child {collector.pid} {collector.url}", flush=True)
    if mode == "raise":
        raise RuntimeError("the demo crashed")
    if mode == "exit":
        return 0
    threading.Event().wait()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], Path(sys.argv[2])))
