"""User-supplied regular expressions: RE2, anchored, bounded, refusals explained."""

from __future__ import annotations

import pytest
import re2
from hypothesis import given
from hypothesis import strategies as st

from apps.core import regex
from apps.core.regex import RegexError, regex_compile, regex_fullmatch

ADVERSARIAL = ["(a+)+$", "(a|a)+$", "(a|aa)+$", "(.*a){20}$", "((a*)*)*b"]


@pytest.mark.parametrize("pattern", ADVERSARIAL)
def test_regex_compile__catastrophic_backtracking_pattern__re2_object(pattern):
    compiled = regex_compile(pattern)
    assert isinstance(compiled, re2._Regexp)
    assert compiled.pattern == f"^(?:{pattern})$"


@pytest.mark.parametrize("pattern", ADVERSARIAL)
def test_regex_fullmatch__adversarial_pattern_on_long_text__correct_answer(pattern):
    # With a backtracking engine each of these takes time exponential in the length of the
    # text; 100,000 characters would never finish. RE2 answers, and answers right.
    text = "a" * 100_000 + "!"
    assert regex_fullmatch(pattern, text) is False
    assert regex_fullmatch("(a+)+", "a" * 100_000) is True


@pytest.mark.parametrize(
    ("pattern", "text", "expected"),
    [
        ("a|b", "ab", False),  # anchored around the alternation, not just its ends
        ("a|b", "b", True),
        ("chat", "chat-1", False),
        ("chat-.*", "chat-1", True),
        (".*", "line\nbreak", False),  # "." excludes "\n", as in Alertmanager
        ("(?s).*", "line\nbreak", True),
        (r"\d+", "٣", False),  # \d is ASCII, as in Go
        (r"\pN+", "٣", True),
        ("(?i)café", "CAFÉ", True),
        ("", "", True),
    ],
)
def test_regex_fullmatch__prometheus_semantics__expected(pattern, text, expected):
    assert regex_fullmatch(pattern, text) is expected


@pytest.mark.parametrize(
    ("pattern", "fragment"),
    [
        ("(?<=x)a", "lookbehind assertions are not supported"),
        ("(?<!x)a", "negative lookbehind assertions are not supported"),
        ("(?=x)x", "lookahead assertions are not supported"),
        ("(?!x).", "negative lookahead assertions are not supported"),
        (r"(a)\1", "backreferences are not supported"),
        ("a*+", "possessive quantifiers are not supported"),
        ("a++", "possessive quantifiers are not supported"),
        ("a{2}+", "possessive quantifiers are not supported"),
        ("(?>a)", "atomic groups are not supported"),
        ("(?P<n>a)(?P=n)", "named backreferences and recursion are not supported"),
        (r"a\Z", r"invalid escape sequence: \Z"),
        (r"\C", r"\C (match one byte) is not supported"),
        ("a{1001}", "invalid repetition size"),
        ("a)|(b", "unexpected )"),  # would escape the anchoring group if only wrapped
        ("(", "missing )"),
        ("\ud800", "not valid UTF-8"),
    ],
)
def test_regex_compile__construct_re2_refuses__error_names_it(pattern, fragment):
    with pytest.raises(RegexError) as caught:
        regex_compile(pattern)
    assert fragment in str(caught.value)


def test_regex_compile__literal_backslash_c_inside_quote__accepted():
    assert regex_fullmatch(r"\Q\C\E", "\\C") is True


def test_regex_compile__pattern_longer_than_limit__refused():
    with pytest.raises(RegexError, match="longer than 4096 characters"):
        regex_compile("a" * (regex.MAX_PATTERN_LENGTH + 1))


def test_regex_compile__program_too_large__refused():
    # Short to write, large once compiled: \pL alone is about 1,200 instructions.
    with pytest.raises(RegexError, match=r"pattern too large|instructions"):
        regex_compile(r"[\pL\pN]{100}")
    with pytest.raises(RegexError, match=r"more than 10000; simplify it"):
        regex_compile(r"\pL{10}")


def test_regex_compile__same_pattern_twice__cached_object_and_bounded_cache():
    assert regex_compile("x+y") is regex_compile("x+y")
    assert regex._cached.cache_info().maxsize == regex.CACHE_SIZE


def test_regex_compile__refused_pattern_twice__same_error_each_time():
    for _ in range(2):
        with pytest.raises(RegexError, match="lookbehind"):
            regex_compile("(?<=y)z")


def test_regex_fullmatch__lone_surrogate_in_text__answers_without_error():
    # JSON allows "\udc80" in a label value; it reaches RE2 as bytes that are not UTF-8,
    # which "." matches, as in Go.
    assert regex_fullmatch("x.*", "x\udc80") is True
    assert regex_fullmatch("x", "x\udc80") is False


@given(st.text(max_size=40), st.text(max_size=40))
def test_regex_fullmatch__escaped_literal__matches_only_itself(literal, other):
    pattern = re2.escape(literal)
    assert regex_fullmatch(pattern, literal) is True
    assert regex_fullmatch(pattern, other) is (other == literal)
