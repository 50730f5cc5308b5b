"""Building a report (a Sentry event object) from an exception, a message or a fault dump.

Every string that could hold something personal (messages, file names) passes the client's
anonymiser; file paths are made relative to the app's root or to the ``sys.path`` entry that
holds them, and a file outside both keeps only its name. Source lines and local variables are
never read. The fingerprint groups repeats: the exception types and the (module, function) of
each frame, without line numbers, so one bug keeps one group across small edits.
"""

from __future__ import annotations

import os
import sys
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Final

#: Frames kept per exception (the innermost ones: where it was raised).
MAX_FRAMES: Final = 64
#: Chained exceptions kept (``raise ... from ...`` and ``__context__``).
MAX_CHAIN: Final = 5
#: Characters kept of a message.
MAX_MESSAGE: Final = 2_000


@dataclass(frozen=True)
class ReportContext:
    """What every report of one client carries besides the error itself."""

    release: str
    component: str
    os_name: str
    os_version: str
    library: str
    anonymise: Callable[[str], str]
    app_root: str | None = None
    breadcrumbs: Callable[[], list[dict[str, Any]]] = field(default=list)


@dataclass(frozen=True)
class Frame:
    """One stack frame as reported."""

    module: str
    function: str
    lineno: int
    filename: str
    in_app: bool

    def as_dict(self) -> dict[str, Any]:
        return {
            "module": self.module,
            "function": self.function,
            "lineno": self.lineno,
            "filename": self.filename,
            "in_app": self.in_app,
        }


def exception_report(
    exc: BaseException,
    context: ReportContext,
    *,
    mechanism: str,
    handled: bool,
    level: str = "error",
    thread: str | None = None,
) -> tuple[str, dict[str, Any]]:
    """The (fingerprint, Sentry event) for ``exc`` and its chain."""
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and len(chain) < MAX_CHAIN and current not in chain:
        chain.append(current)
        current = current.__cause__ or (
            None if current.__suppress_context__ else current.__context__
        )
    values: list[dict[str, Any]] = []
    for item in reversed(chain):  # Sentry's order: the one raised last comes last
        frames = _frames(item.__traceback__, context)
        values.append(
            {
                "type": _type_name(type(item)),
                "value": _message(str(item), context),
                "stacktrace": {"frames": [f.as_dict() for f in frames]},
                "mechanism": {"type": mechanism, "handled": handled},
            }
        )
    if thread is not None:
        values[-1]["thread_id"] = thread
    fingerprint = _fingerprint(
        (v["type"], [(f["module"], f["function"]) for f in v["stacktrace"]["frames"]])
        for v in values
    )
    return fingerprint, _event(context, level, fingerprint, exception={"values": values})


def message_report(
    message: str, context: ReportContext, *, level: str = "error", logger: str | None = None
) -> tuple[str, dict[str, Any]]:
    """The (fingerprint, Sentry event) for a message (a logged error without an exception)."""
    text = _message(message, context)
    fingerprint = _fingerprint([("message", [(logger or "", text)])])
    extra: dict[str, Any] = {"message": {"formatted": text}}
    if logger:
        extra["logger"] = logger
    return fingerprint, _event(context, level, fingerprint, **extra)


def fault_report(
    error: str, frames: Sequence[tuple[str, int, str]], at: float, context: ReportContext
) -> tuple[str, dict[str, Any]]:
    """The (fingerprint, Sentry event) of a native crash read from a fault dump: ``error``
    (``Segmentation fault``...) and the faulting thread's frames as (file, line, function),
    innermost first (faulthandler's order)."""
    built = [_frame(path, line, function, None, context) for path, line, function in frames]
    built.reverse()  # Sentry's order: outermost first
    value = {
        "type": error,
        "value": f"Fatal Python error: {error}",
        "stacktrace": {"frames": [f.as_dict() for f in built[-MAX_FRAMES:]]},
        "mechanism": {"type": "faulthandler", "handled": False},
    }
    fingerprint = _fingerprint([(error, [(f.module, f.function) for f in built])])
    event = _event(context, "fatal", fingerprint, exception={"values": [value]})
    event["timestamp"] = round(at, 3)
    event["breadcrumbs"] = {"values": []}  # the session that crashed is not this one
    return fingerprint, event


