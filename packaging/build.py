"""Build the demo app's one-folder bundle with PyInstaller, then a ``.deb`` with ``dpkg-deb``.

    uv run python packaging/build.py                 # dist/demo-app/ and dist/<package>.deb
    uv run python packaging/build.py --no-deb        # the bundle only
    uv run python packaging/build.py --cache build/packaging-cache   # reuse an identical build

This module owns the package layout (``/usr/lib/<package>/``, the ``/usr/bin`` launcher, the
desktop file, AppStream metainfo, hicolor icons, the polkit action of the write helper, man page,
copyright, changelog and lintian overrides), the ``Depends`` list, the build-input digest that
keys the bundle cache, the size report, and the ELF helpers the spec uses: the
``DT_NEEDED``/``RUNPATH`` reader and the scrub that takes build-host paths out of the collected
binaries. The spec (``demo_app.spec``) owns what goes into the bundle.
"""

from __future__ import annotations

import argparse
import contextlib
import email.utils
import fcntl
import gzip
import hashlib
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Iterator
from datetime import UTC, date, datetime
from datetime import time as dtime
from pathlib import Path
from typing import Final, NamedTuple

ROOT: Final = Path(__file__).resolve().parent.parent
PACKAGING: Final = ROOT / "packaging"
LINUX: Final = PACKAGING / "linux"
SPEC: Final = PACKAGING / "demo_app.spec"

APP_ID: Final = "io.github.desktop_telemetry.DemoFlasher"
BUNDLE_NAME: Final = "demo-app"  # the executable (WM_CLASS is APP_ID, set by the app)
PACKAGE: Final = "desktop-telemetry-demo"  # the .deb, the /usr/lib folder, the /usr/bin launcher
PREFIX: Final = f"/usr/lib/{PACKAGE}"  # private to the package (Debian policy: no /opt)
MAINTAINER: Final = "desktop-telemetry contributors <maintainers@desktop-telemetry.invalid>"
ICON_SIZES: Final = (16, 24, 32, 48, 64, 128, 256, 512)

#: Libraries the bundle needs from the system. PyInstaller never bundles libc, GL/EGL or libxcb
#: itself; libudev is loaded by pyudev through ctypes (never bundled, so the system's matches its
#: udev); Qt's xcb plugin needs the xcb utility libraries; fontconfig needs fonts to render text.
DEPENDS: Final = (
    "zlib1g",  # libz and libbz2: the system's copies (lintian: embedded-library)
    "libbz2-1.0",
    "libstdc++6",  # taken from the system (a bundled one older than Mesa's breaks its GL drivers)
    "libudev1",
    "libgl1",
    "libegl1",
    "libfontconfig1",
    "libfreetype6",
    "fonts-dejavu-core",
    "libglib2.0-0",
    "libdbus-1-3",
    "libgssapi-krb5-2",  # QtNetwork (telemetry.qt.QtConnectivity) links Kerberos
    "libxkbcommon0",
    "libxkbcommon-x11-0",
    "libx11-6",
    "libx11-xcb1",
    "libxcb1",
    "libxcb-cursor0",
    "libxcb-icccm4",
    "libxcb-image0",
    "libxcb-keysyms1",
    "libxcb-randr0",
    "libxcb-render0",
    "libxcb-render-util0",
    "libxcb-shape0",
    "libxcb-shm0",
    "libxcb-sync1",
    "libxcb-util1",
    "libxcb-xfixes0",
    "libxcb-xkb1",
)
#: Qt's Wayland platform plugin (a Wayland session falls back to xcb through XWayland without them).
RECOMMENDS: Final = ("libwayland-client0", "libwayland-cursor0", "libwayland-egl1")

