"""Ids read from URLs and query strings by views that do not go through a filter or a
serializer field."""

from __future__ import annotations

# Larger than any bigint id: such a value names nothing (and must not reach the database).
_MAX_ID_DIGITS = 18


def parse_id(value: str | None) -> int | None:
    """The id written in ``value`` (ASCII digits only), or None when it is not one.

    ``str.isdigit()`` alone is not enough: it accepts "²" and other digits ``int()``
    refuses, and Arabic-Indic digits ``int()`` reads as another number.
    """
    if value is None or not 0 < len(value) <= _MAX_ID_DIGITS:
        return None
    if not (value.isascii() and value.isdigit()):
        return None
    return int(value)
