"""Collect the license texts of every Python distribution a bundle ships, into one text file.

    uv run python packaging/third_party_licenses.py -o dist/THIRD-PARTY-LICENSES.txt
    uv run python packaging/third_party_licenses.py --json      # what it would collect

This module owns the answer to "which distributions does the demo's bundle ship, and under
which license texts". The distributions are the installed requirement closure of the roots
(default: ``desktop-telemetry-demo``, with the extras it asks for, environment markers
evaluated here), minus those whose every top-level module the PyInstaller spec excludes
(default: the PostgreSQL driver, which the demo's collector child does not use, and pip),
plus the ones that are in a bundle without being a requirement (PyInstaller, whose bootloader
every frozen app runs). The Python interpreter's own license comes first.

A distribution's texts are the license files of its ``.dist-info`` (``License-File`` /
``licenses/``, or ``LICENSE*``, ``COPYING*``, ``NOTICE*`` files it installs). This project's own
distributions use the repository's ``LICENSE``. A distribution that ships none (PySide6 and
shiboken6 wheels) gets the text of the license its metadata names, from
``packaging/licenses/SPDX-ID.txt``, when that file exists; otherwise it is reported as missing,
and ``write_notices(strict=True)`` (the CLI's default) fails rather than ship a bundle without it.
"""

from __future__ import annotations

import argparse
import importlib.metadata as metadata
import json
import re
import sys
import sysconfig
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

__all__ = [
    "DEMO_EXCLUDED_MODULES",
    "DEMO_EXTRA_DISTRIBUTIONS",
    "DEMO_ROOTS",
    "DistributionLicense",
    "MissingLicenseText",
    "collect",
    "foreign_modules",
    "main",
    "render",
    "write_notices",
]

ROOT: Final = Path(__file__).resolve().parent.parent
SPDX_TEXTS: Final = Path(__file__).resolve().parent / "licenses"

#: What the demo's bundle is made from (see packaging/demo_app.spec).
DEMO_ROOTS: Final = ("desktop-telemetry-demo",)
#: Top-level modules the spec excludes from the bundle (its ``EXCLUDES``, third-party part):
#: the PostgreSQL driver, and pip (a requirement of sqlite-utils, for its plugin installer).
DEMO_EXCLUDED_MODULES: Final = (
    "psycopg", "psycopg_binary", "psycopg_c", "psycopg_pool", "pip", "setuptools",
    "pkg_resources", "_distutils_hack",
)  # fmt: skip
#: Distributions in every PyInstaller bundle without being a requirement of the app.
DEMO_EXTRA_DISTRIBUTIONS: Final = ("pyinstaller",)

#: This repository's distributions: their license is the repository's LICENSE file.
OWN_DISTRIBUTIONS: Final = frozenset({"desktop-telemetry", "desktop-telemetry-demo"})

#: Files a distribution installs that hold license texts or notices.
_LICENSE_FILE = re.compile(r"(^|/)(LICEN[CS]E|COPYING|NOTICE|COPYRIGHT)([.-][^/]*)?$", re.I)
#: SPDX licenses whose text must come with another one (the LGPL supplements the GPL).
_ALSO_NEEDS: Final = {"LGPL-3.0-only": "GPL-3.0-only", "LGPL-3.0-or-later": "GPL-3.0-only"}


class MissingLicenseText(RuntimeError):
    """Some distribution to ship has no license text that could be found."""


@dataclass(frozen=True)
class DistributionLicense:
    """One shipped distribution: its name, version, declared license and license texts."""

    name: str
    version: str
    license: str
    texts: dict[str, str] = field(default_factory=dict)  # where each text came from -> text


def _declared_license(dist: metadata.Distribution) -> str:
    meta: Any = dist.metadata  # an email.message.Message: .get() answers None when absent
    expression = meta.get("License-Expression")
    if expression:
        return str(expression)
    classifiers = [
        c.split(" :: ")[-1] for c in (meta.get_all("Classifier") or []) if c.startswith("License")
    ]
    text = (meta.get("License") or "").strip()
    if text and len(text) <= 100 and "\n" not in text:
        return " / ".join([text, *classifiers]) if classifiers else text
    return " / ".join(classifiers) or "(not declared)"