#: Files whose content decides the bundle (the digest keys the build cache).
_DIGEST_GLOBS: Final = (
    "packaging/demo_app.spec",
    "packaging/run_demo_app.py",
    "packaging/build.py",
    "packaging/third_party_licenses.py",
    "packaging/licenses/*",
    "LICENSE",
    "demo/pyproject.toml",
    "uv.lock",
    "pyproject.toml",
    "README.md",  # the library's METADATA (in the bundle) carries it as its long description
    "telemetry/**/*",
    "demo_app/**/*",
)
#: The license texts of what the bundle ships (packaging/third_party_licenses.py writes it).
THIRD_PARTY_NOTICES: Final = "THIRD-PARTY-LICENSES.txt"
_CACHE_KEEP: Final = 2  # cached bundles kept (each is ~100 MB)


def source_digest() -> str:
    """A hash of every build input (spec, entry script, sources, lock file, Python version)."""
    digest = hashlib.sha256(f"{sys.version}\n{platform.machine()}\n".encode())
    files: set[Path] = set()
    for pattern in _DIGEST_GLOBS:
        files.update(p for p in ROOT.glob(pattern) if p.is_file() and "__pycache__" not in p.parts)
    for path in sorted(files):
        digest.update(f"{path.relative_to(ROOT)}\0".encode())
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()[:16]


