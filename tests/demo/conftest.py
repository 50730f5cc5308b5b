"""Fixtures for the demo app tests: offscreen Qt, real collector child, real SQLite, real images.

``QT_QPA_PLATFORM=offscreen`` is set before pytest-qt creates the ``QApplication``.
"""

from __future__ import annotations

import os

os.environ["QT_QPA_PLATFORM"] = "offscreen"

import bz2
import gzip
import lzma
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import QObject, Qt, QTimer
from PySide6.QtWidgets import QApplication, QFileDialog, QLineEdit, QWidget
from pytestqt.qtbot import QtBot

from demo_app.app import build_window, make_client
from telemetry.drives import Drive, Mountpoint
from telemetry.qt import QtDriveWatcher
from tests._fixtures import _no_environment_veto  # noqa: F401  (autouse: registered by the import)
from tests.collector_process import CollectorProcess
from tests.delivery._support import fast_policy
from tests.drives._umockdev import run_listing

#: Short waits everywhere: these tests are about behaviour, not the production timings
#: (the delivery tests' policy). The request timeouts are the production ones: a collector
#: child slowed down by a loaded machine must not make a request time out and be sent again
#: (the opt-out test counts the requests).
FAST_POLICY = fast_policy(connect_timeout=10.0, total_timeout=30.0)


FIXTURES = [
    "usb2-flash-stick.umockdev",
    "uas-ssd.umockdev",
    "card-reader-multi-lun.umockdev",
    "sd-internal-partitioned.umockdev",
    "sd-write-protected.umockdev",
    "usb-stick-mounted-partitions.umockdev",
    "nvme-system.umockdev",
]


def _drive(data: dict[str, Any]) -> Drive:
    values = dict(data)
    values["mountpoints"] = tuple(Mountpoint(**m) for m in values["mountpoints"])
    values["warnings"] = tuple(values["warnings"])
    return Drive(**values)


@pytest.fixture(scope="session")
def umockdev_drives(tmp_path_factory: pytest.TempPathFactory) -> list[Drive]:
    """Drives listed by ``telemetry.drives`` from the drives fixtures inside ``umockdev-run``:
    a USB stick, a UAS disk, a multi-slot card reader, internal and locked SD cards, a stick
    with mounted partitions and the NVMe system disk."""
    listed = run_listing(FIXTURES, tmp_path_factory.mktemp("umockdev"), procfs="desktop")
    return [_drive(item["drive"]) for item in listed]


