"""Anonymising property text: paths, and this user's name, home and host name, replaced.

What is replaced, in this order (see README, "What is collected"):

1. paths become ``<path>`` plus the last segment's extension when it has one of 1 to 6 letters
   or digits (``'/home/alice/My Images/pi.img'`` becomes ``'<path>.img'``): quoted paths
   (single or double quotes, spaces inside), the file of a traceback's ``File "..."`` line
   (relative ones too), ``file://`` URLs (which keep their ``file://``), POSIX absolute paths,
   ``~/...``, Windows drive paths (``C:\\...`` or ``C:/...``) and UNC paths (``\\\\server\\...``);
   an unquoted path ends at whitespace, unless one of the next three words contains a
   separator after a character (``/home/alice/My Images/pi.img``), and trailing punctuation
   is not part of it;
2. the home directory, anywhere, becomes ``<home>``;
3. the user name and the host name (and its first label), when at least 3 characters long and
   not bounded by a letter or digit on either side, become ``<user>`` and ``<host>``, case
   insensitively: ``/tmp/alice-build`` loses ``alice``, ``malice`` keeps it. The user name
   ``root`` is not personal and is kept.
"""

from __future__ import annotations

import functools
import getpass
import os
import platform
import re
from collections.abc import Callable
from typing import Any, Final

ANONYMIZE_FAILED: Final = "[ANONYMIZE PATH FAILED]"
PATH: Final = "<path>"
HOME: Final = "<home>"
USER: Final = "<user>"
HOST: Final = "<host>"
#: Account names that identify nobody; never replaced as words.
_IMPERSONAL_USERS: Final = frozenset({"root"})

# A path starts with one of these (the quoted form needs nothing before it).
_START: Final = r"(?:file://|~[\\/]|[A-Za-z]:[\\/]|\\\\|/)"
# One unquoted path: a run of path characters; a space only when one of the next 3 words holds
# a separator after a character (``My Images/pi.img``, ``Program Files (x86)\\App``).
_WORD: Final = r"[^\s'\"<>|\\/]+"
_SEG: Final = rf"(?:[^\s'\"<>|]| (?=(?:{_WORD} ){{0,2}}{_WORD}[\\/]))"
#: The path pattern (compiled on first use: an app that never meets a path never pays for it).
_PATH_PATTERN: Final = (
    r"(?P<tb>File \")(?P<tbpath>[^\"<\n][^\"\n]*)\""  # traceback line, even a relative file
    rf"|\"(?P<dq>{_START}[^\"\n]*)\"|'(?P<sq>{_START}[^'\n]*)'"  # quoted: spaces inside
    rf"|(?P<url>(?i:file://){_SEG}+)"
    rf"|(?P<win>(?<![\w.\\/~-])[A-Za-z]:[\\/]{_SEG}*)"
    rf"|(?P<unc>(?<![\w.\\/~-])\\\\{_SEG}+)"
    rf"|(?P<home>(?<![\w.\\/~-])~[\\/]{_SEG}*)"
    rf"|(?P<posix>(?<![\w.\\/~:-])/(?=/?[^\s/])(?:{_SEG})+|(?<=:)/(?!/)(?:{_SEG})+)"
)
_EXTENSION_PATTERN: Final = r"[^\\/.]\.([A-Za-z0-9]{1,6})$"
_TRAILING: Final = ".,;:!?)]}"


def _placeholder(path: str) -> str:
    """``<path>`` with the extension of ``path``'s last segment, ``file://`` kept."""
    match = re.search(_EXTENSION_PATTERN, path)
    prefix = "file://" if path[:7].lower() == "file://" else ""
    return f"{prefix}{PATH}.{match.group(1)}" if match else f"{prefix}{PATH}"


def _replace_path(match: re.Match[str]) -> str:
    groups = match.groupdict()
    if groups["tb"] is not None:
        return f'File "{_placeholder(groups["tbpath"])}"'
    if groups["dq"] is not None:
        return f'"{_placeholder(groups["dq"])}"'
    if groups["sq"] is not None:
        return f"'{_placeholder(groups['sq'])}'"
    raw = match.group(0)
    stripped = raw.rstrip(_TRAILING)
    if not stripped:
        stripped = raw
    return _placeholder(stripped) + raw[len(stripped) :]


@functools.cache
def _path_re() -> re.Pattern[str]:
    return re.compile(_PATH_PATTERN)


def _word(name: str) -> str:
    """A pattern for ``name`` not bounded by a letter or digit on either side."""
    return rf"(?<![^\W_]){re.escape(name)}(?![^\W_])"


class Anonymiser:
    """Anonymises text for one identity (user name, home directory, host name)."""

    def __init__(self, *, user: str | None, home: str | None, host: str | None) -> None:
        homes = {h for h in (home, home and home.replace("\\", "/")) if h and len(h) > 2}
        homes = {h for h in homes if "/" in h or "\\" in h}
        names = [n for n in (user,) if n and len(n) >= 3 and n.lower() not in _IMPERSONAL_USERS]
        hosts = {h for h in (host, host and host.split(".")[0]) if h and len(h) >= 3}
        words = sorted({*names, *hosts}, key=len, reverse=True)
        replace: dict[str, str] = {n.lower(): USER for n in names}
        replace.update({h.lower(): HOST for h in hosts if h.lower() not in replace})
        self._homes = sorted(homes, key=len, reverse=True)
        self._replace = replace
        self._words = re.compile("|".join(_word(w) for w in words), re.I) if words else None
        # A home directory always holds a separator: the quick test below need not look for it.
        self._lower_words = tuple(replace)

    def text(self, value: str) -> str:
        """``value`` anonymised; the same object when there is nothing to replace."""
        if "/" not in value and "\\" not in value and "~" not in value:  # the common case
            if not self._lower_words:
                return value
            lower = value.lower()
            for word in self._lower_words:
                if word in lower:
                    break
            else:
                return value
        try:
            return self._slow(value)
        except Exception:  # noqa: BLE001 - never store what could not be anonymised
            return ANONYMIZE_FAILED

    def _slow(self, value: str) -> str:
        out = _path_re().sub(_replace_path, value)
        for home in self._homes:
            out = out.replace(home, HOME)
        if self._words is not None:
            out = self._words.sub(lambda m: self._replace[m.group(0).lower()], out)
        return out

    def values(self, container: dict[str, Any] | list[Any]) -> None:
        """Anonymise, in place, every str inside ``container`` (a fresh copy the caller owns)."""
        items = container.items() if type(container) is dict else enumerate(container)
        text = self.text
        for key, value in items:
            kind = type(value)
            if kind is str:
                new = text(value)
                if new is not value:
                    container[key] = new  # type: ignore[index]  # key matches the container
            elif kind is dict or kind is list:
                self.values(value)


def _safe(call: Callable[[], str]) -> str | None:
    try:
        return call() or None
    except Exception:  # noqa: BLE001 - an unknown identity just replaces less
        return None


@functools.cache
def current() -> Anonymiser:
    """The anonymiser of this process's user (``getpass.getuser()``, ``~``, host name),
    built once on first use."""
    return Anonymiser(
        user=_safe(getpass.getuser),
        home=_safe(lambda: os.path.expanduser("~")),
        host=_safe(platform.node),
    )
