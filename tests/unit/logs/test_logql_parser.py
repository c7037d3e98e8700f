"""The LogQL subset's parser and printer: pure functions, no database."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from apps.logs.logql import (
    AndFilter,
    Grouping,
    JsonParser,
    LabelFilter,
    LineFilter,
    LogfmtParser,
    LogQLError,
    LogQuery,
    Matcher,
    NumberFilter,
    OrFilter,
    RangeAggregation,
    StringFilter,
    VectorAggregation,
    format_query,
    parse,
)
from apps.logs.logql.lexer import tokenize

ROOT = Path(__file__).resolve().parents[3]
APP = (Matcher("app", "=", "api"),)
MINUTE = 60_000_000_000


def _log(*stages):
    return LogQuery(APP, tuple(stages))


def _string(name, op, value):
    return StringFilter(Matcher(name, op, value))


# --- stream selectors ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "selector"),
    [
        ('{app="api"}', APP),
        ("{ app = `api` }", APP),
        (
            '{a="x", b!="y", c=~"re.*", d!~"z|w"}',
            (
                Matcher("a", "=", "x"),
                Matcher("b", "!=", "y"),
                Matcher("c", "=~", "re.*"),
                Matcher("d", "!~", "z|w"),
            ),
        ),
        ('{__name__="x",_a1="2"}', (Matcher("__name__", "=", "x"), Matcher("_a1", "=", "2"))),
        ('{app=~".+"}', (Matcher("app", "=~", ".+"),)),
        ('{app="", env="prod"}', (Matcher("app", "=", ""), Matcher("env", "=", "prod"))),
        ('# a comment\n{app="api"} # another', APP),
    ],
)
def test_parse__stream_selector__matchers_in_order(text, selector):
    assert parse(text) == LogQuery(selector)


@pytest.mark.parametrize(
    ("literal", "value"),
    [
        (r'"a\"b"', 'a"b'),
        (r'"tab\there"', "tab\there"),
        (r'"back\\slash"', "back\\slash"),
        (r'"\x41\101\u00e9\U0001F600"', "AAé😀"),
        (r'"\a\b\f\n\r\v"', "\a\b\f\n\r\v"),
        (r'"\xc3\xa9"', "é"),  # \x escapes are bytes, decoded as UTF-8
        ('`raw \\d+ "quoted"\nnewline`', 'raw \\d+ "quoted"\nnewline'),
        ('"日本語"', "日本語"),
    ],
)
def test_parse__string_literals__go_escapes_and_raw_strings(literal, value):
    assert parse(f"{{app={literal}}}") == LogQuery((Matcher("app", "=", value),))


# --- pipelines -------------------------------------------------------------------------------


def test_parse__line_filters__chained_in_order():
    query = parse('{app="api"} |= "error" != `timeout` |~ "5[0-9]{2}" !~ "(?i)health"')
    assert query == _log(
        LineFilter("|=", "error"),
        LineFilter("!=", "timeout"),
        LineFilter("|~", "5[0-9]{2}"),
        LineFilter("!~", "(?i)health"),
    )


def test_parse__parsers_and_label_filters__stages_in_order():
    query = parse(
        '{app="api"} | json | level="error" | logfmt | status!="200" |= "x" | path=~"/v1/.*" '
        '| method!~"GET|HEAD"'
    )
    assert query == _log(
        JsonParser(),
        LabelFilter(_string("level", "=", "error")),
        LogfmtParser(),
        LabelFilter(_string("status", "!=", "200")),
        LineFilter("|=", "x"),
        LabelFilter(_string("path", "=~", "/v1/.*")),
        LabelFilter(_string("method", "!~", "GET|HEAD")),
    )


def test_parse__label_filter_before_any_parser__filters_stream_labels():
    assert parse('{app="api"} | pod="p1"') == _log(LabelFilter(_string("pod", "=", "p1")))


def test_parse__json_with_paths__params_kept():
    query = parse('{app="api"} | json code="response.status", first=`items[0]`, k="a[\\"b c\\"]"')
    assert query == _log(
        JsonParser((("code", "response.status"), ("first", "items[0]"), ("k", 'a["b c"]')))
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("status >= 500", NumberFilter("status", ">=", "number", 500.0, "500")),
        ("status > 1.5", NumberFilter("status", ">", "number", 1.5, "1.5")),
        ("status < 2e3", NumberFilter("status", "<", "number", 2000.0, "2e3")),
        ("status <= -3", NumberFilter("status", "<=", "number", -3.0, "-3")),
        ("status == 200", NumberFilter("status", "==", "number", 200.0, "200")),
        ("status = 200", NumberFilter("status", "==", "number", 200.0, "200")),
        ("status != 200", NumberFilter("status", "!=", "number", 200.0, "200")),
        ("took > 250ms", NumberFilter("took", ">", "duration", 250e6, "250ms")),
        ("took > 1h30m", NumberFilter("took", ">", "duration", 5400e9, "1h30m")),
        ("took > 1.5s", NumberFilter("took", ">", "duration", 1.5e9, "1.5s")),
        ("took > 2d", NumberFilter("took", ">", "duration", 172800e9, "2d")),
        ("size > 10KB", NumberFilter("size", ">", "bytes", 10_000.0, "10KB")),
        ("size > 10KiB", NumberFilter("size", ">", "bytes", 10_240.0, "10KiB")),
        ("size > 512B", NumberFilter("size", ">", "bytes", 512.0, "512B")),
    ],
)
def test_parse__numeric_label_filters__kind_value_and_literal(text, expected):
    assert parse('{app="api"} | logfmt | ' + text) == _log(LogfmtParser(), LabelFilter(expected))


def test_parse__label_filter_connectives__and_binds_tighter_than_or():
    a, b, c = _string("a", "=", "1"), _string("b", "=", "2"), _string("c", "=", "3")
    assert parse('{app="api"} | a="1" or b="2" and c="3"').stages == (
        LabelFilter(OrFilter(a, AndFilter(b, c))),
    )
    assert parse('{app="api"} | (a="1" or b="2") and c="3"').stages == (
        LabelFilter(AndFilter(OrFilter(a, b), c)),
    )
    # A comma and a plain space both mean "and", as in Loki.
    for text in ('a="1", b="2"', 'a="1" b="2"', 'a="1" and b="2"'):
        assert parse('{app="api"} | ' + text).stages == (LabelFilter(AndFilter(a, b)),)
    assert parse('{app="api"} | a="1" or b="2" or c="3"').stages == (
        LabelFilter(OrFilter(OrFilter(a, b), c)),
    )


# --- metric queries --------------------------------------------------------------------------


@pytest.mark.parametrize("op", ["count_over_time", "rate", "bytes_over_time", "bytes_rate"])
def test_parse__range_aggregations__op_query_and_range(op):
    assert parse(f'{op}({{app="api"}} |= "x" [5m])') == RangeAggregation(
        op, _log(LineFilter("|=", "x")), 5 * MINUTE
    )


@pytest.mark.parametrize(
    "text",
    [
        'count_over_time({app="api"} |= "x" [5m])',
        'count_over_time({app="api"}[5m] |= "x")',
        'count_over_time(({app="api"} |= "x")[5m])',
        '(count_over_time({app="api"} |= "x"[300s]))',
    ],
)
def test_parse__range_written_in_each_place__same_tree(text):
    assert parse(text) == RangeAggregation(
        "count_over_time", _log(LineFilter("|=", "x")), 5 * MINUTE
    )


@pytest.mark.parametrize(
    ("range_text", "ns"),
    [("1h30m", 90 * MINUTE), ("90s", 90e9), ("1d", 1440 * MINUTE), ("250ms", 250e6)],
)
def test_parse__range_durations__nanoseconds(range_text, ns):
    assert parse(f'rate({{app="api"}}[{range_text}])').range_ns == ns


@pytest.mark.parametrize(
    ("text", "grouping"),
    [
        ('sum(count_over_time({app="api"}[5m]))', None),
        ('sum by (level) (count_over_time({app="api"}[5m]))', Grouping(False, ("level",))),
        ('sum(count_over_time({app="api"}[5m])) by (level)', Grouping(False, ("level",))),
        (
            'sum without (pod, node) (count_over_time({app="api"}[5m]))',
            Grouping(True, ("pod", "node")),
        ),
        (
            'sum(count_over_time({app="api"}[5m])) without (pod,node,)',
            Grouping(True, ("pod", "node")),
        ),
        ('sum by () (count_over_time({app="api"}[5m]))', Grouping(False, ())),
    ],
)
def test_parse__vector_aggregation__grouping_before_or_after(text, grouping):
    inner = RangeAggregation("count_over_time", LogQuery(APP), 5 * MINUTE)
    assert parse(text) == VectorAggregation("sum", inner, grouping)


@pytest.mark.parametrize("op", ["sum", "count", "min", "max", "avg"])
def test_parse__vector_aggregation_ops__nested(op):
    text = f'{op} by (a) (sum by (a, b) (rate({{app="api"}}[1m])))'
    inner = VectorAggregation(
        "sum", RangeAggregation("rate", LogQuery(APP), MINUTE), Grouping(False, ("a", "b"))
    )
    assert parse(text) == VectorAggregation(op, inner, Grouping(False, ("a",)))


def test_parse__parser_name_then_not_equal__parser_and_line_filter():
    assert parse('{app="api"} | json != "x" | logfmt !~ "y"').stages == (
        JsonParser(),
        LineFilter("!=", "x"),
        LogfmtParser(),
        LineFilter("!~", "y"),
    )
    tree = _log(LabelFilter(_string("json", "!=", "x")))
    assert format_query(tree) == '{app="api"} | (json!="x")'
    assert parse(format_query(tree)) == tree


def test_parse__keywords_as_label_names__still_labels():
    # "by", "json" and friends are only keywords where the grammar expects them.
    query = parse('{by="1", json="2"} | json | sum="3" | json = "4"')
    assert query == LogQuery(
        (Matcher("by", "=", "1"), Matcher("json", "=", "2")),
        (
            JsonParser(),
            LabelFilter(_string("sum", "=", "3")),
            LabelFilter(_string("json", "=", "4")),
        ),
    )


# --- printing --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "printed"),
    [
        ('{ app = `a"b` }', '{app="a\\"b"}'),
        ('{app="api"}|="x"!="y"|json|level="e"', '{app="api"} |= "x" != "y" | json | level="e"'),
        ('{app="api"} | logfmt | d>=1m30s, s<5KB', '{app="api"} | logfmt | d >= 1m30s and s < 5KB'),
        ('{app="api"} | a="1" and (b="2" or c="3")', '{app="api"} | a="1" and (b="2" or c="3")'),
        ('{app="api"} | (a="1" or b="2") and c="3"', '{app="api"} | (a="1" or b="2") and c="3"'),
        ('{app="api"} | a="1" or (b="2" or c="3")', '{app="api"} | a="1" or (b="2" or c="3")'),
        (
            'sum(rate({app="api"}[90s])) by (level)',
            'sum by (level) (rate({app="api"} [1m30s]))',
        ),
        ('count_over_time({app="api"}[1d2h])', 'count_over_time({app="api"} [1d2h])'),
        ('{app="\\x01\\t"}', '{app="\\x01\\t"}'),
        ('{app="\\x1b[0m\\x7f"}', '{app="\\x1b[0m\\x7f"}'),  # control characters spelled out
    ],
)
def test_format_query__canonical_text__parses_back_to_same_tree(text, printed):
    tree = parse(text)
    assert format_query(tree) == printed
    assert parse(printed) == tree


# --- errors: each names the place and what was expected --------------------------------------


@pytest.mark.parametrize(
    ("text", "line", "column", "fragment"),
    [
        ("", 1, 1, "empty query"),
        ("   ", 1, 4, "empty query"),
        ("{}", 1, 2, 'unexpected "}", expecting a label name'),
        ("{app}", 1, 5, 'unexpected "}", expecting one of = != =~ !~'),
        ('{app="a"', 1, 9, "unexpected end of input, expecting ',' or '}'"),
        ('{app="a",}', 1, 10, "expecting a label name"),
        ('{app="a" env="b"}', 1, 10, "unexpected identifier env, expecting ',' or '}'"),
        ("{app=a}", 1, 6, "unexpected identifier a, expecting a string"),
        ("{app='a'}", 1, 6, 'unexpected character "\'"'),
        ('{app="a}', 1, 6, "unterminated string"),
        ('{app="a\nb"}', 1, 6, "unterminated string"),
        ("{app=`a}", 1, 6, "unterminated raw string"),
        ('{app="\\d"}', 1, 7, "unknown escape sequence \\d"),
        ('{app="\\400"}', 1, 7, "octal escape \\400 is above \\377"),
        ('{app="\\ud800"}', 1, 7, "not a valid Unicode code point"),
        ('{app="\\xff"}', 1, 6, "not valid UTF-8"),
        ('{app=""}', 1, 1, "at least one regexp or equality matcher"),
        ('{app=~".*", env!="x"}', 1, 1, "empty-compatible value"),
        ('{app=~"(a"}', 1, 7, 'invalid regular expression "(a": missing )'),
        ('{app=~"(?=a)"}', 1, 7, "lookahead assertions are not supported"),
        ('{app="a"} |~ "a)|(b"', 1, 14, "invalid regular expression"),
        ('{app="a"} !~ "\\\\1"', 1, 14, "backreferences are not supported"),
        ('{app="a"} | level=~"[z-a]"', 1, 20, "invalid regular expression"),
        ('{app="a"} |= x', 1, 14, "unexpected identifier x, expecting a string"),
        ('{app="a"} |= "x" or "y"', 1, 18, 'alternatives in a line filter (|= "a" or "b")'),
        ('{app="a"} |', 1, 12, "expecting a parser (json, logfmt) or a label filter"),
        ('{app="a"} | json |', 1, 19, "expecting a parser"),
        ('{app="a"} | line_format "{{.x}}"', 1, 13, "pipeline stage line_format is not supported"),
        ('{app="a"} | regexp "(?P<x>.)"', 1, 13, "pipeline stage regexp is not supported"),
        ('{app="a"} | logfmt --strict', 1, 20, "logfmt takes no parameters"),
        ('{app="a"} | level', 1, 18, "expecting one of = != =~ !~ > >= < <= =="),
        ('{app="a"} | level > "x"', 1, 21, "> compares numbers, durations or sizes, not strings"),
        ('{app="a"} | level =~ 5', 1, 22, "=~ takes a string"),
        ('{app="a"} | level >', 1, 20, "unexpected end of input, expecting a number"),
        ('{app="a"} | d > 5parsecs', 1, 17, "invalid number, duration or size '5parsecs'"),
        ('{app="a"} | (a="1"', 1, 19, "expecting ')'"),
        ('{app="a"} | json x=1', 1, 20, "expecting a string"),
        ('{app="a"} | json x="a..b"', 1, 20, "invalid JSON path"),
        ('{app="a"} | json x="a[x]"', 1, 20, "neither an index nor a quoted key"),
        ('{app="a"} @', 1, 11, "unexpected character '@'"),
        ('{app="a"} }', 1, 11, 'unexpected "}", expecting end of input or a pipeline stage'),
        ('rate({app="a"}[5m]) |= "x"', 1, 21, 'unexpected "|=", expecting end of input'),
        ('rate({app="a"}[5m]) unless rate({app="b"}[5m])', 1, 21, "binary operator unless"),
        ('count_over_time({app="a"})', 1, 26, "expecting a range such as [5m]"),
        ('count_over_time({app="a"}[5])', 1, 27, "expecting a duration such as 5m"),
        ('count_over_time({app="a"}[0s])', 1, 27, "the range must be longer than zero"),
        ('count_over_time({app="a"}[5m]', 1, 30, "expecting ')' closing count_over_time"),
        ('count_over_time({app="a"}[5m] offset 1h)', 1, 31, "offset modifiers are not supported"),
        ('count_over_time({app="a"}[5m]) by (x)', 1, 32, "count_over_time takes no grouping"),
        ('count_over_time(5, {app="a"}[5m])', 1, 17, "expecting a stream selector"),
        ('rate({app="a"}[5m], 2)', 1, 19, "rate takes no parameter"),
        ('sum({app="a"})', 1, 5, "sum aggregates a metric query"),
        ('sum by (a) (rate({app="a"}[5m])) by (b)', 1, 34, "grouping is given twice"),
        ('sum by a (rate({app="a"}[5m]))', 1, 8, "expecting '(' and label names"),
        ('sum by (a b) (rate({app="a"}[5m]))', 1, 11, "expecting ',' or ')'"),
        ('sum by (a) rate({app="a"}[5m])', 1, 12, "expecting '(' after sum"),
        ('sum(rate({app="a"}[5m]), 3)', 1, 24, "sum takes one argument"),
        ('topk(3, rate({app="a"}[5m]))', 1, 1, "function topk is not supported"),
        (
            'sum_over_time({app="a"} | unwrap x [5m])',
            1,
            1,
            "function sum_over_time is not supported",
        ),
        ('rate({app="a"}[5m]) > 1', 1, 21, "binary operator > is not supported"),
        ('rate({app="a"}[5m]) or rate({app="b"}[5m])', 1, 21, "binary operator or"),
        ('sum(rate({app="a"}[5m])) / 2', 1, 26, "binary operator / is not supported"),
        ('{app="a"} + 1', 1, 11, "binary operator + is not supported"),
        ("up", 1, 1, "unexpected identifier up, expecting a stream selector"),
        ('{app="a"}\n| json\n| level >= 1zz', 3, 12, "invalid number, duration or size"),
        ('{app="a"}\n\t|= 5', 2, 5, "unexpected number 5, expecting a string"),
    ],
)
def test_parse__invalid_query__error_names_line_column_and_expectation(
    text, line, column, fragment
):
    with pytest.raises(LogQLError) as caught:
        parse(text)
    error = caught.value
    assert isinstance(error, ValueError)
    assert (error.line, error.column) == (line, column), str(error)
    assert str(error).startswith(f"parse error at line {line}, col {column}: "), str(error)
    assert fragment in str(error)
    assert error.offset is not None


def test_parse__lone_surrogate__refused_with_position():
    with pytest.raises(LogQLError, match="col 7: the query is not valid UTF-8"):
        parse('{app="\udc80"}')


def test_tokenize__offsets__zero_based_positions_of_each_token():
    tokens = tokenize('{a="b"}\n |= `c`')
    assert [(t.kind, t.offset) for t in tokens] == [
        ("{", 0),
        ("identifier", 1),
        ("=", 2),
        ("string", 3),
        ("}", 6),
        ("|=", 9),
        ("string", 12),
        ("end of input", 15),
    ]


def _doc_section(title: str) -> str:
    text = (ROOT / "docs" / "logs.md").read_text(encoding="utf-8")
    return text.split(f"## {title}\n", 1)[1].split("\n## ", 1)[0]


def test_docs__logql_examples__each_parses_and_prints_back():
    examples = re.findall(r"```logql\n(.*?)\n```", _doc_section("LogQL subset"), re.S)
    assert len(examples) >= 6
    for example in examples:
        tree = parse(example)
        assert parse(format_query(tree)) == tree


def test_parse__nesting_and_conditions_at_the_limit__accepted_one_more_refused():
    metric = 'rate({app="a"}[1m])'
    assert parse("(" * 64 + metric + ")" * 64) == parse(metric)
    with pytest.raises(LogQLError, match="col 65: the query is nested too deeply"):
        parse("(" * 65 + metric + ")" * 65)
    conditions = " and ".join(f'l{i}="x"' for i in range(64))
    assert parse('{app="a"} | ' + conditions + " | " + conditions)
    with pytest.raises(LogQLError, match="joins at most 64 conditions"):
        parse('{app="a"} | ' + conditions + ' or z="1"')
