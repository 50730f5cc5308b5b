"""Griffe extension for the API reference: reads the reST markup of the project's docstrings.

The docstrings are written for readers of the source (and ``help()``): Sphinx roles such as
``:class:`~telemetry.Client``` and ``::`` before an indented example. Markdown shows roles as
stray text, so this turns each one into inline code (``~`` keeps the last component, as in
Sphinx) and a paragraph's closing ``::`` into ``:``. Cross-references in the guides are
Markdown links checked by ``mkdocs build --strict``.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

_ROLE = re.compile(r":(?:py:)?(?:class|meth|func|data|attr|mod|exc|obj|const):`(~?)([^`]+)`")
_LITERAL_INTRO = re.compile(r"(?<=\S)::$", re.MULTILINE)


def _code(match: re.Match[str]) -> str:
    short, target = match.group(1), match.group(2).strip()
    if short:
        target = target.rsplit(".", 1)[-1]
    return f"`{target}`"


def rewrite(text: str) -> str:
    """The docstring ``text`` with Sphinx roles as inline code and ``::`` intros as ``:``."""
    return _LITERAL_INTRO.sub(":", _ROLE.sub(_code, text))


class SphinxRolesToCode(griffe.Extension):
    """Rewrite every docstring as it is loaded (see :func:`rewrite`)."""

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = rewrite(obj.docstring.value)
