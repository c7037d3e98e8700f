from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from apps.inventory.label_matchers import (
    Matcher,
    MatcherError,
    parse_matchers,
    render_selector,
    validate_selector,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{a="b"}', [Matcher("a", "=", "b")]),
        ('a="b"', [Matcher("a", "=", "b")]),
        ("  { a = 'b' , c != `d` }  ", [Matcher("a", "=", "b"), Matcher("c", "!=", "d")]),
        ('{a=~"x.*",b!~"y|z"}', [Matcher("a", "=~", "x.*"), Matcher("b", "!~", "y|z")]),
        ('{a="b",}', [Matcher("a", "=", "b")]),
        ('{__name__="up", _x1="2"}', [Matcher("__name__", "=", "up"), Matcher("_x1", "=", "2")]),
        ("{}", []),
        ("", []),
    ],
)
def test_parse__operators_quoting_and_whitespace__matchers(text, expected):
    assert parse_matchers(text) == expected


@pytest.mark.parametrize(
    ("text", "value"),
    [
        (r'{a="q\"uote"}', 'q"uote'),
        (r"{a='it\'s'}", "it's"),
        (r'{a="back\\slash"}', "back\\slash"),
        (r'{a="line\nbreak\ttab"}', "line\nbreak\ttab"),
        (r'{a="\d+"}', r"\d+"),
        (r"{a=`raw\n\d`}", r"raw\n\d"),
        ('{a="comma, and } brace"}', "comma, and } brace"),
        ('{a="unicode ✓"}', "unicode ✓"),
    ],
)
def test_parse__escapes_and_raw_strings__decoded_value(text, value):
    assert parse_matchers(text) == [Matcher("a", "=", value)]


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ('{a="b"', "missing closing '}'"),
        ('{a="b}', "unterminated string starting at position 4"),
        ('{a="b\\}', "unterminated string starting at position 4"),
        ('  a="b" ,  c=d', "expected a quoted value at position 14"),
        ('{a=b"}', "expected a quoted value at position 4"),
        ('{a="b" c="d"}', "expected ',' at position 8"),
        ('{9a="b"}', "expected a label name at position 2"),
        ('{a~"b"}', "expected one of = != =~ !~ after 'a'"),
        ("{a=}", "missing value for 'a'"),
        ('{a=~"("}', "invalid regular expression for 'a'"),
        ('{a!~"[z-a]"}', "invalid regular expression for 'a'"),
        ('{,a="b"}', "expected a label name"),
    ],
)
def test_parse__malformed__error_says_where_and_why(text, fragment):
    with pytest.raises(MatcherError, match=re.escape(fragment)):
        parse_matchers(text)


@pytest.mark.parametrize(
    ("matcher", "candidate", "expected"),
    [
        (Matcher("a", "=", "x"), "x", True),
        (Matcher("a", "=", "x"), "xy", False),
        (Matcher("a", "!=", "x"), "y", True),
        (Matcher("a", "!=", "x"), "x", False),
        (Matcher("a", "=~", "x|y"), "y", True),
        (Matcher("a", "=~", "x"), "xx", False),  # anchored at both ends, as in Prometheus
        (Matcher("a", "!~", "x.*"), "xyz", False),
        (Matcher("a", "!~", "x.*"), "yx", True),
    ],
)
def test_matcher_matches__each_operator__prometheus_semantics(matcher, candidate, expected):
    assert matcher.matches(candidate) is expected


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("{}", "at least one label matcher is required"),
        ('{a=""}', "must not match the empty string"),
        ('{a=~".*"}', "must not match the empty string"),
        ('{a!="x", b=~"y?"}', "must not match the empty string"),
        ('{a!~".+"}', "must not match the empty string"),
        ('{a="x", a="y"}', "label 'a' has two equality matchers"),
    ],
)
def test_validate__selects_everything_or_contradicts__error(text, fragment):
    with pytest.raises(MatcherError, match=re.escape(fragment)):
        validate_selector(text)


@pytest.mark.parametrize(
    "text", ['{a="x"}', '{a=~".+"}', '{a!="", b=""}', '{a="x", a!="y"}', '{a!~""}']
)
def test_validate__at_least_one_non_empty_matcher__accepted(text):
    assert validate_selector(text)


def test_render__quotes_and_escapes__canonical_form():
    matchers = [Matcher("a", "=", 'say "hi"\\now\n'), Matcher("b", "!~", "x|y")]
    assert render_selector(matchers) == r'{a="say \"hi\"\\now\n", b!~"x|y"}'


label_names = st.from_regex(r"[a-zA-Z_][a-zA-Z0-9_]{0,15}", fullmatch=True)
plain_matchers = st.builds(Matcher, label_names, st.sampled_from(["=", "!="]), st.text(max_size=30))
regex_matchers = st.builds(
    Matcher,
    label_names,
    st.sampled_from(["=~", "!~"]),
    st.from_regex(r"[a-z0-9.*+?|()\[\]-]{0,12}", fullmatch=True).filter(lambda v: _compiles(v)),
)


def _compiles(pattern: str) -> bool:
    try:
        re.compile(pattern)
    except re.error:
        return False
    return True


@given(st.lists(st.one_of(plain_matchers, regex_matchers), max_size=6))
def test_render_then_parse__any_matchers__round_trip(matchers):
    rendered = render_selector(matchers)
    assert parse_matchers(rendered) == matchers
    assert render_selector(parse_matchers(rendered)) == rendered
