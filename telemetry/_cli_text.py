"""The ``telemetry`` command's words and columns: the consent summary, times, and plain-text
tables whose columns line up and whose long values end in ``…``, measured in terminal cells
(a wide character takes two) and cut to the terminal's width."""

from __future__ import annotations

import shutil
import unicodedata
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Final

#: The width used when the output is not a terminal and ``COLUMNS`` is not set.
DEFAULT_WIDTH: Final = 120
#: Never narrower than this, however small the terminal says it is.
MIN_WIDTH: Final = 40
ELLIPSIS: Final = "…"


def terminal_width() -> int:
    """``COLUMNS``, else the terminal's width, else :data:`DEFAULT_WIDTH` (piped output)."""
    return max(MIN_WIDTH, shutil.get_terminal_size((DEFAULT_WIDTH, 24)).columns)


def _cells(char: str) -> int:
    if unicodedata.combining(char) or char in "\u200b\u200c\u200d":
        return 0
    return 2 if unicodedata.east_asian_width(char) in ("W", "F") else 1


def cells(text: str) -> int:
    """How many terminal cells ``text`` takes."""
    return sum(_cells(char) for char in text)


def cut(text: str, width: int) -> str:
    """``text`` if it fits in ``width`` cells, else its start and ``…`` within ``width``."""
    text = " ".join(text.split("\n"))
    if cells(text) <= width:
        return text
    if width <= 0:
        return ""
    kept: list[str] = []
    used = 0
    for char in text:
        size = _cells(char)
        if used + size > width - 1:
            break
        kept.append(char)
        used += size
    return "".join(kept) + ELLIPSIS


def printable(text: str) -> str:
    """``text`` on one line (runs of white space become one space) with every other character
    that is not printable replaced by ``�``: a text that came from
    elsewhere cannot move the cursor or recolour the terminal."""
    return "".join(
        c if c.isprintable() else "\N{REPLACEMENT CHARACTER}" for c in " ".join(text.split())
    )


def pad(text: str, width: int, *, right: bool = False) -> str:
    """``text`` cut to ``width`` cells and padded with spaces to exactly ``width``."""
    text = cut(text, width)
    fill = " " * (width - cells(text))
    return fill + text if right else text + fill


def table(
    header: Sequence[str],
    rows: Sequence[Sequence[str]],
    *,
    widths: Sequence[int],
    right: Sequence[bool] = (),
) -> list[str]:
    """Lines of a table, two spaces between columns; the last column is cut, not padded
    (unless right-aligned)."""
    lines = []
    for row in [header, *rows]:
        cells_ = []
        for i, value in enumerate(row):
            aligned = i < len(right) and right[i]
            last = i == len(row) - 1
            cells_.append(
                cut(value, widths[i])
                if last and not aligned
                else pad(value, widths[i], right=aligned)
            )
        lines.append("  ".join(cells_).rstrip())
    return lines


def fit_widths(natural: Sequence[int], total: int, *, flexible: int = -1) -> list[int]:
    """Column widths: each its natural width, except column ``flexible`` (default: the last),
    which gets what is left of ``total`` (at least 10 cells)."""
    widths = list(natural)
    index = flexible % len(widths)
    fixed = sum(w for i, w in enumerate(widths) if i != index) + 2 * (len(widths) - 1)
    widths[index] = max(10, min(widths[index], total - fixed))
    return widths


def utc(ms: int | None, *, suffix: bool = True) -> str:
    """``2026-01-31 12:00:00 UTC`` for a time in ms since the epoch (``never`` for none)."""
    if not ms:
        return "never"
    text = datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S")
    return f"{text} UTC" if suffix else text


def plural(count: int, word: str) -> str:
    """``1 event``, ``2 events``, ``0 events``."""
    return f"{count:,} {word}" if count == 1 else f"{count:,} {word}s"


_POLICY_WORDS: Final = {"opt_out": "opt-out policy", "opt_in": "opt-in policy"}


def consent_words(
    state: str,
    policy: str | None,
    *,
    notice_shown: bool,
    notice_answered: bool,
    blocked_by: str | None = None,
) -> str:
    """The user's consent as they gave it: ``on (notice answered, opt-out policy)``,
    ``off (you turned it off)``, ``off (DO_NOT_TRACK is set)``... ``policy`` is ``None`` when
    the app stored none (it recorded nothing yet)."""
    if blocked_by is not None:
        return f"off ({blocked_by} is set)"
    if state == "denied":
        return "off (you turned it off)"
    if state == "granted":
        return "on (you turned it on)"
    if policy is None:
        return "not given (the app has recorded nothing yet, so it stored no policy)"
    policy_words = _POLICY_WORDS.get(policy, f"{policy} policy")
    if policy == "opt_in":
        return f"off until you agree ({policy_words}; you have not answered)"
    if notice_answered:
        return f"on (notice answered, {policy_words})"
    shown = "shown, not answered yet" if notice_shown else "not shown yet"
    return f"on, not sending yet (first-run notice {shown}; {policy_words})"
