"""Text from outside (file names, drive names, event names) shown exactly as it is.

Qt guesses whether a tooltip or a message box holds rich text (``Qt.mightBeRichText``): a file
named ``<b>x</b>.img`` would show in bold, and ``<img src=x>`` as a broken image, hiding the
real name. :func:`literal` makes such text always rich, with the outside text escaped in it,
so it shows character for character (line breaks kept).
"""

from __future__ import annotations

from html import escape

__all__ = ["literal"]


def literal(text: str) -> str:
    """``text`` as Qt rich text that displays exactly ``text``."""
    return f"<p style='white-space:pre-wrap'>{escape(text)}</p>"
