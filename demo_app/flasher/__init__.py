"""The flashing engine, without Qt: image sources, the writer with validation, its errors, and
the client of the write helper (``demo_app.write_helper``) that writes drives as root."""

from demo_app.flasher._helper_client import HelperFlasher, helper_command, needs_elevation
from demo_app.flasher.errors import ERROR_EVENTS, FlashError, privilege_hint
from demo_app.flasher.source import (
    COMPRESSED_EXTENSIONS,
    FILE_DIALOG_FILTERS,
    IMAGE_EXTENSIONS,
    ImageReader,
    ImageSource,
    iter_chunks,
    open_image,
)
from demo_app.flasher.writer import (
    Flasher,
    FlashProgress,
    FlashResult,
    FlashRunner,
    Target,
    unmount_drive,
)

__all__ = [
    "COMPRESSED_EXTENSIONS",
    "ERROR_EVENTS",
    "FILE_DIALOG_FILTERS",
    "IMAGE_EXTENSIONS",
    "FlashError",
    "FlashProgress",
    "FlashResult",
    "FlashRunner",
    "Flasher",
    "HelperFlasher",
    "ImageReader",
    "ImageSource",
    "Target",
    "helper_command",
    "iter_chunks",
    "needs_elevation",
    "open_image",
    "privilege_hint",
    "unmount_drive",
]
