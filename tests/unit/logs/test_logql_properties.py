"""Properties of the LogQL subset, checked on generated queries and entries (no database)."""

from __future__ import annotations

import re

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from apps.logs.logql import (
    AndFilter,
    Grouping,
    JsonParser,
    LabelFilter,
    LineFilter,
    LogEntry,
    LogfmtParser,
    LogQLError,
    LogQuery,
    Matcher,
    NumberFilter,
    OrFilter,
    RangeAggregation,
    StringFilter,
    VectorAggregation,
    evaluate_range,
    format_query,
    parse,
    select_lines,
)
from apps.logs.logql.lexer import tokenize
from apps.logs.logql.matching import matcher_function

S = 1_000_000_000

# --- strategies for syntax trees -------------------------------------------------------------

names = st.from_regex(r"[a-zA-Z_][a-zA-Z0-9_]{0,6}", fullmatch=True)
texts = st.text(st.characters(blacklist_categories=("Cs",)), max_size=12)
# Valid RE2 patterns: fixed ones, and any text with its special characters escaped.
patterns = st.one_of(
    st.sampled_from([".*", ".+", "a|b", "x[0-9]+", "(?i)err(or)?", "^a$", "\\d{2,3}"]),
    texts.map(re.escape),
)


@st.composite
def matchers(draw):
    op = draw(st.sampled_from(["=", "!=", "=~", "!~"]))
    value = draw(patterns if op in ("=~", "!~") else texts)
    return Matcher(draw(names), op, value)


@st.composite
def selectors(draw):
    chosen = tuple(draw(st.lists(matchers(), min_size=1, max_size=3)))
    assume(not all(matcher_function(m)("") for m in chosen))
    return chosen


@st.composite
def number_filters(draw):
    kind = draw(st.sampled_from(["number", "duration", "bytes"]))
    amount = draw(st.integers(0, 10**6))
    if kind == "number":
        literal = draw(st.sampled_from([str(amount), f"{amount}.5", f"{amount}e2"]))
    elif kind == "duration":
        literal = f"{amount}{draw(st.sampled_from(['ns', 'us', 'ms', 's', 'm', 'h', 'd']))}"
    else:
        literal = f"{amount}{draw(st.sampled_from(['B', 'KB', 'KiB', 'MB', 'GiB']))}"
    value = float(tokenize(literal)[0].value)
    if draw(st.booleans()):
        literal, value = "-" + literal, -value
    op = draw(st.sampled_from(["==", "!=", ">", ">=", "<", "<="]))
    return NumberFilter(draw(names), op, kind, value, literal)


label_filter_exprs = st.recursive(
    st.one_of(matchers().map(StringFilter), number_filters()),
    lambda inner: st.one_of(st.builds(AndFilter, inner, inner), st.builds(OrFilter, inner, inner)),
    max_leaves=5,
)
json_paths = st.lists(
    st.one_of(names, st.integers(0, 9).map(lambda i: f"[{i}]")), min_size=1, max_size=3
).map(lambda parts: "".join(p if p.startswith("[") else f".{p}" for p in parts).lstrip("."))
line_filters = st.one_of(
    st.builds(LineFilter, st.sampled_from(["|=", "!="]), texts),
    st.builds(LineFilter, st.sampled_from(["|~", "!~"]), patterns),
)
stages = st.one_of(
    line_filters,
    st.just(LogfmtParser()),
    st.builds(JsonParser, st.lists(st.tuples(names, json_paths), max_size=2).map(tuple)),
    st.builds(LabelFilter, label_filter_exprs),
)
log_queries = st.builds(LogQuery, selectors(), st.lists(stages, max_size=4).map(tuple))
range_aggregations = st.builds(
    RangeAggregation,
    st.sampled_from(["count_over_time", "rate", "bytes_over_time", "bytes_rate"]),
    log_queries,
    st.integers(1, 10**15),
)
groupings = st.none() | st.builds(
    Grouping, st.booleans(), st.lists(names, max_size=3, unique=True).map(tuple)
)
metric_queries = st.recursive(
    range_aggregations,
    lambda inner: st.builds(
        VectorAggregation, st.sampled_from(["sum", "count", "min", "max", "avg"]), inner, groupings
    ),
    max_leaves=3,
)


@settings(max_examples=150, deadline=None)
@given(st.one_of(log_queries, metric_queries))
def test_format_query__any_tree__parses_back_to_the_same_tree(tree):
    assert parse(format_query(tree)) == tree


# --- line filters ----------------------------------------------------------------------------

alphabet = st.sampled_from("abAB é\n")
line_lists = st.lists(st.text(alphabet, max_size=8), max_size=20)


def _entries(lines):
    return [LogEntry(i, {"app": "a"}, line) for i, line in enumerate(lines)]


def _kept(query, entries):
    found = select_lines(parse(query), entries, 0, len(entries), len(entries), "forward")
    return [e.line for e in found]


