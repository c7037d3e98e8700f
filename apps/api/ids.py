"""Ids read from URLs and query strings by views that do not go through a filter or a
serializer field."""

from __future__ import annotations

from apps.core.digits import ascii_int


def parse_id(value: str | None) -> int | None:
    """The id written in ``value`` (ASCII digits only, see apps/core/digits.py), or None
    when it is not one."""
    return None if value is None else ascii_int(value)
