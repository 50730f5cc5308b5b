"""Before Qt starts: can its X11 platform plugin (xcb) load? If not, which libraries are missing.

Qt aborts the process when its platform plugin cannot load, with a generic hint ("xcb-cursor0
or libxcb-cursor0 is needed") that often names the wrong package. :func:`problem` asks the
plugin itself instead, before any window or collector child exists: it loads
``platforms/libqxcb.so`` the way Qt would find it (``QT_QPA_PLATFORM_PLUGIN_PATH``, then the
``platforms`` folder of each Qt library path, ``QT_PLUGIN_PATH`` first), and when that fails it
lists the ``not found`` libraries from ``ldd`` on the plugin, with the Debian/Ubuntu and
Fedora packages that provide them.
"""

from __future__ import annotations

import ctypes
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

__all__ = [
    "PACKAGES",
    "PluginProblem",
    "install_commands",
    "missing_libraries",
    "platform_plugin_dirs",
    "problem",
    "uses_xcb",
]

#: Shared libraries Qt's xcb plugin needs (directly or through Qt) and the packages providing
#: them: (Debian/Ubuntu, Fedora).
PACKAGES: Final[Mapping[str, tuple[str, str]]] = {
    "libxcb-cursor.so.0": ("libxcb-cursor0", "xcb-util-cursor"),
    "libxcb-icccm.so.4": ("libxcb-icccm4", "xcb-util-wm"),
    "libxcb-util.so.1": ("libxcb-util1", "xcb-util"),
    "libxcb-image.so.0": ("libxcb-image0", "xcb-util-image"),
    "libxcb-keysyms.so.1": ("libxcb-keysyms1", "xcb-util-keysyms"),
    "libxcb-render-util.so.0": ("libxcb-render-util0", "xcb-util-renderutil"),
    "libxcb-randr.so.0": ("libxcb-randr0", "libxcb"),
    "libxcb-render.so.0": ("libxcb-render0", "libxcb"),
    "libxcb-shape.so.0": ("libxcb-shape0", "libxcb"),
    "libxcb-shm.so.0": ("libxcb-shm0", "libxcb"),
    "libxcb-sync.so.1": ("libxcb-sync1", "libxcb"),
    "libxcb-xfixes.so.0": ("libxcb-xfixes0", "libxcb"),
    "libxcb-xkb.so.1": ("libxcb-xkb1", "libxcb"),
    "libxcb.so.1": ("libxcb1", "libxcb"),
    "libX11-xcb.so.1": ("libx11-xcb1", "libX11-xcb"),
    "libX11.so.6": ("libx11-6", "libX11"),
    "libXau.so.6": ("libxau6", "libXau"),
    "libXdmcp.so.6": ("libxdmcp6", "libXdmcp"),
    "libxkbcommon.so.0": ("libxkbcommon0", "libxkbcommon"),
    "libxkbcommon-x11.so.0": ("libxkbcommon-x11-0", "libxkbcommon-x11"),
    "libGL.so.1": ("libgl1", "libglvnd-glx"),
    "libGLX.so.0": ("libglx0", "libglvnd-glx"),
    "libGLdispatch.so.0": ("libglvnd0", "libglvnd"),
    "libEGL.so.1": ("libegl1", "libglvnd-egl"),
    "libOpenGL.so.0": ("libopengl0", "libglvnd-opengl"),
    "libfontconfig.so.1": ("libfontconfig1", "fontconfig"),
    "libfreetype.so.6": ("libfreetype6", "freetype"),
    "libdbus-1.so.3": ("libdbus-1-3", "dbus-libs"),
    "libglib-2.0.so.0": ("libglib2.0-0", "glib2"),
    "libgthread-2.0.so.0": ("libglib2.0-0", "glib2"),
    "libpng16.so.16": ("libpng16-16", "libpng"),
    "libz.so.1": ("zlib1g", "zlib"),
    "libzstd.so.1": ("libzstd1", "libzstd"),
    "libexpat.so.1": ("libexpat1", "expat"),
    "libbsd.so.0": ("libbsd0", "libbsd"),
    "libbrotlidec.so.1": ("libbrotli1", "libbrotli"),
    "libpcre2-8.so.0": ("libpcre2-8-0", "pcre2"),
}

_PLUGIN: Final = "libqxcb.so"
_NOT_FOUND: Final = re.compile(r"^\s*(\S+)\s+=>\s+not found\s*$", re.MULTILINE)
_DLERROR_MISSING: Final = re.compile(r"(\S+\.so[.\d]*): cannot open shared object file")


