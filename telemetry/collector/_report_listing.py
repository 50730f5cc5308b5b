"""``telemetry collector errors``: the stored error report groups as a table or JSON.

Every text that came from a sender (exception type and message, versions) is printed with its
control characters replaced, so a report cannot move the cursor or recolour the terminal.
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Sequence
from typing import Any, Final, TextIO

from telemetry.collector._reports import ReportGroup

__all__ = ["print_groups"]

#: Characters of the fingerprint shown in the table.
SHORT_FINGERPRINT: Final = 12
#: Longest "type: message" shown in the table.
MAX_ERROR_TEXT: Final = 100


def _printable(text: str) -> str:
    return "".join(c if c.isprintable() else "\N{REPLACEMENT CHARACTER}" for c in text)


def _when(ms: int) -> str:
    moment = datetime.datetime.fromtimestamp(ms / 1000, datetime.UTC)
    return moment.strftime("%Y-%m-%d %H:%M:%SZ")


def _iso(ms: int) -> str:
    moment = datetime.datetime.fromtimestamp(ms / 1000, datetime.UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _error_text(group: ReportGroup) -> str:
    kind = group.exception_type or ""
    value = group.exception_value or ""
    text = f"{kind}: {value}" if kind and value else kind or value or "(no message)"
    text = _printable(" ".join(text.split()))
    return text if len(text) <= MAX_ERROR_TEXT else text[: MAX_ERROR_TEXT - 1] + "…"


def _as_json(group: ReportGroup) -> dict[str, Any]:
    return {
        "project": group.project,
        "fingerprint": group.fingerprint,
        "count": group.count,
        "reports": group.reports,
        "first_seen": _iso(group.first_seen),
        "last_seen": _iso(group.last_seen),
        "releases": list(group.releases),
        "exception_type": group.exception_type,
        "exception_value": group.exception_value,
    }


def print_groups(
    groups: Sequence[ReportGroup], out: TextIO, *, as_json: bool, project: str | None
) -> None:
    """Write ``groups`` (already sorted, the last seen first) to ``out``."""
    if as_json:
        json.dump([_as_json(g) for g in groups], out, ensure_ascii=True, indent=2)
        out.write("\n")
        return
    if not groups:
        where = f" for project {_printable(project)!r}" if project is not None else ""
        out.write(f"No error reports stored{where}.\n")
        return
    header = ("PROJECT", "FINGERPRINT", "COUNT", "REPORTS", "FIRST SEEN", "LAST SEEN", "VERSIONS")
    rows = [
        (
            _printable(g.project),
            g.fingerprint[:SHORT_FINGERPRINT],
            f"{g.count:,}",
            f"{g.reports:,}",
            _when(g.first_seen),
            _when(g.last_seen),
            _printable(", ".join(g.releases)) or "-",
        )
        for g in groups
    ]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    right = {2, 3}

    def line(cells: Sequence[str], error: str) -> str:
        padded = [
            cell.rjust(widths[i]) if i in right else cell.ljust(widths[i])
            for i, cell in enumerate(cells)
        ]
        return "  ".join([*padded, error]).rstrip() + "\n"

    out.write(line(header, "ERROR"))
    for group, row in zip(groups, rows, strict=True):
        out.write(line(row, _error_text(group)))
    total = sum(g.count for g in groups)
    out.write(f"{len(groups):,} group(s), {total:,} occurrence(s).\n")
