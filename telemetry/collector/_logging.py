"""The collector's logging: one JSON object per line on stderr, with IP addresses redacted, and
repeated messages rate-limited (at most 5 alike per minute, then one "N more like this" line).

With ``--workers`` k, each worker process writes its share of those 5, ``ceil(5 / k)`` alike per
minute (at least one, so each worker's own first error is always written in full), and its own
summary lines: the workers' limits are not shared (logging never waits for another process).
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import logging
import re
import threading
import time
from typing import Any, Final

__all__ = [
    "LOG_CONFIG",
    "JsonLogFormatter",
    "RateLimitedStreamHandler",
    "redact_addresses",
    "share_flood_limit",
]

#: Records alike (same logger, level, message template and exception type) written per window.
LOG_REPEATS_PER_WINDOW: Final = 5
LOG_WINDOW_SECONDS: Final = 60.0
#: Longest exception text written (a longer traceback is cut).
_MAX_EXCEPTION_CHARS: Final = 8000
_MAX_KEYS: Final = 1000

# Logs go to stderr as one JSON object per line and never carry a client address: uvicorn's
# access log is off, its "Uvicorn running on ..." line is not emitted (we pass our own socket), and
# anything that looks like an IP address in a message is replaced by "[ip]" as a last guard. The
# one address printed is the collector's own listening URL, on stdout.
_IPV4: Final = re.compile(r"(?<![\w.])(?:\d{1,3}\.){3}\d{1,3}(?![\w.])")
_IPV6_CANDIDATE: Final = re.compile(r"(?<![\w:])[0-9A-Fa-f]{0,4}(?::[0-9A-Fa-f.]{0,15}){2,8}")


def _ipv6_or_text(match: re.Match[str]) -> str:
    try:
        ipaddress.IPv6Address(match.group(0))
    except ValueError:
        return match.group(0)
    return "[ip]"


def redact_addresses(text: str) -> str:
    """``text`` with IPv4 and IPv6 addresses replaced by ``[ip]``."""
    return _IPV6_CANDIDATE.sub(_ipv6_or_text, _IPV4.sub("[ip]", text))


class JsonLogFormatter(logging.Formatter):
    """One JSON object per record: ``ts`` (ISO 8601 UTC), ``level``, ``logger``, ``message``
    (and ``exception`` when there is one), IP addresses redacted."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.datetime.fromtimestamp(record.created, datetime.UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": redact_addresses(record.getMessage()),
        }
        if record.exc_info:
            text = self.formatException(record.exc_info)[-_MAX_EXCEPTION_CHARS:]
            entry["exception"] = redact_addresses(text)
        return json.dumps(entry, ensure_ascii=False)


_Key = tuple[str, int, str, str]


class RateLimitedStreamHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """A stream handler writing at most ``LOG_REPEATS_PER_WINDOW`` records alike per
    ``LOG_WINDOW_SECONDS``; the rest are counted and summarised in one line ("N more like this
    in the last minute") when the window ends, so no flood of identical errors or tracebacks."""

    def __init__(self, stream: Any = None) -> None:
        super().__init__(stream)
        #: Records alike written per window (see :func:`share_flood_limit`).
        self.repeats = LOG_REPEATS_PER_WINDOW
        self._windows: dict[_Key, list[float]] = {}  # key -> [window start, written, suppressed]
        self._guard = threading.Lock()

    @staticmethod
    def _key(record: logging.LogRecord) -> _Key:
        exc = record.exc_info[0].__name__ if record.exc_info and record.exc_info[0] else ""
        return (record.name, record.levelno, str(record.msg)[:200], exc)

    def emit(self, record: logging.LogRecord) -> None:
        now = time.monotonic()
        with self._guard:
            summaries = self._expired(now)
            window = self._windows.setdefault(self._key(record), [now, 0, 0])
            allowed = window[1] < self.repeats
            window[1 if allowed else 2] += 1
        for summary in summaries:
            super().emit(summary)
        if allowed:
            super().emit(record)

    def _expired(self, now: float) -> list[logging.LogRecord]:
        """Summaries of the windows that ended (and forget those windows)."""
        ended = [k for k, w in self._windows.items() if now - w[0] >= LOG_WINDOW_SECONDS]
        if len(self._windows) - len(ended) >= _MAX_KEYS:
            ended = list(self._windows)
        summaries = []
        for key in ended:
            suppressed = int(self._windows.pop(key)[2])
            if suppressed:
                summaries.append(_summary(key, suppressed))
        return summaries

    def flush_summaries(self) -> None:
        """Write the summaries of every window now (e.g. at shutdown)."""
        with self._guard:
            summaries = self._expired(float("inf"))
        for summary in summaries:
            super().emit(summary)

    def close(self) -> None:
        self.flush_summaries()
        super().close()


def _summary(key: _Key, suppressed: int) -> logging.LogRecord:
    name, level, template, exc = key
    about = f"{template} ({exc})" if exc else template
    message = f"{suppressed} more like this in the last minute: {about}"
    return logging.LogRecord(name, level, __file__, 0, "%s", (message,), None)


def share_flood_limit(workers: int) -> None:
    """Give the flood limit of every :class:`RateLimitedStreamHandler` of the collector's
    loggers (:data:`LOG_CONFIG`) to one of ``workers`` processes: ``ceil(5 / workers)``."""
    loggers = [logging.getLogger()] + [logging.getLogger(name) for name in LOG_CONFIG["loggers"]]
    for log in loggers:
        for handler in log.handlers:
            if isinstance(handler, RateLimitedStreamHandler):
                handler.repeats = -(-LOG_REPEATS_PER_WINDOW // workers)


LOG_CONFIG: Final[dict[str, Any]] = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"json": {"()": JsonLogFormatter}},
    "handlers": {
        "stderr": {
            "class": "telemetry.collector._logging.RateLimitedStreamHandler",
            "formatter": "json",
            "stream": "ext://sys.stderr",
        }
    },
    "loggers": {
        "uvicorn": {"handlers": ["stderr"], "level": "INFO", "propagate": False},
        "uvicorn.error": {"level": "INFO"},
        "uvicorn.access": {"handlers": [], "level": "CRITICAL", "propagate": False},
        "telemetry.collector": {"handlers": ["stderr"], "level": "INFO", "propagate": False},
        "asyncio": {"handlers": ["stderr"], "level": "WARNING", "propagate": False},
    },
    "root": {"handlers": ["stderr"], "level": "WARNING"},
}