def _spdx_fallback(declared: str) -> dict[str, str]:
    """Texts from packaging/licenses/ for the first SPDX id of ``declared`` that has one."""
    for spdx in re.findall(r"[A-Za-z0-9.+-]+", declared):
        path = SPDX_TEXTS / f"{spdx}.txt"
        if path.is_file():
            names = [spdx, *([_ALSO_NEEDS[spdx]] if spdx in _ALSO_NEEDS else [])]
            return {
                f"packaging/licenses/{n}.txt (declared: {declared})": (
                    SPDX_TEXTS / f"{n}.txt"
                ).read_text(encoding="utf-8")
                for n in names
            }
    return {}


def _license_texts(dist: metadata.Distribution, name: str, declared: str) -> dict[str, str]:
    if name in OWN_DISTRIBUTIONS:
        return {"LICENSE": (ROOT / "LICENSE").read_text(encoding="utf-8")}
    texts: dict[str, str] = {}
    for file in dist.files or ():
        relative = str(file)
        if not _LICENSE_FILE.search(relative):
            continue
        if ".dist-info/" not in relative and relative.count("/") > 1:
            continue  # a vendored package's own license deep inside: its dist-info covers it
        path = Path(str(dist.locate_file(file)))
        if path.is_file():
            texts[relative] = path.read_text(encoding="utf-8", errors="replace")
    return texts or _spdx_fallback(declared)


def _requirements(
    dist: metadata.Distribution, extras: Iterable[str], environment: dict[str, str]
) -> list[Requirement]:
    wanted: list[Requirement] = []
    for line in dist.requires or ():
        requirement = Requirement(line)
        marker = requirement.marker
        if marker is None:
            wanted.append(requirement)
            continue
        for extra in ["", *extras]:
            if marker.evaluate({**environment, "extra": extra}):
                wanted.append(requirement)
                break
    return wanted


def _top_level_modules(dist: metadata.Distribution) -> set[str]:
    top = dist.read_text("top_level.txt")
    if top:
        return {line.strip() for line in top.splitlines() if line.strip()}
    modules: set[str] = set()
    for file in dist.files or ():
        first = str(file).split("/")[0]
        if first.endswith((".dist-info", ".data", ".pth")) or first in ("..", "__pycache__"):
            continue
        modules.add(first.removesuffix(".py").split(".")[0])
    return modules


def collect(
    roots: Sequence[str] = DEMO_ROOTS,
    *,
    excluded_modules: Sequence[str] = DEMO_EXCLUDED_MODULES,
    extra_distributions: Sequence[str] = DEMO_EXTRA_DISTRIBUTIONS,
) -> list[DistributionLicense]:
    """The installed distributions a bundle of ``roots`` ships, sorted by name, with texts.

    Raises ``importlib.metadata.PackageNotFoundError`` when a root, a requirement of the
    closure or an extra distribution is not installed here (the bundle could not have it).
    """
    found = _closure(roots, excluded_modules, extra_distributions)
    shipped: list[DistributionLicense] = []
    for name, dist in sorted(found.items()):
        declared = _declared_license(dist)
        texts = _license_texts(dist, name, declared)
        shipped.append(DistributionLicense(dist.metadata["Name"], dist.version, declared, texts))
    return shipped


def foreign_modules(
    roots: Sequence[str] = DEMO_ROOTS,
    *,
    excluded_modules: Sequence[str] = DEMO_EXCLUDED_MODULES,
    extra_distributions: Sequence[str] = DEMO_EXTRA_DISTRIBUTIONS,
) -> set[str]:
    """Top-level modules of the installed distributions that are *not* in the closure of
    ``roots``: development tools sharing the environment (test runners, docs builders, a
    browser driver and what they pull in). A module of the app that imports one of them only
    if present (anyio tries trio, uvicorn tries yaml) would otherwise freeze it into the bundle,
    and what a bundle holds would depend on the build machine's environment."""
    shipped = _closure(roots, excluded_modules, extra_distributions)
    kept = {m for dist in shipped.values() for m in _top_level_modules(dist)}
    foreign: set[str] = set()
    for dist in metadata.distributions():
        name = canonicalize_name(dist.metadata["Name"] or "")
        if name and name not in shipped:
            foreign |= _top_level_modules(dist)
    return {m for m in foreign - kept if m.isidentifier()}


