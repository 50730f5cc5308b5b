"""Facts about the running system that go into every event (computed once per process)."""

from __future__ import annotations

import functools
import locale
import platform
import sys
from dataclasses import dataclass

from telemetry._version import __version__


@dataclass(frozen=True, slots=True)
class PlatformInfo:
    """The context fields of an Amplitude HTTP V2 event."""

    platform: str
    os_name: str
    os_version: str
    language: str
    library: str


def library_version() -> str:
    """This package's version."""
    return __version__


@functools.cache
def platform_info() -> PlatformInfo:
    """Coarse, non-identifying facts: OS family and version, UI language, library version."""
    system = platform.system() or sys.platform
    os_name, os_version = system, platform.release()
    if system == "Linux":
        try:
            release = platform.freedesktop_os_release()
            os_name = release.get("NAME", "Linux")
            os_version = release.get("VERSION_ID", "")
        except OSError:
            os_name, os_version = "Linux", ""
    elif system == "Darwin":
        os_name, os_version = "macOS", platform.mac_ver()[0]
    elif system == "Windows":
        os_version = platform.version()
    lang = locale.getlocale()[0] or "en_US"
    if lang in {"C", "POSIX"}:
        lang = "en_US"
    return PlatformInfo(
        platform="Desktop",
        os_name=os_name,
        os_version=os_version,
        language=lang.split(".")[0].replace("_", "-"),
        library=f"desktop-telemetry/{library_version()}",
    )
