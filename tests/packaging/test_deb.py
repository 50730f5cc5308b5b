"""The .deb built from the bundle: its control fields, its file tree, and that every shared
library the bundle links is either inside it or guaranteed by the declared dependencies.

The package is built with gzip at level 1 here (the ``deb`` fixture in conftest.py: the layout is
what is tested; the release build's xz size is printed by ``packaging/build.py``). Installing it
into a bare Debian chroot is ``packaging/test_deb_chroot.sh`` (needs a Debian mirror; see the
README).
"""

from __future__ import annotations

import gzip
import re
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path
from types import ModuleType

import pytest

pytestmark = pytest.mark.timeout(900)  # may build the bundle (~25-60 s)


def _field(deb: Path, name: str) -> str:
    return subprocess.run(
        ["dpkg-deb", "--field", str(deb), name], capture_output=True, text=True, check=True
    ).stdout.strip()


def _names(relation: str) -> set[str]:
    """Package names in a Depends-style field (versions and alternatives dropped)."""
    return {
        re.split(r"[\s(:]", alt.strip())[0]
        for part in relation.split(",")
        for alt in part.split("|")
        if alt.strip()
    }


def test_deb_declares_the_runtime_dependencies(deb: Path, build: ModuleType) -> None:
    assert _field(deb, "Package") == build.PACKAGE
    assert _field(deb, "Version") == build._version()
    depends = _field(deb, "Depends")
    assert re.search(r"\blibc6 \(>= 2\.\d+\)", depends), depends  # the build host's glibc floor
    wanted = {
        *("libudev1", "libgl1", "libegl1", "libxkbcommon0", "libfontconfig1", "fonts-dejavu-core"),
        *("libxcb1", "libxcb-icccm4", "libxcb-keysyms1", "libxcb-cursor0", "libstdc++6"),
    }
    assert wanted <= _names(depends), wanted - _names(depends)


def test_deb_installed_size_covers_the_bundle(deb: Path, bundle: Path, build: ModuleType) -> None:
    # The license texts move (gzip) to /usr/share/doc: the rest of the bundle is installed as is.
    moved = sum((bundle.parent / n).stat().st_size for n in (build.THIRD_PARTY_NOTICES, "LICENSE"))
    assert int(_field(deb, "Installed-Size")) * 1024 >= build.tree_size(bundle.parent) - moved


