"""The write helper's wire format: JSON lines between the GUI and ``demo_app.write_helper``.

The GUI writes one request line on the helper's stdin, then may write ``{"op": "cancel"}``;
closing stdin cancels too (so a GUI that dies stops the helper). The helper writes, on
stdout, ``accepted`` once the request passed its checks, ``progress`` lines, then exactly one
``result`` (finished or cancelled) or ``error`` line, and exits with :data:`EXIT_OK`,
:data:`EXIT_FAILED` or :data:`EXIT_REFUSED`.
"""

from __future__ import annotations

import json
from typing import Any, Final

from demo_app.flasher.errors import FlashError
from demo_app.flasher.writer import FlashProgress, FlashResult

__all__ = [
    "EXIT_FAILED",
    "EXIT_OK",
    "EXIT_REFUSED",
    "HELPER_FLAG",
    "HELPER_MODULE",
    "PROTOCOL_VERSION",
    "decode",
    "encode",
    "error_from_message",
    "error_message",
    "progress_from_message",
    "progress_message",
    "request_message",
    "result_from_message",
    "result_message",
]

PROTOCOL_VERSION: Final = 1
#: ``demo-app --write-helper`` runs the helper (the frozen bundle has no ``-m``).
HELPER_FLAG: Final = "--write-helper"
HELPER_MODULE: Final = "demo_app.write_helper"
EXIT_OK: Final = 0  # a result line: finished or cancelled
EXIT_FAILED: Final = 1  # an error line: the flash failed
EXIT_REFUSED: Final = 2  # an error line with "refused": the request did not pass the checks


def encode(message: dict[str, Any]) -> bytes:
    """One line of the protocol."""
    return json.dumps(message, separators=(",", ":")).encode() + b"\n"


def decode(line: bytes) -> dict[str, Any]:
    """A line read from the other side; ``ValueError`` when it is not a JSON object."""
    value = json.loads(line)
    if not isinstance(value, dict):
        raise ValueError("not a JSON object")
    return value


def request_message(
    source: str, target: str, expected_size: int | None, *, validate: bool
) -> dict[str, Any]:
    """The GUI's request: write ``source`` (the image file) to ``target`` (a whole drive)."""
    return {
        "op": "flash",
        "version": PROTOCOL_VERSION,
        "source": source,
        "target": target,
        "expected_size": expected_size,
        "validate": validate,
    }


def progress_message(progress: FlashProgress) -> dict[str, Any]:
    return {
        "type": "progress",
        "phase": progress.phase,
        "bytes_done": progress.bytes_done,
        "total": progress.total,
        "fraction": progress.fraction,
        "speed": progress.speed,
        "eta": progress.eta,
    }


def progress_from_message(message: dict[str, Any]) -> FlashProgress:
    return FlashProgress(
        "validating" if message.get("phase") == "validating" else "flashing",
        int(message["bytes_done"]),
        None if message.get("total") is None else int(message["total"]),
        float(message["fraction"]),
        float(message["speed"]),
        None if message.get("eta") is None else float(message["eta"]),
    )


def result_message(result: FlashResult) -> dict[str, Any]:
    return {
        "type": "result",
        "status": result.status,
        "bytes_written": result.bytes_written,
        "duration": result.duration,
        "write_seconds": result.write_seconds,
        "validate_seconds": result.validate_seconds,
        "checksum": result.checksum,
        "validation": result.validation,
        "cancelled_in": result.cancelled_in,
        "target_removed": result.target_removed,
    }


def result_from_message(message: dict[str, Any]) -> FlashResult:
    validation = message.get("validation")
    if validation not in ("passed", "skipped", "cancelled"):
        raise ValueError(f"unknown validation {validation!r}")
    cancelled_in = message.get("cancelled_in")
    if cancelled_in not in (None, "flashing", "validating"):
        raise ValueError(f"unknown phase {cancelled_in!r}")
    return FlashResult(
        "cancelled" if message.get("status") == "cancelled" else "finished",
        int(message["bytes_written"]),
        float(message["duration"]),
        float(message["write_seconds"]),
        float(message["validate_seconds"]),
        str(message.get("checksum") or ""),
        validation,
        cancelled_in,
        bool(message.get("target_removed", False)),
    )


def error_message(
    error: FlashError, *, bytes_written: int = 0, refused: bool = False
) -> dict[str, Any]:
    return {
        "type": "error",
        "code": error.code,
        "message": error.message,
        "hint": error.hint,
        "errno": error.errno,
        "detail": error.detail,
        "target_removed": error.target_removed,
        "bytes_written": bytes_written,
        "refused": refused,
    }


def error_from_message(message: dict[str, Any]) -> FlashError:
    error = FlashError(
        str(message.get("code") or "EUNKNOWN"),
        str(message.get("message") or "The write helper failed."),
        None if message.get("hint") is None else str(message["hint"]),
        os_errno=None if message.get("errno") is None else int(message["errno"]),
        detail=None if message.get("detail") is None else str(message["detail"]),
    )
    error.target_removed = bool(message.get("target_removed", False))
    return error
