"""Predicates for matchers and line filters, with RE2 regular expressions.

Label regexes (``=~``, ``!~`` in selectors and label filters) match the whole value, as in
Prometheus and Loki; line filter regexes (``|~``, ``!~``) match anywhere in the line. Both use
``apps.core.regex`` (RE2 syntax and limits, linear matching time), where ``.`` does not match a
newline unless the pattern says ``(?s)``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from apps.core.regex import regex_compile

from .ast import LineFilter, Matcher


def _utf8(text: str) -> bytes:
    # A lone surrogate (JSON allows "\udc80") is matched as the bytes it would be.
    return text.encode("utf-8", "surrogatepass")


def line_regex(pattern: str) -> Any:
    """An RE2 object whose ``fullmatch`` says whether ``pattern`` occurs anywhere in a line.

    ``pattern`` is compiled on its own first, so that ``a)|(b`` is refused rather than
    becoming valid once wrapped; raises ``apps.core.regex.RegexError``."""
    regex_compile(pattern)
    return regex_compile(f"(?s:.*)(?:{pattern})(?s:.*)")


def matcher_function(matcher: Matcher) -> Callable[[str], bool]:
    """``value -> bool`` for ``matcher``; a missing label is matched as ``""``."""
    expected = matcher.value
    if matcher.op == "=":
        return lambda value: value == expected
    if matcher.op == "!=":
        return lambda value: value != expected
    compiled = regex_compile(expected)
    if matcher.op == "=~":
        return lambda value: compiled.fullmatch(_utf8(value)) is not None
    return lambda value: compiled.fullmatch(_utf8(value)) is None


def line_filter_function(line_filter: LineFilter) -> Callable[[str], bool]:
    """``line -> bool``: whether the line passes ``line_filter``."""
    needle = line_filter.value
    if line_filter.op == "|=":
        return lambda line: needle in line
    if line_filter.op == "!=":
        return lambda line: needle not in line
    compiled = line_regex(needle)
    if line_filter.op == "|~":
        return lambda line: compiled.fullmatch(_utf8(line)) is not None
    return lambda line: compiled.fullmatch(_utf8(line)) is None
