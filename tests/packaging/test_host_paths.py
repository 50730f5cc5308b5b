"""Nothing in the bundle or the .deb names the build host: not the checkout's folder, not the
home folder or the user name, and no ``RUNPATH`` outside the bundle.

Every file is read, and so is what is packed inside: the executable's archive (PyInstaller's
PKG and its PYZ of compiled modules), zip files (``base_library.zip``) and gzip files (the
changelog, the man page, dateutil's zoneinfo tarball).
"""

from __future__ import annotations

import getpass
import gzip
import io
import itertools
import re
import zipfile
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest
from PyInstaller.archive.readers import CArchiveReader

from tests.packaging.conftest import CACHE, ROOT

pytestmark = pytest.mark.timeout(900)  # may build the bundle (~25-60 s)


def _host_paths() -> list[str]:
    """The build host's own paths: the checkout (as given and resolved), the bundle cache, the
    home folder, and the user's folder under the usual parents."""
    user = getpass.getuser()
    paths = {str(ROOT), str(ROOT.resolve()), str(CACHE), str(Path.home()), f"/home/{user}"}
    return sorted(p for p in paths if p.strip("/"))


def _pattern(paths: list[str]) -> re.Pattern[bytes]:
    """One of ``paths`` as a whole path: not inside a longer name (``/dev/root`` is not
    ``/root``), and ending where a path component ends."""
    alternatives = b"|".join(re.escape(p.encode()) for p in sorted(paths, key=len, reverse=True))
    return re.compile(rb"(?<![\w.-])(?:" + alternatives + rb")(?![\w.-])")


_PKG_COOKIE = b"MEI\x0c\x0b\x0a\x0b\x0e"  # PyInstaller's archive appended to its executable


def _members(name: str, data: bytes) -> Iterator[tuple[str, bytes]]:
    """``(name, data)``, then what zip and gzip data hold, recursively."""
    yield name, data
    if data[:4] == b"PK\x03\x04":
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            for member in archive.namelist():
                yield from _members(f"{name}!{member}", archive.read(member))
    elif data[:2] == b"\x1f\x8b":
        yield from _members(f"{name}!gunzip", gzip.decompress(data))


def _pyinstaller_members(name: str, path: Path) -> Iterator[tuple[str, bytes]]:
    """The entries of the PKG archive appended to a PyInstaller executable, and the compiled
    modules of the PYZ inside it (each zlib-compressed on its own)."""
    pkg = CArchiveReader(str(path))
    for entry, toc in pkg.toc.items():
        if toc[-1] == "z":
            pyz = pkg.open_embedded_archive(entry)
            for module in pyz.toc:
                blob = pyz.extract(module, raw=True)
                if blob is not None:
                    yield f"{name}!{entry}!{module}", blob
        else:
            yield from _members(f"{name}!{entry}", pkg.extract(entry))


def _findings(tree: Path, paths: list[str]) -> list[str]:
    """``file[!member]: match`` for each host path found in a file under ``tree``."""
    pattern = _pattern(paths)
    found = []
    for path in sorted(tree.rglob("*")):
        if path.is_symlink() or not path.is_file():
            continue
        name = str(path.relative_to(tree))
        data = path.read_bytes()
        members = _members(name, data)
        if data[:4] == b"\x7fELF" and _PKG_COOKIE in data:
            members = itertools.chain(members, _pyinstaller_members(name, path))
        for member, blob in members:
            found += [f"{member}: {m.group().decode()}" for m in pattern.finditer(blob)]
    return found


def _runpaths(tree: Path, build: ModuleType) -> dict[str, list[str]]:
    elves = [p for p in tree.rglob("*") if build.is_elf(p)]
    return {
        str(path.relative_to(tree)): dyn.runpath
        for path, dyn in build.elf_dynamic(elves).items()
        if any(not entry.startswith("$ORIGIN") for entry in dyn.runpath)
    }


def test_the_scan_finds_a_host_path_in_a_packed_member(tmp_path: Path) -> None:
    """The scanner itself: a path inside a zip inside a gzip is found, ``/dev/root``-like
    look-alikes are not."""
    home = str(Path.home())
    inner = io.BytesIO()
    with zipfile.ZipFile(inner, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("direct_url.json", f'{{"url": "file://{ROOT}"}}')
    (tmp_path / "packed.gz").write_bytes(gzip.compress(inner.getvalue()))
    (tmp_path / "lookalike.txt").write_bytes(f"/dev{home} {home}fs x{ROOT}y".encode())
    found = _findings(tmp_path, _host_paths())
    assert found == [f"packed.gz!gunzip!direct_url.json: {ROOT}"]


def test_bundle_names_no_build_host_path(bundle: Path, build: ModuleType) -> None:
    folder = bundle.parent
    assert not list(folder.rglob("direct_url.json"))  # PEP 610: the checkout's file:// URL
    assert _runpaths(folder, build) == {}  # only $ORIGIN-relative RUNPATHs
    found = _findings(folder, _host_paths())
    assert found == [], "\n".join(found[:40])


def test_deb_names_no_build_host_path(package_root: Path, build: ModuleType) -> None:
    assert (package_root / "DEBIAN" / "control").is_file()  # the control files are scanned too
    assert _runpaths(package_root, build) == {}
    found = _findings(package_root, _host_paths())
    assert found == [], "\n".join(found[:40])


def test_slashing_keeps_a_version_that_the_linker_merged_into_the_prefix(build: ModuleType) -> None:
    # libpython's PY_VERSION ("3.11.7") can be the tail of its compiled-in prefix string: the
    # home part goes, the version stays, and every string keeps its length.
    data = b"\0/root/.pyenv/versions/3.11.7\0/root/notes\0/srv/checkout/x\0"
    out = build._slash_out(data, [b"/root/.pyenv/versions/3.11.7", b"/srv/checkout", b"/root"])
    assert out == b"\0//////////////////////3.11.7\0//////notes\0//////////////x\0"
    assert len(out) == len(data)


def test_the_bundled_interpreter_keeps_its_version_string(bundle: Path) -> None:
    # platform.python_version() in the frozen app parses it; a scrub that slashed it made the
    # frozen self-test fail ("failed to parse CPython sys.version: '////// (main, ...'").
    import sys

    libpython = next((bundle.parent / "_internal").glob("libpython3*.so*"))
    version = sys.version.split()[0].encode()
    assert version + b"\0" in libpython.read_bytes()