def tree_size(path: Path) -> int:
    """Bytes of every regular file under ``path`` (symlinks counted as links, not targets)."""
    if path.is_file():
        return path.stat().st_size
    return sum(p.lstat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def _mb(size: int) -> str:
    return f"{size / 1e6:.1f} MB"


def is_elf(path: Path) -> bool:
    """Whether ``path`` is a regular ELF file (not a symlink)."""
    if path.is_symlink() or not path.is_file():
        return False
    with path.open("rb") as handle:
        return handle.read(4) == b"\x7fELF"


class ElfDynamic(NamedTuple):
    """The dynamic section entries of one ELF file that decide where its libraries come from."""

    needed: set[str]  # DT_NEEDED sonames
    runpath: list[str]  # DT_RUNPATH or DT_RPATH entries


def elf_dynamic(paths: Iterable[Path]) -> dict[Path, ElfDynamic]:
    """``DT_NEEDED`` and ``RUNPATH``/``RPATH`` of each ELF file (``readelf -d``, binutils)."""
    files = list(paths)
    found: dict[Path, ElfDynamic] = {f: ElfDynamic(set(), []) for f in files}
    for start in range(0, len(files), 200):  # stay under the command-line length limit
        chunk = files[start : start + 200]
        out = subprocess.run(
            ["readelf", "-d", "-W", *map(str, chunk)], capture_output=True, text=True, check=True
        ).stdout
        current = chunk[0]
        for line in out.splitlines():
            if line.startswith("File: "):
                current = Path(line[6:].strip())
            elif m := re.search(r"\(NEEDED\)\s+Shared library: \[(.+)\]", line):
                found[current].needed.add(m.group(1))
            elif m := re.search(r"\((?:RUNPATH|RPATH)\)\s+Library r(?:un)?path: \[(.*)\]", line):
                found[current].runpath.extend(p for p in m.group(1).split(":") if p)
    return found


def _slash_out(data: bytes, paths: Iterable[bytes]) -> bytes:
    """``data`` with each of ``paths`` that ends where a path component ends (followed by ``/`` or
    NUL) replaced by as many slashes: same length, still a well-formed absolute path. A last
    component made only of digits and dots (a version) stays: ``/root/.pyenv/versions/3.11.7``
    reads ``/////////////////////3.11.7``. The linker merges equal string tails, and libpython's
    ``PY_VERSION`` (``3.11.7``) is the tail of its compiled-in prefix: slashing it would break
    ``platform.python_version()`` in the frozen app."""
    out = bytearray(data)
    for path in paths:
        last = path.rstrip(b"/").rsplit(b"/", 1)[-1]
        keep = len(last) if last and not last.strip(b"0123456789.") else 0
        start = out.find(path)
        while start >= 0:
            end = start + len(path)
            if end == len(out) or out[end] in b"/\0":
                out[start : end - keep] = b"/" * (len(path) - keep)
            start = out.find(path, end)
    return bytes(out)


def scrub_host_paths(folder: Path, host_paths: Iterable[str]) -> dict[str, int]:
    """Take the build host out of the collected binaries under ``folder``, in place:

    * ``RUNPATH``/``RPATH`` entries that are absolute paths (the build host's Python lib folder,
      ``/root/.pyenv/versions/3.11/lib``) are removed with ``patchelf``; ``$ORIGIN`` ones stay;
    * ``host_paths`` inside them (the interpreter's compiled-in prefix when the build host's
      Python lives under a home folder) become slashes: a frozen app sets its own ``home`` and
      never reads that prefix;
    * shared libraries lose their execute bits (only the executable keeps them).

    Returns counts of what was changed."""
    elves = [p for p in sorted(folder.rglob("*")) if is_elf(p)]
    counts = {"runpath_removed": 0, "runpath_trimmed": 0, "paths_slashed": 0, "chmod_644": 0}
    patchelf = shutil.which("patchelf")
    needles = sorted({p.rstrip("/").encode() for p in host_paths if p.rstrip("/")}, key=len)[::-1]
    for path, dyn in elf_dynamic(elves).items():
        kept = [entry for entry in dyn.runpath if entry.startswith("$ORIGIN")]
        if kept != dyn.runpath:
            if patchelf is None:
                raise SystemExit("build: patchelf is needed to remove build-host RUNPATHs")
            if kept:
                subprocess.run([patchelf, "--set-rpath", ":".join(kept), str(path)], check=True)
                counts["runpath_trimmed"] += 1
            else:
                subprocess.run([patchelf, "--remove-rpath", str(path)], check=True)
                counts["runpath_removed"] += 1
        data = path.read_bytes()
        if any(n in data for n in needles):
            slashed = _slash_out(data, needles)
            if slashed != data:
                path.write_bytes(slashed)
                counts["paths_slashed"] += 1
        if ".so" in path.name and path.stat().st_mode & 0o111:
            path.chmod(0o644)
            counts["chmod_644"] += 1
    return counts


def host_paths() -> list[str]:
    """Paths that name this build host: the checkout, the home folder, the Python installation."""
    paths = {str(ROOT), str(ROOT.resolve()), str(Path.home())}
    for prefix in (sys.base_prefix, sys.base_exec_prefix):
        if Path(prefix).resolve().is_relative_to(Path.home().resolve()):
            paths.add(prefix)
    return sorted(p for p in paths if p not in {"/", ""})


def build_bundle(dist_dir: Path, work_dir: Path) -> Path:
    """Run PyInstaller on the spec; return the bundle folder ``dist_dir/demo-app``."""
    started = time.monotonic()
    subprocess.run(
        [sys.executable, "-m", "PyInstaller", "--noconfirm", "--clean", "--log-level", "WARN",
         "--distpath", str(dist_dir), "--workpath", str(work_dir), str(SPEC)],
        cwd=ROOT,
        check=True,
        env={**os.environ, "DEMO_BUNDLE_NAME": BUNDLE_NAME},
    )  # fmt: skip
    bundle = dist_dir / BUNDLE_NAME
    check_bundle(bundle)
    # The license texts of the project and of everything the bundle ships, next to the app.
    shutil.copyfile(ROOT / "LICENSE", bundle / "LICENSE")
    subprocess.run(
        [sys.executable, str(ROOT / "packaging" / "third_party_licenses.py"),
         "-o", str(bundle / THIRD_PARTY_NOTICES)],
        cwd=ROOT,
        check=True,
    )  # fmt: skip
    print(f"bundle built in {time.monotonic() - started:.1f} s: {bundle}", flush=True)
    return bundle


def check_bundle(bundle: Path) -> None:
    """Fail on the mistakes a broken spec makes: no executable, dangling symlinks, a bundled
    libudev, no CA bundle."""
    problems = []
    if not os.access(bundle / BUNDLE_NAME, os.X_OK):
        problems.append(f"no executable {BUNDLE_NAME}")
    dangling = [
        str(p.relative_to(bundle)) for p in bundle.rglob("*") if p.is_symlink() and not p.exists()
    ]
    if dangling:
        problems.append(f"dangling symlinks {dangling}")
    if any(bundle.rglob("libudev.so*")):
        problems.append("libudev is bundled (it must come from the system)")
    if not any(bundle.rglob("certifi/cacert.pem")):
        problems.append("certifi/cacert.pem is missing")
    if problems:
        raise SystemExit(f"build: bad bundle {bundle}: " + "; ".join(problems))


@contextlib.contextmanager
def _locked(lock_file: Path) -> Iterator[None]:
    lock_file.parent.mkdir(parents=True, exist_ok=True)
    with lock_file.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def cached_bundle(cache_dir: Path) -> Path:
    """The bundle for the current sources: reused from ``cache_dir/<digest>/`` when the spec and
    sources are unchanged, else built there (under a lock, so parallel callers build once)."""
    cache_dir = cache_dir.resolve()
    key = source_digest()
    entry = cache_dir / key
    bundle = entry / "dist" / BUNDLE_NAME
    with _locked(cache_dir / ".lock"):
        if (entry / "complete").exists():
            print(f"bundle reused from the cache ({key}): {bundle}", flush=True)
            return bundle
        shutil.rmtree(entry, ignore_errors=True)
        build_bundle(entry / "dist", entry / "work")
        shutil.rmtree(entry / "work", ignore_errors=True)
        (entry / "complete").write_text(key + "\n")
        old = sorted(
            (p for p in cache_dir.iterdir() if p.is_dir() and p != entry),
            key=lambda p: p.stat().st_mtime,
        )
        for stale in old[: max(0, len(old) - (_CACHE_KEEP - 1))]:
            shutil.rmtree(stale, ignore_errors=True)
    return bundle


def _version() -> str:
    """The package version, from the one place it is defined (``telemetry/_version.py``)."""
    import ast

    source = (ROOT / "telemetry" / "_version.py").read_text(encoding="utf-8")
    for node in ast.parse(source).body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "__version__" for t in node.targets
        ):
            return str(ast.literal_eval(node.value))
    raise RuntimeError("telemetry/_version.py defines no __version__")


