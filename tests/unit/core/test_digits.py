"""Integers read from text others wrote: "²" and "٣" are digits to ``str.isdigit()``;
``int()`` refuses the first (a 500 wherever it was trusted) and reads the second."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from apps.core.digits import MAX_DIGITS, ascii_int


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0", 0),
        ("8080", 8080),
        ("007", 7),
        ("9" * MAX_DIGITS, int("9" * MAX_DIGITS)),
        ("9" * (MAX_DIGITS + 1), None),
        ("", None),
        ("²", None),
        ("1²", None),
        ("\u0663", None),  # Arabic-Indic three: int() reads it as 3
        ("\uff13", None),  # fullwidth three
        ("-1", None),
        ("+1", None),
        (" 1", None),
        ("1_000", None),
        ("0x1", None),
        ("9" * 5000, None),  # int() refuses more than 4,300 digits
    ],
)
def test_ascii_int__cases(text, expected):
    assert ascii_int(text) == expected


def test_ascii_int__max_digits_bounds_the_length():
    assert ascii_int("65535", max_digits=5) == 65535
    assert ascii_int("065535", max_digits=5) is None


@given(st.text(max_size=30), st.integers(min_value=1, max_value=25))
def test_ascii_int__never_raises_and_reads_only_ascii_digits(text, max_digits):
    value = ascii_int(text, max_digits=max_digits)
    if value is None:
        assert not (0 < len(text) <= max_digits and all("0" <= c <= "9" for c in text))
    else:
        assert all("0" <= c <= "9" for c in text)
        assert 0 < len(text) <= max_digits
        assert value == int(text)
