"""The collector's logging: one JSON object per line on stderr, with IP addresses redacted."""

from __future__ import annotations

import datetime
import ipaddress
import json
import logging
import re
from typing import Any, Final

__all__ = ["LOG_CONFIG", "JsonLogFormatter", "redact_addresses"]

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
            entry["exception"] = redact_addresses(self.formatException(record.exc_info))
        return json.dumps(entry, ensure_ascii=False)


LOG_CONFIG: Final[dict[str, Any]] = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"json": {"()": JsonLogFormatter}},
    "handlers": {
        "stderr": {
            "class": "logging.StreamHandler",
            "formatter": "json",
            "stream": "ext://sys.stderr",
        }
    },
    "loggers": {
        "uvicorn": {"handlers": ["stderr"], "level": "INFO", "propagate": False},
        "uvicorn.error": {"level": "INFO"},
        "uvicorn.access": {"handlers": [], "level": "CRITICAL", "propagate": False},
        "telemetry.collector": {"handlers": ["stderr"], "level": "INFO", "propagate": False},
    },
}
