"""The write helper as a test runs it inside ``umockdev-run``: the drive listing reads the
mount table from the fixture procfs named by ``DRIVES_TEST_PROCFS`` (as
``tests/drives/helpers/list_child.py`` does), then ``demo_app.write_helper`` runs unchanged."""

from __future__ import annotations

import os

import psutil

psutil.PROCFS_PATH = os.environ.get("DRIVES_TEST_PROCFS", "/proc")

from demo_app.write_helper import main  # noqa: E402

if __name__ == "__main__":
    raise SystemExit(main())
