"""The demo's telemetry: Etcher's event names and properties, through ``telemetry.Tracker`` only.

Every event carries ``applicationSessionUuid`` (one per launch) and ``flashingWorkflowUuid``
(one per "flash another" cycle); flash events add ``flashInstanceUuid`` (and ``uuid``, as
Etcher sends both). Drives are described only by ``Drive.telemetry_properties()``, images only
by kind and size (``ImageSource.telemetry_properties()``): never a path, file name, label or
serial (a failure's ``errorMessage`` is the system's text, which the client anonymises).
Telemetry never breaks the app: a failing ``track`` is logged and ignored.
"""

from __future__ import annotations

import logging
import sys
import uuid
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from demo_app.flasher import FlashError, FlashResult, ImageSource, Target
from telemetry import TelemetryClient, Tracker

if TYPE_CHECKING:
    from telemetry.drives import Drive

__all__ = ["FlashAnalytics", "package_type", "target_properties"]

log = logging.getLogger("demo_app")


def package_type() -> str:
    """How the demo runs: ``pyinstaller`` when frozen, else ``python``."""
    return "pyinstaller" if getattr(sys, "frozen", False) else "python"


def drive_properties(drive: Drive) -> dict[str, Any]:
    """A drive as telemetry may see it (only ``Drive.telemetry_properties()``)."""
    return dict(drive.telemetry_properties())


def target_properties(target: Target) -> dict[str, Any]:
    """``{"targetType": "drive"|"file"}`` plus the drive's telemetry properties for a drive."""
    if target.drive is not None:
        return {"targetType": "drive", "drive": drive_properties(target.drive)}
    return {"targetType": "file"}


def _public_url(url: str) -> str:
    """The link without its query and fragment (which may carry device ids)."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))


class FlashAnalytics:
    """Records the demo's events as ``[Etcher] <name>`` through ``Tracker``."""

    def __init__(self, client: TelemetryClient, *, version: str) -> None:
        self.tracker = Tracker(client, prefix="Etcher")
        self._client = client
        self.version = version
        self.application_session_uuid = str(uuid.uuid4())
        self.flashing_workflow_uuid = str(uuid.uuid4())
        self.flash_instance_uuid: str | None = None
        self._flash: dict[str, Any] = {}

    # ------------------------------------------------------------------ plumbing

    def base(self) -> dict[str, Any]:
        """The ids every event carries."""
        return {
            "applicationSessionUuid": self.application_session_uuid,
            "flashingWorkflowUuid": self.flashing_workflow_uuid,
        }

    def track(self, name: str, properties: Mapping[str, Any] | None = None) -> str | None:
        """Record ``[Etcher] name`` with the session ids; never raises."""
        try:
            return self.tracker.track(name, {**self.base(), **(properties or {})})
        except Exception:
            log.exception("telemetry: could not record %r", name)
            return None

    # ------------------------------------------------------------------ app

    def application_start(self) -> None:
        """``Application start`` with ``packageType`` and ``version``."""
        self.track("Application start", {"packageType": package_type(), "version": self.version})

    def close_application(self, *, is_flashing: bool) -> None:
        """``Close application``."""
        self.track("Close application", {"isFlashing": is_flashing})

    def toggle_setting(self, setting: str, previous: bool) -> None:
        """``Toggle setting`` with the *previous* value, as Etcher sends it."""
        self.track("Toggle setting", {"setting": setting, "value": previous})

    def open_external_link(self, url: str) -> None:
        """``Open external link`` with the link's address (without query or fragment)."""
        self.track("Open external link", {"url": _public_url(url)})

    # ------------------------------------------------------------------ image and target

    def open_image_selector(self) -> None:
        """``Open image selector``."""
        self.track("Open image selector")

    def image_selector_closed(self) -> None:
        """``Image selector closed`` (the dialog returned nothing)."""
        self.track("Image selector closed")

    def select_image(self, source: ImageSource) -> None:
        """``Select image`` with the image's kind and sizes."""
        self.track("Select image", {"image": source.telemetry_properties()})

    def image_error(self, error: FlashError) -> None:
        """``Image error`` with the error code (no path)."""
        self.track("Image error", {"errorCode": error.code})

    def open_drive_selector(self) -> None:
        """``Open drive selector`` (the target dialog)."""
        self.track("Open drive selector")

    def toggle_drive(self, target: Target, *, previously_selected: bool) -> None:
        """``Toggle drive`` for a target newly selected (or deselected)."""
        self.track(
            "Toggle drive", {**target_properties(target), "previouslySelected": previously_selected}
        )

    # ------------------------------------------------------------------ flashing

    def flash(self, source: ImageSource, target: Target, *, validate: bool) -> str:
        """``Flash`` (a flash starts); returns the new ``flashInstanceUuid``."""
        instance = str(uuid.uuid4())
        self.flash_instance_uuid = instance
        drives = [drive_properties(target.drive)] if target.drive is not None else []
        self._flash = {
            "image": source.telemetry_properties(),
            "targetType": target.kind,
            "drives": drives,
            "driveCount": 1,
            "uuid": instance,
            "flashInstanceUuid": instance,
            "validateWriteOnSuccess": validate,
        }
        self.track("Flash", {**self._flash, "status": "started"})
        return instance

    def done(self, result: FlashResult) -> None:
        """``Done``: bytes, duration, speed and validation outcome."""
        self.track(
            "Done",
            {
                **self._flash,
                "status": "finished",
                "bytesWritten": result.bytes_written,
                "durationMs": round(result.duration * 1000),
                "mbPerSecond": round(result.mb_per_s, 2),
                "validation": result.validation,
            },
        )

    def cancel(self, result: FlashResult) -> None:
        """``Cancel`` by the user, with the phase it was cancelled in."""
        self.track(
            "Cancel",
            {
                **self._flash,
                "status": "cancel",
                "phase": result.cancelled_in,
                "bytesWritten": result.bytes_written,
                "durationMs": round(result.duration * 1000),
            },
        )

    def failed(self, error: FlashError, *, duration: float, bytes_written: int | None) -> None:
        """Etcher's event for the code (``Drive unplugged``, ``Validation error``...), then
        ``Write failed`` with the code and the duration. ``errorMessage`` is the system's
        error text, paths included: the telemetry client anonymises every property text."""
        details = {
            **self._flash,
            "errorCode": error.code,
            "errno": error.errno,
            "errorMessage": error.detail,
        }
        self.track(error.event_name, details)
        # The failure as an error report too (anonymised like the events; sent under the
        # same switch): the flash's stack and the user's message, grouped by where it broke.
        self._client.capture_exception(error)
        self.track(
            "Write failed",
            {
                **details,
                "status": "failed",
                "durationMs": round(duration * 1000),
                "bytesWritten": bytes_written,
            },
        )

    def restart(self) -> None:
        """``Restart`` ("Flash another"): a new ``flashingWorkflowUuid`` follows."""
        self.track("Restart")
        self.flashing_workflow_uuid = str(uuid.uuid4())
        self.flash_instance_uuid = None
        self._flash = {}
