"""The code blocks of the README and of ``docs/``, read from the files at run time (no pytest).

A fenced block whose language is ``python``, ``bash``, ``sh``, ``shell`` or ``console`` is run by
``tests/docs/test_code_blocks.py`` unless an HTML comment line right before its opening fence
says otherwise. The comment lines directly above a fence are its markers:

* ``<!-- not-run: REASON -->``: the block is not run; the reason is required.
* ``<!-- run: server -->``: each command of a shell block starts a server; the test waits for its
  ``/healthz``, then stops it (SIGTERM) and expects a clean exit.
* ``<!-- file: NAME -->`` (any language, e.g. ``toml``): before the document's blocks run, the
  block is written to ``NAME`` in the document's working directory.

Other comments (``<!-- test-command -->``) are ignored.
"""

from __future__ import annotations

import re
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["RUN_LANGUAGES", "Block", "documents", "read_blocks"]

REPO = Path(__file__).resolve().parents[2]
RUN_LANGUAGES = frozenset({"python", "py", "bash", "sh", "shell", "console"})

_FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})\s*(?P<lang>[\w+-]*)[^\n]*$")
_MARKER = re.compile(r"^\s*<!--\s*(?P<name>[\w-]+)\s*(?::\s*(?P<value>.*?))?\s*-->\s*$")


@dataclass(frozen=True)
class Block:
    """One fenced code block: where it is, its language, text (dedented) and markers."""

    path: Path
    line: int  # 1-based line of the opening fence
    language: str
    text: str
    markers: dict[str, str] = field(default_factory=dict)

    @property
    def where(self) -> str:
        """``README.md:42``: the file relative to the repository, and the fence's line."""
        return f"{self.path.relative_to(REPO).as_posix()}:{self.line}"

    @property
    def runs(self) -> bool:
        """A block the suite runs: a language it runs, not marked ``not-run``."""
        return self.language in RUN_LANGUAGES and "not-run" not in self.markers


def documents(repo: Path = REPO) -> list[Path]:
    """README.md and every Markdown file under docs/, as they are now on disk."""
    return [repo / "README.md", *sorted((repo / "docs").rglob("*.md"))]


def read_blocks(path: Path) -> list[Block]:
    """Every fenced block of ``path``, in order; an unclosed fence raises ``ValueError``."""
    lines = path.read_text(encoding="utf-8").splitlines()
    blocks: list[Block] = []
    i = 0
    while i < len(lines):
        match = _FENCE.match(lines[i])
        if match is None:
            i += 1
            continue
        indent, fence = match["indent"], match["fence"]
        start = i
        body: list[str] = []
        i += 1
        while i < len(lines) and not (
            lines[i].strip().startswith(fence) and lines[i].strip().strip(fence[0]) == ""
        ):
            line = lines[i]
            body.append(line[len(indent) :] if line.startswith(indent) else line.lstrip())
            i += 1
        if i == len(lines):
            raise ValueError(f"{path}:{start + 1}: unclosed code fence")
        i += 1
        markers: dict[str, str] = {}
        j = start - 1
        while j >= 0 and (marker := _MARKER.match(lines[j])) is not None:
            markers.setdefault(marker["name"], (marker["value"] or "").strip())
            j -= 1
        text = textwrap.dedent("\n".join(body)) + "\n"
        blocks.append(Block(path, start + 1, match["lang"].lower(), text, markers))
    return blocks