def _glibc_floor() -> str:
    """The build host's glibc: a PyInstaller bundle runs on this version and newer only."""
    name, _, version = os.confstr("CS_GNU_LIBC_VERSION").partition(" ")  # type: ignore[union-attr]
    if name != "glibc":
        raise SystemExit(f"build: not a glibc system ({name})")
    return version


#: The package's one-line summary and its extended description (control file and man page).
SUMMARY: Final = "Etcher-like image writer demonstrating desktop-telemetry"
DESCRIPTION: Final = (
    "Flash disk images to SD cards, USB drives or disk-image files, with\n"
    "transparent, consent-first usage telemetry. A self-contained PySide6 app\n"
    "frozen with PyInstaller."
)


def releases() -> list[tuple[str, date, list[str]]]:
    """(version, date, notes) of every release in the AppStream metainfo, newest first: the one
    place the release history is written (the changelog and the man page date come from it)."""
    component = ET.parse(LINUX / f"{APP_ID}.metainfo.xml").getroot()
    found = []
    for release in component.iterfind("releases/release"):
        notes = [" ".join("".join(p.itertext()).split()) for p in release.iterfind("description/*")]
        found.append(
            (release.get("version", ""), date.fromisoformat(release.get("date", "")), notes)
        )
    return sorted(found, key=lambda r: r[1], reverse=True)


def debian_changelog() -> str:
    """A Debian changelog (native package) written from the metainfo's releases."""
    entries = []
    for version, day, notes in releases():
        stamp = email.utils.format_datetime(datetime.combine(day, dtime(), UTC))
        items = "".join(f"  * {note}\n" for note in notes or ["Release."])
        entries.append(
            f"{PACKAGE} ({version}) unstable; urgency=medium\n\n{items}\n"
            f" -- {MAINTAINER}  {stamp}\n"
        )
    return "\n".join(entries)


def _roff(text: str) -> str:
    """Plain text as roff lines: backslashes escaped, no line read as a request."""
    lines = text.replace("\\", "\\e").replace("-", "\\-").splitlines()
    return "".join(("\\&" + line if line[:1] in {".", "'"} else line) + "\n" for line in lines)