# ---------------------------------------------------------------------- parts


def _event(context: ReportContext, level: str, fingerprint: str, **body: Any) -> dict[str, Any]:
    return {
        "event_id": uuid.uuid4().hex,
        "timestamp": round(time.time(), 3),
        "platform": "python",
        "level": level,
        "release": context.release,
        "fingerprint": [fingerprint],
        **body,
        "tags": {"component": context.component},
        "contexts": {
            "os": {"name": context.os_name, "version": context.os_version},
            "runtime": {
                "name": sys.implementation.name,
                "version": ".".join(map(str, sys.version_info[:3])),
            },
            "app": {"app_version": context.release},
        },
        "breadcrumbs": {"values": context.breadcrumbs()},
        "sdk": {"name": "desktop-telemetry", "version": context.library.rpartition("/")[2]},
    }


def _type_name(kind: type[BaseException]) -> str:
    module = kind.__module__
    return (
        kind.__qualname__ if module in ("builtins", "__main__") else f"{module}.{kind.__qualname__}"
    )


def _message(text: str, context: ReportContext) -> str:
    if len(text) > MAX_MESSAGE:
        text = text[:MAX_MESSAGE] + "…"
    return context.anonymise(text)


def _frames(tb: TracebackType | None, context: ReportContext) -> list[Frame]:
    frames = []
    while tb is not None:
        code = tb.tb_frame.f_code
        module = tb.tb_frame.f_globals.get("__name__")
        frames.append(
            _frame(
                code.co_filename,
                tb.tb_lineno,
                code.co_name,
                module if isinstance(module, str) else None,
                context,
            )
        )
        tb = tb.tb_next
    return frames[-MAX_FRAMES:]


def _frame(
    path: str, lineno: int, function: str, module: str | None, context: ReportContext
) -> Frame:
    relative, root = _relative(path, context.app_root)
    in_app = root == "app" or (context.app_root is None and root == "other")
    if module is None:
        module = _module_from(relative) if root != "other" else relative.rsplit(".", 1)[0]
    return Frame(
        module=context.anonymise(module),
        function=context.anonymise(function),
        lineno=int(lineno),
        filename=context.anonymise(relative),
        in_app=in_app,
    )


def _relative(path: str, app_root: str | None) -> tuple[str, str]:
    """``path`` relative to the app's root (``app``), to the longest ``sys.path`` entry that
    holds it (``library``), or only its file name (``other``); never absolute."""
    if path.startswith("<"):  # <frozen importlib._bootstrap>, <string>
        return path, "library"
    full = os.path.abspath(path)
    if app_root:
        root = os.path.abspath(app_root)
        if full.startswith(root.rstrip(os.sep) + os.sep):
            return _posix(os.path.relpath(full, root)), "app"
    best = ""
    for entry in sys.path:
        if not entry:
            continue
        base = os.path.abspath(entry).rstrip(os.sep) + os.sep
        if full.startswith(base) and len(base) > len(best):
            best = base
    if best:
        return _posix(full[len(best) :]), "library"
    return os.path.basename(full), "other"


def _posix(path: str) -> str:
    return path.replace(os.sep, "/")


def _module_from(relative: str) -> str:
    stem = relative[:-3] if relative.endswith(".py") else relative
    parts = [p for p in stem.split("/") if p]
    if parts and parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _fingerprint(parts: Iterable[tuple[str, list[tuple[str, str]]]]) -> str:
    import hashlib

    digest = hashlib.sha256()
    for kind, frames in parts:
        digest.update(kind.encode("utf-8", "surrogatepass") + b"\n")
        for module, function in frames:
            digest.update(f"{module}:{function}\n".encode("utf-8", "surrogatepass"))
        digest.update(b"--\n")
    return digest.hexdigest()[:32]