@pytest.fixture(autouse=True)
def _no_telemetry_errors(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """Fail a test in which the demo could not record an event (e.g. one its catalogue does
    not declare: the client refuses it and the demo logs the refusal instead of crashing)."""
    yield
    errors = [r for r in caplog.records if r.name == "demo_app" and r.levelname == "ERROR"]
    assert not errors, [r.getMessage() for r in errors]


def image_bytes(size: int, *, random_bytes: int = 1 << 20) -> bytes:
    """An image: random bytes (incompressible), zeros, then random again."""
    head = os.urandom(min(random_bytes, size // 2))
    tail = os.urandom(min(random_bytes, size - len(head)))
    return head + bytes(size - len(head) - len(tail)) + tail


def write_image(folder: Path, raw: bytes, kind: str, name: str = "disk.img") -> Path:
    """``raw`` written as ``name`` (``kind`` ``img``) or compressed (``xz``, ``gz``, ``bz2``,
    ``zip``)."""
    folder.mkdir(parents=True, exist_ok=True)
    if kind == "img":
        path = folder / name
        path.write_bytes(raw)
    elif kind == "xz":
        path = folder / f"{name}.xz"
        path.write_bytes(lzma.compress(raw, preset=0))
    elif kind == "gz":
        path = folder / f"{name}.gz"
        path.write_bytes(gzip.compress(raw, compresslevel=1))
    elif kind == "bz2":
        path = folder / f"{name}.bz2"
        path.write_bytes(bz2.compress(raw, compresslevel=1))
    elif kind == "zip":
        path = folder / f"{Path(name).stem}.zip"
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
            archive.writestr(name, raw)
    else:
        raise ValueError(kind)
    return path


class ModalDriver(QObject):
    """Answers the app's modal dialogs in order, as a person would: every 20 ms it looks at
    the active modal widget and hands each newly active one to the next handler (nested
    dialogs work: timers keep running inside a dialog's own event loop)."""

    def __init__(self, handlers: list[Callable[[QWidget], None]]) -> None:
        super().__init__()
        self._handlers = list(handlers)
        self._last: object = None
        self._timer = QTimer(self)
        self._timer.timeout.connect(self._tick)
        self._timer.start(20)

    @property
    def pending(self) -> int:
        return len(self._handlers)

    def _tick(self) -> None:
        widget = QApplication.activeModalWidget()
        if widget is self._last:
            return
        self._last = widget  # a dialog is answered once, however long it stays up
        if widget is None or not self._handlers:
            return
        handler = self._handlers.pop(0)
        # Answer from a fresh single-shot timer: a handler may open a nested modal dialog,
        # and Qt does not fire a timer again while its own slot is still running.
        QTimer.singleShot(0, self, lambda: handler(widget))


def type_file_name(dialog: QFileDialog, path: Path) -> None:
    """Type the path in the dialog's file name box and accept, as a person does."""
    edit = dialog.findChild(QLineEdit, "fileNameEdit")
    assert edit is not None
    edit.setText(str(path))
    dialog.accept()


@pytest.fixture
def collector(tmp_path: Path) -> Iterator[CollectorProcess]:
    """The real collector, as a child process on 127.0.0.1."""
    with CollectorProcess(tmp_path / "collector.db") as proc:
        yield proc


@dataclass
class Demo:
    """A running demo window with its client and data folder."""

    window: Any
    client: Any
    root: Path
    watcher: QtDriveWatcher
    drives: list[Any]  # what the watcher's lister returns: change it, then watcher.rescan()

    def events(self) -> list[dict[str, Any]]:
        """Every event in the local database: sent (from the sent-batch log) and queued."""
        out: list[dict[str, Any]] = []
        for batch in reversed(self.client.sent_batches(100)):
            sent = batch["events"]
            out.extend(sent["events"] if isinstance(sent, dict) else sent)
        out.extend(e.as_dict() for e in self.client.queued_events())
        return out

    def names(self) -> list[str]:
        return [e["event_type"] for e in self.events()]


def answer_notice(qtbot: QtBot, demo: Demo) -> None:
    """Click OK on the window's first-run notice, as the user does; uploads may start then."""
    notice = demo.window.notice
    assert notice is not None and notice.isVisible()
    assert not demo.client.uploading
    has_uploader = bool(demo.client.upload_status())  # a demo with a collector
    qtbot.mouseClick(notice.ok_button, Qt.MouseButton.LeftButton)
    assert demo.client.notice_answered
    assert demo.client.uploading is has_uploader
    assert not notice.isVisible()


@pytest.fixture
def make_demo(qtbot: QtBot, tmp_path: Path) -> Iterator[Callable[..., Demo]]:
    """Build demo windows like ``python -m demo_app`` does (``build_window``), on a real client
    writing to ``tmp_path``; ``drives`` feeds the real ``QtDriveWatcher`` through its lister."""
    made: list[Demo] = []

    def make(
        endpoint: str | None = None,
        *,
        drives: list[Any] | None = None,
        name: str = "root",
        show: bool = True,
    ) -> Demo:
        root = tmp_path / name
        client = make_client(root / "telemetry", endpoint, upload_policy=FAST_POLICY)
        listed = list(drives or [])
        watcher = QtDriveWatcher(all_drives=True, lister=lambda: list(listed))
        watcher.start()
        window = build_window(client, root, watcher=watcher, connectivity=False)
        qtbot.addWidget(window)
        demo = Demo(window, client, root, watcher, listed)
        made.append(demo)
        if show:
            window.show()
            qtbot.waitExposed(window)
        return demo

    yield make
    for demo in made:
        if demo.window.job is not None:
            demo.window.job.cancel()
            demo.window.job.wait(30_000)
        demo.window.shutdown()
        demo.watcher.stop()
        demo.client.close()