@dataclass(frozen=True, slots=True)
class PluginProblem:
    """Why the xcb plugin at ``plugin`` cannot load: the ``missing`` libraries (sonames, in
    ``ldd``'s order), or, when none is missing, the loader's ``error``."""

    plugin: Path
    missing: tuple[str, ...]
    error: str

    def message(self) -> str:
        """What the demo prints: the missing libraries and how to install them."""
        lines = [f'demo: the Qt platform plugin "xcb" cannot be loaded ({self.plugin}).']
        if self.missing:
            lines.append("These shared libraries it needs are missing:")
            lines += [f"  {name}" for name in self.missing]
            commands = install_commands(self.missing)
            if commands:
                lines.append("Install them with:")
                lines += [f"  {command}" for command in commands]
            for name in (n for n in self.missing if n not in PACKAGES):
                lines.append(
                    f"No package is known here for {name}; find it with "
                    f"'apt-file search {name}' (Debian/Ubuntu) or "
                    f"'dnf provides \"*/{name}\"' (Fedora)."
                )
        else:
            lines.append(f"The loader said: {self.error}")
        lines.append(
            "The demo did not start; nothing was started in the background. Without a "
            "display, 'python -m demo_app --self-test' runs offscreen."
        )
        return "\n".join(lines)


def install_commands(missing: Sequence[str]) -> list[str]:
    """One install command for Debian/Ubuntu and one for Fedora, for the known libraries."""
    debian = list(dict.fromkeys(PACKAGES[n][0] for n in missing if n in PACKAGES))
    fedora = list(dict.fromkeys(PACKAGES[n][1] for n in missing if n in PACKAGES))
    if not debian:
        return []
    return [
        "Debian/Ubuntu: sudo apt install " + " ".join(debian),
        "Fedora:        sudo dnf install " + " ".join(fedora),
    ]


def uses_xcb(environ: Mapping[str, str] | None = None) -> bool:
    """Whether Qt will start on X11 (the xcb plugin): on Linux, ``QT_QPA_PLATFORM`` says
    ``xcb``, or it is unset, an X display is set and the session is not a Wayland one (where
    Qt tries its wayland plugin first)."""
    env = os.environ if environ is None else environ
    if not sys.platform.startswith("linux"):
        return False
    platform = env.get("QT_QPA_PLATFORM", "").strip()
    if platform:
        first = platform.split(";")[0].split(":")[0].strip()
        return first == "xcb"
    if env.get("WAYLAND_DISPLAY") or env.get("XDG_SESSION_TYPE") == "wayland":
        return False
    return bool(env.get("DISPLAY"))


def platform_plugin_dirs() -> tuple[list[Path], list[Path]]:
    """Where Qt looks for platform plugins, in its order: ``QT_QPA_PLATFORM_PLUGIN_PATH``
    (tried first, with a fallback), then ``<library path>/platforms`` for each Qt library
    path (``QT_PLUGIN_PATH`` entries, Qt's own plugin folder, the application's folder)."""
    from PySide6.QtCore import QCoreApplication

    first = [
        Path(p) for p in os.environ.get("QT_QPA_PLATFORM_PLUGIN_PATH", "").split(os.pathsep) if p
    ]
    return first, [Path(p) / "platforms" for p in QCoreApplication.libraryPaths()]


def _load_error(plugin: Path) -> str | None:
    """``None`` when the plugin loads (as Qt loads it: every symbol resolved), else why not."""
    try:
        ctypes.CDLL(str(plugin), mode=os.RTLD_NOW | os.RTLD_LOCAL)
    except OSError as exc:
        return str(exc)
    return None


def missing_libraries(plugin: Path, error: str = "") -> tuple[str, ...]:
    """The libraries ``plugin`` needs that the dynamic loader cannot find, as ``ldd`` lists
    them (every level); without ``ldd``, the one the loader's ``error`` names."""
    ldd = shutil.which("ldd")
    if ldd is not None:
        try:
            out = subprocess.run(
                [ldd, str(plugin)], capture_output=True, text=True, timeout=30, check=False
            ).stdout
        except (OSError, subprocess.SubprocessError):
            out = ""
        found = tuple(dict.fromkeys(_NOT_FOUND.findall(out)))
        if found:
            return found
    match = _DLERROR_MISSING.search(error)
    return (match.group(1),) if match else ()


def _diagnose(plugin: Path, error: str) -> PluginProblem:
    return PluginProblem(plugin, missing_libraries(plugin, error), error)


def problem() -> PluginProblem | None:
    """Why Qt's xcb plugin cannot load, or ``None`` (it loads, or Qt will not use it, or no
    plugin file was found: Qt then says so itself)."""
    if not uses_xcb():
        return None
    first, library_dirs = platform_plugin_dirs()
    failed: PluginProblem | None = None
    for folder in first:  # Qt falls back to the library paths when this one fails
        plugin = folder / _PLUGIN
        if plugin.is_file():
            error = _load_error(plugin)
            if error is None:
                return None
            failed = failed or _diagnose(plugin, error)
    for folder in library_dirs:  # the first plugin found here is the one Qt uses
        plugin = folder / _PLUGIN
        if plugin.is_file():
            error = _load_error(plugin)
            return None if error is None else _diagnose(plugin, error)
    return failed
