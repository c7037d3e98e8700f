"""Integers written by people and other systems: labels, annotations, query parameters,
cursors.

``str.isdigit()`` is not a test for "``int()`` reads this": it accepts superscripts
("²") that ``int()`` refuses with a ValueError, and digits of other scripts (Arabic-Indic
"٣", fullwidth forms) that ``int()`` reads as a number nobody typed on purpose. ``int()``
also refuses more than 4,300 digits. Here only ASCII digits count, and never more than
``max_digits``.
"""

from __future__ import annotations

# Larger than any bigint: such a value names nothing and must not reach a database.
MAX_DIGITS = 18


def ascii_int(text: str, *, max_digits: int = MAX_DIGITS) -> int | None:
    """The non-negative integer ``text`` writes in 1 to ``max_digits`` ASCII digits (no
    sign, no spaces, no underscores), else None."""
    if not 0 < len(text) <= max_digits or not (text.isascii() and text.isdigit()):
        return None
    return int(text)