@settings(max_examples=200, deadline=None)
@given(line_lists, st.text(alphabet, max_size=3))
def test_line_filter__contains_and_not_contains__partition_the_lines(lines, needle):
    entries = _entries(lines)
    literal = format_query(LogQuery((Matcher("app", "=", "a"),), (LineFilter("|=", needle),)))
    kept = _kept(literal, entries)
    dropped = _kept(literal.replace("|=", "!=", 1), entries)
    assert kept == [line for line in lines if needle in line]
    assert dropped == [line for line in lines if needle not in line]
    # The escaped text as an unanchored regex selects the same lines.
    regex = LogQuery((Matcher("app", "=", "a"),), (LineFilter("|~", re.escape(needle)),))
    assert _kept(format_query(regex), entries) == kept


# --- metric queries --------------------------------------------------------------------------

timestamps = st.lists(st.integers(0, 100), max_size=40)


@settings(max_examples=200, deadline=None)
@given(
    timestamps,
    st.integers(1, 30),
    st.integers(0, 100),
    st.integers(1, 20),
    st.integers(0, 60),
)
def test_count_over_time__each_point__entries_in_left_open_window(
    seconds, range_s, start_s, step_s, span_s
):
    entries = [LogEntry(t * S, {"app": "a"}, "x") for t in seconds]
    query = parse(f'count_over_time({{app="a"}}[{range_s}s])')
    result = evaluate_range(query, entries, start_s * S, (start_s + span_s) * S, step_s * S)
    expected = []
    for step in range(start_s, start_s + span_s + 1, step_s):
        count = sum(1 for t in seconds if step - range_s < t <= step)
        if count:
            expected.append((step * S, float(count)))
    assert [point for series in result for point in series.points] == expected


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(0, 60), st.sampled_from(["p1", "p2", "p3"]), st.sampled_from(["a", "b"])
        ),
        max_size=40,
    ),
    st.sampled_from(["pod", "level", "pod, level"]),
    st.booleans(),
)
def test_count_over_time__sums_over_groups__equal_the_total(rows, labels, without):
    entries = [LogEntry(t * S, {"app": "a", "pod": pod}, f"level={lv}") for t, pod, lv in rows]
    inner = 'count_over_time({app="a"} | logfmt [15s])'
    word = "without" if without else "by"
    grouped = evaluate_range(parse(f"sum {word} ({labels}) ({inner})"), entries, 0, 60 * S, 5 * S)
    total = evaluate_range(parse(f"sum({inner})"), entries, 0, 60 * S, 5 * S)
    sums: dict[int, float] = {}
    for series in grouped:
        for t, value in series.points:
            sums[t] = sums.get(t, 0.0) + value
    assert sorted(sums.items()) == (total[0].points if total else [])
    assert sum(v for _, v in (total[0].points if total else [])) >= 0


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(0, 20), max_size=30), st.integers(0, 40))
def test_select_lines__backward__reverse_of_forward(seconds, limit):
    entries = [LogEntry(t * S, {"app": "a"}, f"{i}") for i, t in enumerate(seconds)]
    query = parse('{app="a"}')
    forward = select_lines(query, entries, 0, 21 * S, len(entries), "forward")
    backward = select_lines(query, entries, 0, 21 * S, limit, "backward")
    assert backward == list(reversed(forward))[:limit]


# --- robustness: only LogQLError, whatever the input -----------------------------------------

query_pieces = st.sampled_from(
    [*'{}()[]|=~!<>,"`#\\ \n', "a", "1", "5m", "1.5", "-", "json", "logfmt", "sum", "by",
     "without", "rate", "count_over_time", "and", "or", '"x"', "`y`", "|=", "!~", ".*"]
)  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(max_size=40), st.lists(query_pieces, max_size=30).map("".join)))
def test_parse__any_text__a_tree_or_logqlerror_with_a_position(text):
    error = None
    try:
        tree = parse(text)
    except LogQLError as exc:
        error = exc
    if error is None:
        assert parse(format_query(tree)) == tree
    else:
        assert error.offset is not None
        assert 0 <= error.offset <= len(text)
        assert str(error).startswith(f"parse error at line {error.line}, col {error.column}: ")


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=60))
def test_pipeline__any_line__never_raises(line):
    entries = [LogEntry(1, {"app": "a"}, line)]
    query = parse('{app="a"} | json | logfmt | x > 1 | y > 1s | z > 1KB | w=~"a.*"')
    found = select_lines(query, entries, 0, 2, 10, "forward")
    assert [e.line for e in found] in ([], [line])


def test_parse__deeply_nested_parentheses__logqlerror():
    text = "(" * 5000 + 'rate({app="a"}[1m])' + ")" * 5000
    with pytest.raises(LogQLError, match="nested too deeply"):
        parse(text)


def test_parse__huge_duration__logqlerror():
    with pytest.raises(LogQLError, match="invalid number, duration or size"):
        parse('rate({app="a"}[' + "9" * 400 + "h])")