def man_page(bundle: Path, version: str) -> str:
    """``desktop-telemetry-demo(1)``: the options are the frozen app's own ``--help``."""
    proc = subprocess.run(
        [str(bundle / BUNDLE_NAME), "--help"],
        env={
            "HOME": tempfile.gettempdir(),
            "PATH": "/usr/bin:/bin",
            "QT_QPA_PLATFORM": "offscreen",
        },
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    usage = proc.stdout.replace(BUNDLE_NAME, PACKAGE, 1)
    day = releases()[0][1].isoformat()
    return (
        f'.TH {PACKAGE.upper()} 1 "{day}" "{PACKAGE} {version}" "User Commands"\n'
        f".SH NAME\n{PACKAGE} \\- {SUMMARY}\n"
        f".SH SYNOPSIS\n.B {PACKAGE}\n[\\fIOPTION\\fR]...\n"
        f".SH DESCRIPTION\n{_roff(DESCRIPTION)}"
        f".SH OPTIONS\n.nf\n{_roff(usage)}.fi\n"
    )


def stage_package_root(bundle: Path, root: Path, version: str) -> Path:
    """Lay out the .deb's file tree under ``root`` (with ``DEBIAN/control``); return ``root``.

    The bundle goes to ``/usr/lib/<package>/``; ``/usr/bin/<package>`` is a script that execs
    it (the process runs as the bundle's own ``demo-app``, the program polkit's action names)."""
    app = root / PREFIX.lstrip("/")
    shutil.copytree(bundle, app, symlinks=True)
    # Debian keeps license texts in /usr/share/doc/<package> (the copyright file points there).
    notices = (app / THIRD_PARTY_NOTICES).read_text(encoding="utf-8")
    (app / THIRD_PARTY_NOTICES).unlink()
    (app / "LICENSE").unlink()
    for path in app.rglob("*"):  # dpkg-deb keeps modes: make them independent of the umask
        if not path.is_symlink():
            path.chmod(0o755 if path.is_dir() or path.stat().st_mode & 0o100 else 0o644)
    launcher = root / "usr" / "bin" / PACKAGE
    launcher.parent.mkdir(parents=True)
    launcher.write_text(f'#!/bin/sh\nexec {PREFIX}/{BUNDLE_NAME} "$@"\n')
    launcher.chmod(0o755)
    share = root / "usr" / "share"
    for src, dest in [
        (LINUX / f"{APP_ID}.desktop", share / "applications"),
        (LINUX / f"{APP_ID}.metainfo.xml", share / "metainfo"),
        (LINUX / "icons" / f"{APP_ID}.svg", share / "icons/hicolor/scalable/apps"),
        *(
            (LINUX / "icons" / str(s) / f"{APP_ID}.png", share / f"icons/hicolor/{s}x{s}/apps")
            for s in ICON_SIZES
        ),
        (LINUX / "copyright", share / "doc" / PACKAGE),
        (LINUX / f"{APP_ID}.policy", share / "polkit-1" / "actions"),  # pkexec's write helper
    ]:
        dest.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, dest / src.name)
        (dest / src.name).chmod(0o644)
    generated = {
        share / "doc" / PACKAGE / "changelog.gz": debian_changelog(),  # native: not .Debian.gz
        share / "man" / "man1" / f"{PACKAGE}.1.gz": man_page(bundle, version),
        share / "doc" / PACKAGE / f"{THIRD_PARTY_NOTICES}.gz": notices,
    }
    for path, text in generated.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(gzip.compress(text.encode(), compresslevel=9, mtime=0))
        path.chmod(0o644)
    overrides = share / "lintian" / "overrides" / PACKAGE
    overrides.parent.mkdir(parents=True)
    shutil.copyfile(LINUX / "lintian-overrides", overrides)
    overrides.chmod(0o644)
    for path in [root, *root.rglob("*")]:
        if path.is_dir() and not path.is_symlink():
            path.chmod(0o755)
    control = root / "DEBIAN" / "control"
    control.parent.mkdir()
    (root / "DEBIAN" / "md5sums").write_text(  # for dpkg --verify
        "".join(
            f"{hashlib.md5(p.read_bytes()).hexdigest()}  {p.relative_to(root)}\n"
            for p in sorted(root.rglob("*"))
            if p.is_file() and not p.is_symlink() and p.parts[len(root.parts)] != "DEBIAN"
        )
    )
    installed_kib = (tree_size(root) + 1023) // 1024
    arch = subprocess.run(
        ["dpkg", "--print-architecture"], capture_output=True, text=True, check=True
    ).stdout.strip()
    description = "".join(f" {line}\n" for line in DESCRIPTION.splitlines())
    control.write_text(
        f"Package: {PACKAGE}\n"
        f"Version: {version}\n"
        f"Architecture: {arch}\n"
        f"Maintainer: {MAINTAINER}\n"
        f"Installed-Size: {installed_kib}\n"
        f"Depends: libc6 (>= {_glibc_floor()}), {', '.join(DEPENDS)}\n"
        f"Recommends: {', '.join(RECOMMENDS)}\n"
        "Section: utils\n"
        "Priority: optional\n"
        "Homepage: https://github.com/desktop-telemetry/desktop-telemetry\n"
        f"Description: {SUMMARY}\n{description}"
    )
    return root


