from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from apps.core.regex import RegexError, regex_compile
from apps.inventory.label_matchers import (
    Matcher,
    MatcherError,
    parse_matchers,
    quote_string,
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
        (r'{a="\\d+"}', r"\d+"),
        (r"{a=`raw\n\d`}", r"raw\n\d"),
        ("{a=`two\nlines`}", "two\nlines"),
        (r'{a="\a\b\f\r\v"}', "\a\b\f\r\v"),
        (r'{a="caf\u00e9"}', "café"),
        (r'{a="\U0001F600"}', "\U0001f600"),
        (r'{a="\x41\101\060"}', "AA0"),
        (r'{a="\xc3\xa9"}', "é"),  # bytes, UTF-8 once put together
        ("""{a='say "hi"'}""", 'say "hi"'),
        (r"{a='say \'hi\''}", "say 'hi'"),
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
        ('{a="x\ny"}', "unterminated string starting at position 4 (write a newline"),
        (r'{a="\d+"}', r"unknown escape sequence \d at position 5"),
        (r'{a="it\'s"}', r"unknown escape sequence \' at position 7"),
        (r"{a='say \"'}", r"unknown escape sequence \" at position 9"),
        (r'{a="\q"}', r"unknown escape sequence \q"),
        (r'{a="\1"}', "an octal escape takes three digits"),
        (r'{a="\400"}', r"octal escape \400 above \377"),
        (r'{a="\x4"}', r"\x takes 2 hexadecimal digits"),
        (r'{a="\u00g9"}', r"\u takes 4 hexadecimal digits"),
        (r'{a="\ud800"}', "not a valid Unicode code point"),
        (r'{a="\U00110000"}', "not a valid Unicode code point"),
        (r'{a="\xff"}', "not valid UTF-8 once its"),
        ('{a="\ud800"}', "not valid UTF-8 (lone surrogate)"),
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


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        (r'{a=~"(?<=x)y"}', "lookbehind assertions are not supported"),
        (r'{a=~"(?<!x)y"}', "negative lookbehind assertions are not supported"),
        (r'{a=~"x(?=y)"}', "lookahead assertions are not supported"),
        (r'{a=~"(x)\\1"}', "backreferences are not supported"),
        (r"{a=~`(x)\1`}", "backreferences are not supported"),
        (r'{a!~"x*+"}', "possessive quantifiers are not supported"),
        (r'{a=~"(?>x)"}', "atomic groups are not supported"),
        (r'{a=~"x\\Z"}', r"invalid escape sequence: \Z"),
        (r'{a=~"\\C"}', r"\C (match one byte) is not supported"),
    ],
)
def test_parse__regex_construct_prometheus_refuses__invalid_regular_expression(text, fragment):
    with pytest.raises(MatcherError, match=re.escape(fragment)) as caught:
        parse_matchers(text)
    assert "invalid regular expression for 'a'" in str(caught.value)


def test_parse__regex_not_checked_when_asked__structure_only():
    assert parse_matchers('{a=~"(?<=x)y"}', check_regex=False) == [Matcher("a", "=~", "(?<=x)y")]


def test_matcher_matches__nested_quantifier_on_long_value__correct_answer():
    # Python's re needs time exponential in the value's length here: 2**40 steps.
    matcher = parse_matchers('{alertname=~"(a+)+$"}')[0]
    assert matcher.matches("a" * 40 + "!") is False
    assert matcher.matches("a" * 100_000) is True
    assert Matcher("alertname", "!~", "(a+)+$").matches("a" * 100_000 + "!") is True


@pytest.mark.parametrize("op", ["=~", "!~"])
def test_matcher_matches__stored_pattern_re2_refuses__matches_nothing(op):
    # Saved before patterns were checked with RE2: neither operator lets it match, so the
    # silence or inhibition it belongs to mutes nothing.
    matcher = Matcher("a", op, "(?<=x)y")
    assert matcher.matches("y") is False
    assert matcher.matches("xy") is False


label_names = st.from_regex(r"[a-zA-Z_][a-zA-Z0-9_]{0,15}", fullmatch=True)
# Any text, controls and quotes included (Hypothesis leaves out lone surrogates by default).
any_values = st.text(max_size=30)
plain_matchers = st.builds(Matcher, label_names, st.sampled_from(["=", "!="]), any_values)
regex_matchers = st.builds(
    Matcher,
    label_names,
    st.sampled_from(["=~", "!~"]),
    st.from_regex(r"[a-z0-9.*+?|()\[\]\\-]{0,12}", fullmatch=True).filter(lambda v: _compiles(v)),
)


def _compiles(pattern: str) -> bool:
    try:
        regex_compile(pattern)
    except RegexError:
        return False
    return True


@given(st.lists(st.one_of(plain_matchers, regex_matchers), max_size=6))
def test_render_then_parse__any_matchers__round_trip(matchers):
    rendered = render_selector(matchers)
    assert parse_matchers(rendered) == matchers
    assert render_selector(parse_matchers(rendered)) == rendered


@given(any_values)
def test_quote_string__any_text__reads_back_as_itself_on_one_line(value):
    quoted = quote_string(value)
    assert "\n" not in quoted
    assert parse_matchers("a=" + quoted) == [Matcher("a", "=", value)]


def _single_quoted(value: str) -> str:
    escaped = ("\\'" if ch == "'" else '"' if ch == '"' else quote_string(ch)[1:-1] for ch in value)
    return "'" + "".join(escaped) + "'"


def _go_escaped(value: str) -> str:
    """Every character as a \\U escape: a spelling that shares nothing with quote_string."""
    return '"' + "".join(f"\\U{ord(ch):08x}" for ch in value) + '"'


def _utf8_bytes_escaped(value: str) -> str:
    """Every UTF-8 byte as an octal or \\x escape, alternately."""
    escapes = (f"\\{b:03o}" if i % 2 else f"\\x{b:02x}" for i, b in enumerate(value.encode()))
    return '"' + "".join(escapes) + '"'


@given(any_values, st.sampled_from(["=", "!=", "=~", "!~"]))
def test_parse__each_way_of_writing_a_value__same_matcher_and_one_canonical_form(value, op):
    if op in ("=~", "!~") and not _compiles(value):
        op = {"=~": "=", "!~": "!="}[op]
    spellings = [quote_string(value), _single_quoted(value), _go_escaped(value)]
    spellings.append(_utf8_bytes_escaped(value))
    if "`" not in value:
        spellings.append(f"`{value}`")
    parsed = {tuple(parse_matchers(f"{{a{op}{spelling}}}")) for spelling in spellings}
    assert parsed == {(Matcher("a", op, value),)}
    assert render_selector(list(parsed.pop())) == "{a" + op + quote_string(value) + "}"