def test_deb_installs_the_app_launcher_desktop_entry_metainfo_and_icons(
    package_root: Path, build: ModuleType
) -> None:
    assert f"/usr/lib/{build.PACKAGE}" == build.PREFIX  # Debian policy: nothing in /opt
    assert not (package_root / "opt").exists()
    app = package_root / build.PREFIX.lstrip("/") / build.BUNDLE_NAME
    assert app.is_file()
    launcher = package_root / "usr" / "bin" / build.PACKAGE
    assert launcher.stat().st_mode & 0o111
    assert f"exec {build.PREFIX}/{build.BUNDLE_NAME} " in launcher.read_text()
    share = package_root / "usr" / "share"
    desktop = share / "applications" / f"{build.APP_ID}.desktop"
    proc = subprocess.run(["desktop-file-validate", str(desktop)], capture_output=True, text=True)
    assert proc.returncode == 0 and proc.stdout.strip() == "", proc.stdout + proc.stderr
    assert (share / "icons/hicolor/scalable/apps" / f"{build.APP_ID}.svg").is_file()
    for size in build.ICON_SIZES:
        assert (share / f"icons/hicolor/{size}x{size}/apps/{build.APP_ID}.png").is_file()
    # AppStream's view of the installed tree: metainfo, its desktop file and icon found together
    proc = subprocess.run(
        ["appstreamcli", "validate-tree", "--no-net", str(package_root)],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert [line for line in proc.stdout.splitlines() if line[:2] in {"E:", "W:"}] == []


def test_deb_ships_copyright_changelog_man_page_and_lintian_overrides(
    package_root: Path, build: ModuleType
) -> None:
    docs = package_root / "usr/share/doc" / build.PACKAGE
    copyright_text = (docs / "copyright").read_text()
    assert copyright_text.startswith("Format: https://www.debian.org/doc/packaging-manuals/")
    assert "Files: *\nCopyright: 2026 desktop-telemetry contributors\nLicense: Apache-2.0\n" in (
        copyright_text
    )  # the project's license (pyproject.toml), then the bundled Python, Qt, OpenSSL...
    for license_name in ("PSF-2.0", "LGPL-3", "MPL-2.0"):
        assert f"\nLicense: {license_name}\n" in copyright_text
    # a native package's changelog, written from the metainfo's releases
    changelog = gzip.decompress((docs / "changelog.gz").read_bytes()).decode()
    assert changelog.startswith(f"{build.PACKAGE} ({build._version()}) unstable; urgency=medium")
    man = gzip.decompress(
        (package_root / "usr/share/man/man1" / f"{build.PACKAGE}.1.gz").read_bytes()
    ).decode()
    assert man.startswith(f".TH {build.PACKAGE.upper()} 1 ")
    assert "\\-\\-self\\-test" in man  # the frozen app's own --help
    overrides = package_root / "usr/share/lintian/overrides" / build.PACKAGE
    assert overrides.read_text() == (build.LINUX / "lintian-overrides").read_text()


def test_deb_installs_the_write_helpers_polkit_action_for_the_installed_executable(
    package_root: Path, build: ModuleType
) -> None:
    policy = package_root / "usr/share/polkit-1/actions" / f"{build.APP_ID}.policy"
    action = ET.parse(policy).getroot().find("action")
    assert action is not None
    annotations = {a.get("key"): a.text for a in action.iterfind("annotate")}
    program = annotations["org.freedesktop.policykit.exec.path"]
    assert program == f"{build.PREFIX}/{build.BUNDLE_NAME}"  # where pkexec finds it installed
    assert (package_root / program.lstrip("/")).is_file()


def test_deb_shared_libraries_are_not_executable(package_root: Path, build: ModuleType) -> None:
    app = package_root / build.PREFIX.lstrip("/")
    libraries = [p for p in app.rglob("*.so*") if p.is_file() and not p.is_symlink()]
    assert len(libraries) > 50
    executable = [str(p.relative_to(app)) for p in libraries if p.stat().st_mode & 0o111]
    assert executable == []
    assert (app / build.BUNDLE_NAME).stat().st_mode & 0o111


def _needed(files: list[Path]) -> dict[Path, set[str]]:
    """DT_NEEDED sonames of each ELF file (``readelf -d``, binutils)."""
    out = subprocess.run(
        ["readelf", "-d", "-W", *map(str, files)], capture_output=True, text=True, check=True
    ).stdout
    needed: dict[Path, set[str]] = {f: set() for f in files}
    current = files[0]
    for line in out.splitlines():
        if line.startswith("File: "):
            current = Path(line[6:].strip())
        elif m := re.search(r"\(NEEDED\)\s+Shared library: \[(.+)\]", line):
            needed[current].add(m.group(1))
    return needed


def _host_packages(sonames: set[str]) -> dict[str, str]:
    """soname -> the installed Debian package providing it on this (build) host."""
    ldconfig = subprocess.run(["ldconfig", "-p"], capture_output=True, text=True).stdout
    paths: dict[str, str] = {}  # candidate path -> soname
    for line in ldconfig.splitlines():
        name, _, rest = line.strip().partition(" ")
        if name in sonames and "x86-64" in rest and "=>" in rest:
            path = Path(rest.rsplit("=>", 1)[1].strip())
            for candidate in (path, path.resolve(), Path("/usr") / path.relative_to("/")):
                paths[str(candidate)] = name
    if not paths:
        return {}
    out = subprocess.run(["dpkg", "-S", *paths], capture_output=True, text=True).stdout
    found = {}
    for line in out.splitlines():
        package, _, path = line.partition(": ")
        if path.strip() in paths:
            found[paths[path.strip()]] = package.split(":")[0]
    return found


def _dependency_closure(roots: set[str]) -> set[str]:
    """``roots`` and every installed package they depend on (Depends and Pre-Depends)."""
    out = subprocess.run(
        ["dpkg-query", "-W", "-f", "${Package}\t${Depends}, ${Pre-Depends}, ${Provides}\n"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    graph = {}
    for line in out.splitlines():
        name, _, rest = line.partition("\t")
        graph[name] = _names(rest)
    seen, todo = set(), list(roots)
    while todo:
        pkg = todo.pop()
        if pkg not in seen:
            seen.add(pkg)
            todo.extend(graph.get(pkg, ()))
    return seen


def test_every_linked_library_is_bundled_or_guaranteed_by_depends(
    deb: Path, package_root: Path, build: ModuleType
) -> None:
    bundle = package_root / build.PREFIX.lstrip("/")
    files = [p for p in bundle.rglob("*") if p.is_file() and not p.is_symlink()]
    elves = [p for p in files if p.open("rb").read(4) == b"\x7fELF"]
    assert len(elves) > 50
    inside = {p.name for p in bundle.rglob("*")}
    needed = _needed(elves)
    outside = {soname for needs in needed.values() for soname in needs} - inside
    assert outside  # libc, GL, xcb... come from the system by design
    allowed = _dependency_closure(
        _names(_field(deb, "Depends")) | _names(_field(deb, "Recommends"))
    )
    packages = _host_packages(outside)
    unmet = {}
    for soname in sorted(outside):
        package = packages.get(soname)
        if package is None or package not in allowed:
            users = [str(p.relative_to(bundle)) for p, n in needed.items() if soname in n]
            unmet[soname] = (package, users[:3])
    assert unmet == {}, f"libraries neither bundled nor guaranteed by Depends: {unmet}"


def test_bundle_and_deb_carry_the_license_texts_of_what_they_ship(
    bundle: Path, package_root: Path, build: ModuleType
) -> None:
    import gzip

    folder = bundle.parent
    notices = (folder / build.THIRD_PARTY_NOTICES).read_text(encoding="utf-8")
    assert "Apache License" in (folder / "LICENSE").read_text(encoding="utf-8")
    # Qt's bindings ship no license file: their LGPL text comes from packaging/licenses/.
    for name in ("PySide6", "shiboken6", "httpx", "sqlite-utils", "pyudev", "PyInstaller"):
        assert name.lower() in notices.lower(), name
    assert "GNU LESSER GENERAL PUBLIC LICENSE" in notices
    doc = package_root / "usr" / "share" / "doc" / build.PACKAGE
    assert (
        gzip.decompress((doc / f"{build.THIRD_PARTY_NOTICES}.gz").read_bytes()).decode() == notices
    )
    installed = package_root / build.PREFIX.lstrip("/")
    assert not (installed / build.THIRD_PARTY_NOTICES).exists()  # Debian: in /usr/share/doc