def build_deb(
    bundle: Path, out_dir: Path, *, version: str, compression: str = "xz", level: int | None = None
) -> Path:
    """Build ``out_dir/<package>_<version>_<arch>.deb`` from the bundle; return its path.

    xz (dpkg's default, level 6) is the smallest; ``zstd`` at level 12 is ~20% larger and ~4x
    faster; ``none`` is for tests that only look inside."""
    started = time.monotonic()
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="deb-root-", dir=out_dir) as tmp:
        root = stage_package_root(bundle, Path(tmp) / "root", version)
        subprocess.run(
            ["dpkg-deb", "--root-owner-group", f"-Z{compression}",
             *([f"-z{level}"] if level is not None else []), "--build", str(root), str(out_dir)],
            check=True,
            stdout=subprocess.DEVNULL,
        )  # fmt: skip
    debs = sorted(out_dir.glob(f"{PACKAGE}_{version}_*.deb"), key=lambda p: p.stat().st_mtime)
    print(
        f".deb built in {time.monotonic() - started:.1f} s ({compression}): {debs[-1]}", flush=True
    )
    return debs[-1]


def main(argv: list[str] | None = None) -> int:
    """Build the bundle (and the .deb); print the sizes against their targets."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dist", type=Path, default=ROOT / "dist", help="output folder")
    parser.add_argument("--cache", type=Path, help="reuse/keep the bundle in this cache folder")
    parser.add_argument("--no-deb", action="store_true", help="build the bundle only")
    parser.add_argument(
        "--compression", choices=["xz", "zstd", "gzip", "none"], default="xz", help=".deb data"
    )
    parser.add_argument("--level", type=int, help="compression level (dpkg-deb -z)")
    args = parser.parse_args(argv)
    started = time.monotonic()
    if args.cache:
        bundle = cached_bundle(args.cache)
    else:
        bundle = build_bundle(args.dist.resolve(), ROOT / "build" / "pyinstaller")
    size = tree_size(bundle)
    files = sum(1 for p in bundle.rglob("*") if p.is_file())
    print(f"bundle (unpacked): {_mb(size)} in {files} files (target <= 130 MB): {bundle}")
    status = 0 if size <= 130e6 else 1
    if not args.no_deb:
        deb = build_deb(
            bundle,
            args.dist.resolve(),
            version=_version(),
            compression=args.compression,
            level=args.level,
        )
        deb_size = deb.stat().st_size
        print(f".deb: {_mb(deb_size)} (target <= 45 MB): {deb}")
        status = status or (0 if deb_size <= 45e6 else 1)
    print(f"total build time: {time.monotonic() - started:.1f} s")
    return status


if __name__ == "__main__":
    raise SystemExit(main())