def _closure(
    roots: Sequence[str],
    excluded_modules: Sequence[str],
    extra_distributions: Sequence[str],
) -> dict[str, metadata.Distribution]:
    """The installed distributions of the requirement closure of ``roots`` (with their extras,
    markers evaluated here), minus those whose every module is excluded, plus the extras."""
    environment = {key: str(value) for key, value in default_environment().items()}
    excluded = set(excluded_modules)
    found: dict[str, metadata.Distribution] = {}
    pending: list[tuple[str, frozenset[str]]] = [(r, frozenset()) for r in roots]
    seen: set[tuple[str, frozenset[str]]] = set()
    while pending:
        name, extras = pending.pop()
        key = (canonicalize_name(name), extras)
        if key in seen:
            continue
        seen.add(key)
        dist = metadata.distribution(name)
        modules = _top_level_modules(dist)
        if modules and modules <= excluded:
            continue  # the spec leaves every module of it out of the bundle
        found[canonicalize_name(name)] = dist
        for requirement in _requirements(dist, extras, environment):
            pending.append((requirement.name, frozenset(requirement.extras)))
    for name in extra_distributions:
        found[canonicalize_name(name)] = metadata.distribution(name)
    return found


def _python_license() -> str:
    path = Path(sysconfig.get_paths()["stdlib"]) / "LICENSE.txt"
    if path.is_file():
        return path.read_text(encoding="utf-8", errors="replace")
    raise MissingLicenseText(f"the Python interpreter's license is not at {path}")


def render(shipped: Sequence[DistributionLicense], *, strict: bool = True) -> str:
    """One text: a table of contents, then the interpreter's and each distribution's texts.

    With ``strict``, a distribution without any text raises :class:`MissingLicenseText`.
    """
    missing = [d.name for d in shipped if not d.texts]
    if strict and missing:
        raise MissingLicenseText(
            "no license text found for: " + ", ".join(missing) + " (add packaging/licenses/"
            "SPDX-ID.txt for the license their metadata declares)"
        )
    rule = "=" * 78
    python = f"Python {sys.version.split()[0]}"
    lines = [
        "Third-party software in this application, and the licenses it is distributed under.",
        "",
        f"  {python}: the Python Software Foundation License (PSF-2.0)",
        *(f"  {d.name} {d.version}: {d.license}" for d in shipped),
        "",
    ]
    sections = [(python, "PSF-2.0", {"Python LICENSE.txt": _python_license()})]
    sections += [(f"{d.name} {d.version}", d.license, d.texts) for d in shipped]
    for title, declared, texts in sections:
        lines += [rule, f"{title} ({declared})", rule, ""]
        for source, text in texts.items():
            lines += [f"--- {source}", "", text.rstrip(), ""]
        if not texts:
            lines += ["(no license text found)", ""]
    return "\n".join(lines) + "\n"


def write_notices(
    path: Path,
    roots: Sequence[str] = DEMO_ROOTS,
    *,
    excluded_modules: Sequence[str] = DEMO_EXCLUDED_MODULES,
    extra_distributions: Sequence[str] = DEMO_EXTRA_DISTRIBUTIONS,
    strict: bool = True,
) -> list[DistributionLicense]:
    """Write :func:`render` of :func:`collect` to ``path``; return what was collected."""
    shipped = collect(
        roots, excluded_modules=excluded_modules, extra_distributions=extra_distributions
    )
    text = render(shipped, strict=strict)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return shipped


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-o", "--output", type=Path, help="the text file to write")
    parser.add_argument("--root", action="append", help="a distribution the bundle is made from")
    parser.add_argument(
        "--exclude-module", action="append", help="a top-level module the spec excludes"
    )
    parser.add_argument("--include", action="append", help="a distribution to add as is")
    parser.add_argument("--json", action="store_true", help="print what would be collected")
    parser.add_argument(
        "--allow-missing", action="store_true", help="write even if a text is missing"
    )
    args = parser.parse_args(argv)
    roots = tuple(args.root or DEMO_ROOTS)
    excluded = tuple(args.exclude_module or DEMO_EXCLUDED_MODULES)
    extra = tuple(args.include or DEMO_EXTRA_DISTRIBUTIONS)
    shipped = collect(roots, excluded_modules=excluded, extra_distributions=extra)
    if args.json:
        summary = [
            {"name": d.name, "version": d.version, "license": d.license, "texts": list(d.texts)}
            for d in shipped
        ]
        print(json.dumps(summary, indent=2))
    if args.output is not None:
        try:
            args.output.parent.mkdir(parents=True, exist_ok=True)
            args.output.write_text(render(shipped, strict=not args.allow_missing), "utf-8")
        except MissingLicenseText as exc:
            print(f"third_party_licenses: {exc}", file=sys.stderr)
            return 1
        print(f"{args.output}: {len(shipped)} distributions and Python")
    elif not args.json:
        parser.error("give -o FILE or --json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
