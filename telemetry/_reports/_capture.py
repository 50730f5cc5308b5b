"""Catching errors for reports: uncaught exceptions (main thread, other threads, Qt slots,
which PySide6 hands to ``sys.excepthook``), errors logged at a level or above, and native
crashes (through :mod:`._faults`).

:class:`Capture` installs the hooks process-wide and chains to the ones it replaced, so the app
(and Python's own traceback printing) behave as before; :meth:`Capture.uninstall` puts them
back. What is caught goes to one ``report`` callback; an error inside it is swallowed (a report
must never raise into the app or loop back into itself: the ``telemetry`` loggers are not
captured, and a report raised while one is being made is ignored).
"""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Callable
from types import TracebackType
from typing import Any

ExceptionSink = Callable[[BaseException, str, bool, str | None], None]
MessageSink = Callable[[logging.LogRecord], None]

_OWN_LOGGERS = ("telemetry",)


class Capture:
    """The installed hooks of one client (at most one client captures at a time)."""

    def __init__(self, on_exception: ExceptionSink, on_log: MessageSink) -> None:
        self._on_exception = on_exception
        self._on_log = on_log
        self._busy = threading.local()
        self._previous_excepthook: Callable[..., Any] | None = None
        self._previous_threading_hook: Callable[..., Any] | None = None
        self._handler: _ReportHandler | None = None
        self.installed = False

    def install(self, *, logging_level: int | None) -> None:
        """Install the exception hooks and, with ``logging_level``, a root logging handler."""
        if self.installed:
            return
        self._previous_excepthook = sys.excepthook
        self._previous_threading_hook = threading.excepthook
        sys.excepthook = self._excepthook
        threading.excepthook = self._threading_hook
        if logging_level is not None:
            self._handler = _ReportHandler(self, logging_level)
            logging.getLogger().addHandler(self._handler)
        self.installed = True

    def uninstall(self) -> None:
        """Put back the hooks found at :meth:`install` (if nobody replaced ours since)."""
        if not self.installed:
            return
        self.installed = False
        if sys.excepthook == self._excepthook and self._previous_excepthook is not None:
            sys.excepthook = self._previous_excepthook
        if threading.excepthook == self._threading_hook and self._previous_threading_hook:
            threading.excepthook = self._previous_threading_hook
        if self._handler is not None:
            logging.getLogger().removeHandler(self._handler)
            self._handler = None

    # ------------------------------------------------------------------ hooks

    def _excepthook(
        self, kind: type[BaseException], exc: BaseException, tb: TracebackType | None
    ) -> None:
        if not issubclass(kind, KeyboardInterrupt):
            if exc.__traceback__ is None and tb is not None:
                exc = exc.with_traceback(tb)
            self.exception(exc, "excepthook", handled=False)
        previous = self._previous_excepthook or sys.__excepthook__
        previous(kind, exc, tb)

    def _threading_hook(self, args: threading.ExceptHookArgs) -> None:
        exc = args.exc_value
        if exc is not None and not isinstance(exc, SystemExit):
            thread = args.thread.name if args.thread is not None else None
            self.exception(exc, "threading", handled=False, thread=thread)
        previous = self._previous_threading_hook or threading.__excepthook__
        previous(args)

    def exception(
        self, exc: BaseException, mechanism: str, *, handled: bool, thread: str | None = None
    ) -> None:
        """Report ``exc``; never raises."""
        if getattr(self._busy, "active", False):
            return
        self._busy.active = True
        try:
            self._on_exception(exc, mechanism, handled, thread)
        except Exception:  # noqa: BLE001 - a report must never raise into the app
            pass
        finally:
            self._busy.active = False

    def record(self, record: logging.LogRecord) -> None:
        """Report a log record; never raises."""
        if getattr(self._busy, "active", False):
            return
        self._busy.active = True
        try:
            self._on_log(record)
        except Exception:  # noqa: BLE001 - a report must never raise into the app
            pass
        finally:
            self._busy.active = False


class _ReportHandler(logging.Handler):
    """Hands records at its level or above to :meth:`Capture.record`, except telemetry's own."""

    def __init__(self, capture: Capture, level: int) -> None:
        super().__init__(level)
        self._capture = capture

    def emit(self, record: logging.LogRecord) -> None:
        name = record.name
        if any(name == own or name.startswith(own + ".") for own in _OWN_LOGGERS):
            return
        self._capture.record(record)
