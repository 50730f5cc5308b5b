"""Flash errors: one exception with Etcher's error codes and a message a person can act on."""

from __future__ import annotations

import errno
import lzma
import os
import sys
import zipfile
import zlib
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from demo_app.flasher.source import ImageSource

__all__ = ["ERROR_EVENTS", "FlashError", "privilege_hint"]

#: Etcher's event name for a failure code (``image-writer.ts``); other codes: ``Flash error``.
ERROR_EVENTS: Final = {
    "EVALIDATION": "Validation error",
    "EUNPLUGGED": "Drive unplugged",
    "EIO": "Input/output error",
    "ENOSPC": "Out of space",
}

_UNPLUGGED_ERRNOS: Final = frozenset({errno.ENODEV, errno.ENXIO, errno.ENOMEDIUM, errno.ESHUTDOWN})


def privilege_hint() -> str:
    """How to run the demo with the rights to write to a drive, on this platform."""
    if sys.platform == "win32":
        return "Run the demo from a terminal opened with 'Run as administrator'."
    if sys.platform == "darwin":
        return "Run it with administrator rights: sudo uv run python -m demo_app"
    return (
        "Install polkit (pkexec) so the demo can ask for the right, or run it with root "
        "rights: sudo -E uv run python -m demo_app "
        "(or add yourself to the 'disk' group, then log in again)."
    )


class FlashError(Exception):
    """A flash (or image) failure: ``code`` (``EACCES``, ``ENOSPC``, ``EIO``, ``EUNPLUGGED``,
    ``EVALIDATION``, ``EBUSY``, ``EBADIMAGE``...), a sentence for the user in ``message`` and,
    when there is one, what to do about it in ``hint``. ``errno`` is the OS error number and
    ``detail`` the text of the exception behind it (with its paths: telemetry anonymises it).
    ``target_removed`` is set when the flash had created the target file and removed it."""

    def __init__(
        self,
        code: str,
        message: str,
        hint: str | None = None,
        *,
        os_errno: int | None = None,
        detail: str | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.hint = hint
        self.errno = os_errno
        self.detail = detail
        self.target_removed = False

    def __str__(self) -> str:
        return f"{self.message} {self.hint}" if self.hint else self.message

    @property
    def event_name(self) -> str:
        """The Etcher event reporting this failure."""
        return ERROR_EVENTS.get(self.code, "Flash error")

    @classmethod
    def from_source(cls, exc: BaseException, source: ImageSource | None) -> FlashError:
        """An error met while reading the image."""
        if isinstance(exc, FlashError):
            return exc
        error = cls._from_source(exc, source)
        error.detail = str(exc)
        return error

    @classmethod
    def _from_source(cls, exc: BaseException, source: ImageSource | None) -> FlashError:
        if isinstance(exc, (EOFError, zipfile.BadZipFile, lzma.LZMAError, zlib.error)) or (
            isinstance(exc, OSError) and exc.errno is None
        ):
            kind = f" {source.compression}" if source and source.compression else ""
            return cls("EBADIMAGE", f"The{kind} image is damaged or truncated ({exc}).")
        if isinstance(exc, OSError):
            if exc.errno in (errno.EACCES, errno.EPERM):
                return cls(
                    "EACCES",
                    "Permission denied: the image file cannot be read.",
                    "Check the file's permissions.",
                    os_errno=exc.errno,
                )
            if exc.errno == errno.ENOENT:
                return cls("ENOENT", "The image file no longer exists.", os_errno=exc.errno)
            if exc.errno == errno.EISDIR:
                return cls("ENOTFILE", "The image is a folder, not a file.", os_errno=exc.errno)
            return cls(
                "EIO",
                f"The image could not be read: {os.strerror(exc.errno or errno.EIO)}.",
                os_errno=exc.errno,
            )
        return cls("EUNKNOWN", f"The image could not be read ({exc}).")

    @classmethod
    def from_target(
        cls, exc: OSError, *, target_present: bool, block_device: bool, action: str = "write"
    ) -> FlashError:
        """An error met while opening, writing, syncing or reading back the target.

        ``target_present`` says whether the target was still there when the error was seen:
        a drive that vanished is reported as unplugged, whatever the errno was (the kernel
        answers EIO, ENODEV or ENXIO depending on where the write was).
        """
        error = cls._from_target(
            exc, target_present=target_present, block_device=block_device, action=action
        )
        error.detail = str(exc)
        return error

    @classmethod
    def _from_target(
        cls, exc: OSError, *, target_present: bool, block_device: bool, action: str
    ) -> FlashError:
        what = "drive" if block_device else "target file"
        code = exc.errno
        if action == "open" and not block_device and code in (errno.ENOENT, errno.ENOTDIR):
            # Creating a file whose folder is gone: nothing was plugged in, nothing unplugged.
            return cls(
                "ENOENT",
                "The folder of the target file does not exist.",
                "Pick the target file again, in a folder that exists.",
                os_errno=code,
            )
        if not target_present or code in _UNPLUGGED_ERRNOS:
            return cls(
                "EUNPLUGGED",
                f"The {what} was removed while it was being written.",
                "Plug it back in and flash again; it is not usable as it is.",
                os_errno=code,
            )
        if code in (errno.EACCES, errno.EPERM, errno.EROFS):
            if code == errno.EROFS or (block_device and code == errno.EPERM and os.geteuid() == 0):
                return cls(
                    "EACCES",
                    f"The {what} is read-only (write-protected).",
                    "Slide the card's lock switch to unlocked, or pick another target.",
                    os_errno=code,
                )
            return cls(
                "EACCES",
                f"Permission denied: the {what} cannot be opened for writing.",
                privilege_hint(),
                os_errno=code,
            )
        if code in (errno.ENOSPC, errno.EFBIG, errno.EDQUOT):
            return cls(
                "ENOSPC",
                f"Not enough space on the {what} for this image.",
                "Pick a larger target.",
                os_errno=code,
            )
        if code == errno.EBUSY:
            return cls(
                "EBUSY",
                f"The {what} is busy: it is mounted or in use by another program.",
                "Unmount it, close programs using it, and try again.",
                os_errno=code,
            )
        if code == errno.EIO:
            return cls(
                "EIO",
                f"Input/output error while {action}ing the {what}: the media may be failing.",
                "Try another card or USB port.",
                os_errno=code,
            )
        if code == errno.ENOENT:
            return cls(
                "EUNPLUGGED",
                f"The {what} does not exist (any more).",
                "Pick the target again.",
                os_errno=code,
            )
        text = os.strerror(code) if code is not None else str(exc)
        # errno's names already start with "E" (EISDIR, ENAMETOOLONG...).
        name = errno.errorcode.get(code, "EUNKNOWN") if code is not None else "EUNKNOWN"
        return cls(name, f"Could not {action} the {what}: {text}.", os_errno=code)
