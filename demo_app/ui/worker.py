"""Runs a flash on a QThread and reports through signals.

A drive (on Linux) is written by the write helper (:class:`~demo_app.flasher.HelperFlasher`,
started through pkexec when the drive needs root), so the GUI never runs as root; a file
target is written in this process (:class:`~demo_app.flasher.Flasher`).
"""

from __future__ import annotations

import sys
import time
from typing import Any

from PySide6.QtCore import QObject, QThread, Signal, Slot

from demo_app.flasher import Flasher, FlashError, FlashRunner, HelperFlasher, ImageSource, Target

__all__ = ["FlashJob"]


class _Worker(QObject):
    progress = Signal(object)  # FlashProgress
    finished = Signal(object)  # FlashResult
    failed = Signal(object, float, int)  # FlashError, seconds, bytes written

    def __init__(self) -> None:
        super().__init__()
        self.flasher: FlashRunner | None = None

    @Slot()
    def run(self) -> None:
        assert self.flasher is not None
        started = time.monotonic()
        try:
            result = self.flasher.run()
        except FlashError as exc:
            self.failed.emit(exc, time.monotonic() - started, self.flasher.bytes_written)
        except Exception as exc:  # noqa: BLE001 - shown to the user, never a crash
            error = FlashError("EUNKNOWN", f"Unexpected error: {exc!r}")
            self.failed.emit(error, time.monotonic() - started, self.flasher.bytes_written)
        else:
            self.finished.emit(result)
        finally:
            # End the thread's event loop now (not when the GUI thread gets to it), so that
            # a window closing mid-flash can wait() for the thread while it blocks the GUI.
            thread = self.thread()
            if thread is not None:
                thread.quit()


class FlashJob(QObject):
    """One flash on its own thread. Signals arrive on the thread that created the job.

    ``progress(FlashProgress)``, ``finished(FlashResult)`` (also for a cancelled flash),
    ``failed(FlashError, seconds, bytes_written)``; ``ended()`` after either, once the thread
    has stopped.

    ``use_helper`` (default: a drive target on Linux) runs the flash through the write
    helper; ``options`` go to the runner (``Flasher`` or ``HelperFlasher``).
    """

    progress = Signal(object)
    finished = Signal(object)
    failed = Signal(object, float, int)
    ended = Signal()

    def __init__(
        self,
        source: ImageSource,
        target: Target,
        *,
        validate: bool = True,
        parent: QObject | None = None,
        use_helper: bool | None = None,
        **options: Any,
    ) -> None:
        super().__init__(parent)
        self._thread = QThread()
        self._thread.setObjectName("demo-flash")
        self._worker = _Worker()
        if use_helper is None:
            use_helper = target.is_block_device and sys.platform.startswith("linux")
        runner = HelperFlasher if use_helper else Flasher
        self.flasher: FlashRunner = runner(
            source, target, validate=validate, on_progress=self._worker.progress.emit, **options
        )
        self._worker.flasher = self.flasher
        self._worker.moveToThread(self._thread)
        self._thread.started.connect(self._worker.run)
        self._worker.progress.connect(self.progress)
        self._worker.finished.connect(self._on_finished)
        self._worker.failed.connect(self._on_failed)

    def start(self) -> None:
        """Start flashing."""
        self._thread.start()

    def cancel(self) -> None:
        """Ask the flash to stop (it ends with a cancelled result)."""
        self.flasher.cancel()

    @property
    def running(self) -> bool:
        """Whether the thread is still running."""
        return self._thread.isRunning()

    def wait(self, ms: int = 30_000) -> bool:
        """Block until the thread ended (for shutdown)."""
        return bool(self._thread.wait(ms))

    def _stop_thread(self) -> None:
        self._thread.quit()
        self._thread.wait(10_000)

    @Slot(object)
    def _on_finished(self, result: object) -> None:
        self._stop_thread()
        self.finished.emit(result)
        self.ended.emit()

    @Slot(object, float, int)
    def _on_failed(self, error: object, seconds: float, written: int) -> None:
        self._stop_thread()
        self.failed.emit(error, seconds, written)
        self.ended.emit()
