"""The flashing engine, without Qt: image sources, the writer with validation, and its errors."""

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
from demo_app.flasher.writer import Flasher, FlashProgress, FlashResult, Target, unmount_drive

__all__ = [
    "COMPRESSED_EXTENSIONS",
    "ERROR_EVENTS",
    "FILE_DIALOG_FILTERS",
    "IMAGE_EXTENSIONS",
    "FlashError",
    "FlashProgress",
    "FlashResult",
    "Flasher",
    "ImageReader",
    "ImageSource",
    "Target",
    "iter_chunks",
    "open_image",
    "privilege_hint",
    "unmount_drive",
]
