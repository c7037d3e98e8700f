"""The LogQL subset's evaluator over entries in memory: pure functions, no database."""

from __future__ import annotations

import pytest

from apps.logs.logql import (
    LineFilter,
    LogEntry,
    LogQLError,
    Matcher,
    PipelineError,
    evaluate_instant,
    evaluate_range,
    is_metric_query,
    line_filters,
    log_query,
    lookback_ns,
    needs_parsers,
    parse,
    select_lines,
    stream_matchers,
)

S = 1_000_000_000
API = {"app": "api", "pod": "api-1"}


def entry(t_s, line, labels=API, metadata=None):
    return LogEntry(int(t_s * S), dict(labels), line, metadata)


def lines(query, entries, start=0, end=10**6, limit=1000, direction="forward"):
    return [
        e.line for e in select_lines(parse(query), entries, start * S, end * S, limit, direction)
    ]


def labels_of(query, entries):
    return [
        dict(e.labels) for e in select_lines(parse(query), entries, 0, 10**6 * S, 1000, "forward")
    ]


def matrix(query, entries, start, end, step):
    return [
        (s.labels, [(t // S, v) for t, v in s.points])
        for s in evaluate_range(parse(query), entries, start * S, end * S, step * S)
    ]


# --- stream selectors and line filters -------------------------------------------------------

STREAMS = [
    entry(1, "a", {"app": "api", "env": "prod"}),
    entry(2, "b", {"app": "api-gw", "env": "dev"}),
    entry(3, "c", {"app": "web"}),
]


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        ('{app="api"}', ["a"]),
        ('{app=~".+", app!="api"}', ["b", "c"]),
        ('{app=~"api"}', ["a"]),  # anchored: not "api-gw"
        ('{app=~"api.*"}', ["a", "b"]),
        ('{app=~".+", app!~"api.*"}', ["c"]),
        ('{app=~".+", env!="prod"}', ["b", "c"]),  # a missing label matches as ""
        ('{app=~".+", env=""}', ["c"]),
        ('{env=~"prod|dev"}', ["a", "b"]),
    ],
)
def test_select_lines__stream_selector__anchored_matchers_missing_label_empty(selector, expected):
    assert lines(selector, STREAMS) == expected


TEXT = [
    entry(1, "GET /health 200"),
    entry(2, "POST /v1/chat 500 error"),
    entry(3, "post /v1/chat 200"),
    entry(4, "Error: CUDA out of memory\nTraceback"),
]


@pytest.mark.parametrize(
    ("pipeline", "expected"),
    [
        ('|= "chat"', [2, 3]),
        ('|= "POST"', [2]),  # case-sensitive
        ('!= "chat"', [1, 4]),
        ('!= "POST"', [1, 3, 4]),  # case-sensitive too
        ('|= "chat" != "500"', [3]),
        ('|= ""', [1, 2, 3, 4]),
        ('!= ""', []),
        ('|~ "5[0-9]{2}"', [2]),  # unanchored
        ('|~ "(?i)post"', [2, 3]),
        ('!~ "^GET"', [2, 3, 4]),
        ('|~ "memory.Traceback"', []),  # "." does not cross a newline
        ('|~ "(?s)memory.Traceback"', [4]),
        ('|~ "^Traceback"', []),  # ^ is the start of the line, not of a row inside it
        ('|~ "(?m)^Traceback"', [4]),
    ],
)
def test_select_lines__line_filters__substring_and_unanchored_re2(pipeline, expected):
    found = select_lines(parse('{app="api"} ' + pipeline), TEXT, 0, 10 * S, 100, "forward")
    assert [e.timestamp_ns // S for e in found] == expected


# --- time range, limit, direction ------------------------------------------------------------

TIMED = [entry(t, f"line {t}") for t in (5, 1, 3, 3.5, 2, 4)]


def test_select_lines__range__start_inclusive_end_exclusive():
    assert lines('{app="api"}', TIMED, start=2, end=4) == ["line 2", "line 3", "line 3.5"]


def test_select_lines__direction_and_limit__newest_or_oldest_first():
    assert lines('{app="api"}', TIMED, limit=2, direction="backward") == ["line 5", "line 4"]
    assert lines('{app="api"}', TIMED, limit=2, direction="forward") == ["line 1", "line 2"]
    assert lines('{app="api"}', TIMED, limit=0) == []


def test_select_lines__limit_counts_matching_lines_only():
    found = lines('{app="api"} |= "3"', TIMED, limit=1, direction="forward")
    assert found == ["line 3"]


def test_select_lines__same_timestamp__input_order_forward_reversed_backward():
    same = [entry(1, "first"), entry(1, "second"), entry(1, "third")]
    assert lines('{app="api"}', same) == ["first", "second", "third"]
    assert lines('{app="api"}', same, direction="backward") == ["third", "second", "first"]


def test_select_lines__unknown_direction__refused():
    with pytest.raises(LogQLError, match="direction must be backward or forward"):
        select_lines(parse('{app="api"}'), TIMED, 0, 10 * S, 10, "sideways")  # type: ignore[arg-type]


def test_select_lines__metric_query__refused():
    with pytest.raises(LogQLError, match="metric query returns series"):
        select_lines(parse('rate({app="api"}[1m])'), TIMED, 0, S, 10)


# --- json ------------------------------------------------------------------------------------


def test_json__nested_objects__flattened_with_underscore_types_as_text():
    line = (
        '{"level":"error","req":{"method":"GET","path":"/v1","h":{"x-id":"7"}},'
        '"took":1.50,"n":12,"ok":true,"bad":false,"tags":["a","b"],"none":null,'
        '"1st":"x","a.b-c d":"y"," sp ":"z"}'
    )
    assert labels_of('{app="api"} | json', [entry(1, line)]) == [
        {
            **API,
            "level": "error",
            "req_method": "GET",
            "req_path": "/v1",
            "req_h_x_id": "7",
            "took": "1.50",
            "n": "12",
            "ok": "true",
            "bad": "false",
            "_1st": "x",
            "a_b_c_d": "y",
            "sp": "z",
        }
    ]


def test_json__key_that_is_a_stream_label__suffixed_extracted():
    found = labels_of('{app="api"} | json', [entry(1, '{"app":"from-line","pod":{"n":1}}')])
    assert found == [{**API, "app_extracted": "from-line", "pod_n": "1"}]


@pytest.mark.parametrize(
    "line",
    ["not json", '{"a":1', "[1,2]", '"text"', "", '{"a":NaN}', '{"a":1}{"b":2}'],
)
def test_json__unreadable_line__error_label_and_details_line_kept(line):
    (found,) = labels_of('{app="api"} | json', [entry(1, line)])
    assert found["__error__"] == "JSONParserErr"
    assert found["__error_details__"]
    assert {k: v for k, v in found.items() if not k.startswith("__error")} == API


def test_json__with_paths__only_those_labels():
    line = '{"resp":{"status":503,"h":{"a":[1, 2.50]}},"items":["x","y"],"k v":{"z":true}}'
    query = (
        '{app="api"} | json status="resp.status", first="items[1]", h="resp.h", '
        'z=`["k v"].z`, missing="resp.nope", deep="items[5]"'
    )
    assert labels_of(query, [entry(1, line)]) == [
        {**API, "status": "503", "first": "y", "h": '{"a":[1,2.50]}', "z": "true"}
    ]


def test_json__escaped_strings__decoded():
    found = labels_of('{app="api"} | json', [entry(1, r'{"msg":"a \"q\" \u00e9\n"}')])
    assert found[0]["msg"] == 'a "q" é\n'


# --- logfmt ----------------------------------------------------------------------------------


def test_logfmt__pairs_quoted_values_and_bare_keys__labels():
    line = 'level=info msg="loaded \\"model\\" in 3s" took=3.2s ready 2x=1 key.name=v empty= '
    assert labels_of('{app="api"} | logfmt', [entry(1, line)]) == [
        {
            **API,
            "level": "info",
            "msg": 'loaded "model" in 3s',
            "took": "3.2s",
            "ready": "",
            "_2x": "1",
            "key_name": "v",
            "empty": "",
        }
    ]


@pytest.mark.parametrize(
    "line",
    ['msg="unterminated', "=value", 'a"b=1', "a=b=c", 'a=b"c', 'a="bad \\q escape"'],
)
def test_logfmt__malformed_line__logfmt_parser_error(line):
    (found,) = labels_of('{app="api"} | logfmt', [entry(1, line)])
    assert found["__error__"] == "LogfmtParserErr"
    assert "logfmt syntax error" in found["__error_details__"]


def test_logfmt__stream_label_in_line__suffixed_extracted():
    found = labels_of('{app="api"} | logfmt', [entry(1, "pod=other level=warn")])
    assert found == [{**API, "pod_extracted": "other", "level": "warn"}]


# --- label filters ---------------------------------------------------------------------------

REQUESTS = [
    entry(1, "level=info status=200 took=120ms size=2KB"),
    entry(2, "level=error status=500 took=2.5s size=1MiB"),
    entry(3, "level=warn status=429 took=900ms size=300B"),
    entry(4, "level=error status=oops took=fast size=big"),
    entry(5, "level=debug"),
]


@pytest.mark.parametrize(
    ("label_filter", "expected"),
    [
        ('level="error"', [2, 4]),
        ('level!="error"', [1, 3, 5]),
        ('level=~"warn|error"', [2, 3, 4]),
        ('level=~"err"', []),  # anchored
        ('level!~"e.*"', [1, 3, 5]),
        ('missing=""', [1, 2, 3, 4, 5]),
        ("status >= 429", [2, 3, 4]),  # 4 is kept with __error__=LabelFilterErr
        ("status == 200", [1, 4]),
        ("status != 200", [2, 3, 4]),
        ("status < 300", [1, 4]),
        ("took > 1s", [2, 4]),
        ("took <= 900ms", [1, 3, 4]),
        ("size > 1KB", [1, 2, 4]),
        ("size >= 1MB", [2, 4]),
        ("size < 1KiB", [3, 4]),
        ('level="error" and status >= 500', [2, 4]),
        ('level="info" or status == 429', [1, 3, 4]),
        ('(level="info" or level="warn"), took < 1s', [1, 3]),
        ('status >= 500 | __error__=""', [2]),
        ('status >= 500 | __error__="LabelFilterErr"', [4]),
    ],
)
def test_label_filters__string_numeric_duration_size__loki_semantics(label_filter, expected):
    query = '{app="api"} | logfmt | ' + label_filter
    found = select_lines(parse(query), REQUESTS, 0, 10 * S, 100, "forward")
    assert [e.timestamp_ns // S for e in found] == expected


def test_label_filters__unconvertible_value__label_filter_error_with_details():
    (found,) = labels_of('{app="api"} | logfmt | status > 100 | level="error"', REQUESTS[3:4])
    assert found["__error__"] == "LabelFilterErr"
    assert "status='oops' is not a number" in found["__error_details__"]


def test_label_filters__parser_error__numeric_filters_keep_line_string_filters_drop_it():
    entries = [entry(1, '{"status":500}'), entry(2, "not json")]
    assert lines('{app="api"} | json | status >= 500', entries) == ['{"status":500}', "not json"]
    assert lines('{app="api"} | json | status="500"', entries) == ['{"status":500}']
    assert lines('{app="api"} | json | __error__=""', entries) == ['{"status":500}']
    assert lines('{app="api"} | json | __error__="JSONParserErr"', entries) == ["not json"]
    assert lines('{app="api"} | json | __error__!=""', entries) == ["not json"]


def test_label_filters__negative_numbers_and_durations__compared():
    entries = [entry(1, "delta=-5 skew=-1.5s"), entry(2, "delta=3 skew=2s")]
    assert lines('{app="api"} | logfmt | delta < -1', entries) == ["delta=-5 skew=-1.5s"]
    assert lines('{app="api"} | logfmt | skew > -1s', entries) == ["delta=3 skew=2s"]


def test_label_filters__stream_labels_before_parser__filtered():
    assert lines('{app=~"api.*"} | env="dev"', STREAMS) == ["b"]


def test_structured_metadata__labels_for_filters_stream_label_wins():
    entries = [
        entry(1, "x", metadata={"trace_id": "abc", "app": "meta"}),
        entry(2, "y", metadata={"trace_id": "def"}),
    ]
    assert lines('{app="api"} | trace_id="abc"', entries) == ["x"]
    assert labels_of('{app="api"} |= "x"', entries) == [
        {**API, "trace_id": "abc", "app_extracted": "meta"}
    ]


# --- metric queries --------------------------------------------------------------------------

WINDOW = [entry(t, "x" * n) for t, n in ((10, 1), (20, 2), (30, 3), (40, 4), (60, 10))]


def test_count_over_time__window__left_open_right_closed():
    # At t the window is (t - 20s, t]: an entry exactly at t - 20s is outside, one at t inside.
    assert matrix('count_over_time({app="api"}[20s])', WINDOW, 10, 70, 10) == [
        (API, [(10, 1.0), (20, 2.0), (30, 2.0), (40, 2.0), (50, 1.0), (60, 1.0), (70, 1.0)])
    ]


def test_count_over_time__empty_windows__no_point():
    assert matrix('count_over_time({app="api"}[5s])', WINDOW, 0, 60, 15) == [
        (API, [(30, 1.0), (60, 1.0)])
    ]


def test_rate_bytes_over_time_bytes_rate__values_per_window():
    assert matrix('rate({app="api"}[20s])', WINDOW, 40, 40, 1) == [(API, [(40, 0.1)])]
    assert matrix('bytes_over_time({app="api"}[20s])', WINDOW, 40, 40, 1) == [(API, [(40, 7.0)])]
    assert matrix('bytes_rate({app="api"}[20s])', WINDOW, 40, 40, 1) == [(API, [(40, 0.35)])]


def test_bytes_over_time__counts_utf8_bytes_not_characters():
    assert matrix('bytes_over_time({app="api"}[1m])', [entry(1, "é€")], 1, 1, 1) == [
        (API, [(1, 5.0)])
    ]


def test_range_aggregation__pipeline_applied_series_per_label_set():
    entries = [
        entry(1, "level=error", {"app": "api", "pod": "a"}),
        entry(2, "level=info", {"app": "api", "pod": "a"}),
        entry(3, "level=error", {"app": "api", "pod": "b"}),
        entry(4, "level=error", {"app": "web", "pod": "c"}),
    ]
    assert matrix(
        'count_over_time({app="api"} | logfmt | level="error" [1m])', entries, 5, 5, 1
    ) == [
        ({"app": "api", "level": "error", "pod": "a"}, [(5, 1.0)]),
        ({"app": "api", "level": "error", "pod": "b"}, [(5, 1.0)]),
    ]


LEVELS = [
    entry(1, "level=error", {"app": "api", "pod": "a"}),
    entry(2, "level=error", {"app": "api", "pod": "a"}),
    entry(3, "level=info", {"app": "api", "pod": "b"}),
    entry(4, "level=error", {"app": "api", "pod": "b"}),
    entry(5, "level=info", {"app": "api", "pod": "c"}),
]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ('sum(count_over_time({app="api"}[1m]))', [({}, 5.0)]),
        (
            'sum by (pod) (count_over_time({app="api"}[1m]))',
            [({"pod": "a"}, 2.0), ({"pod": "b"}, 2.0), ({"pod": "c"}, 1.0)],
        ),
        (
            'sum(count_over_time({app="api"}[1m])) by (pod)',
            [({"pod": "a"}, 2.0), ({"pod": "b"}, 2.0), ({"pod": "c"}, 1.0)],
        ),
        (
            'sum by (level) (count_over_time({app="api"} | logfmt [1m]))',
            [({"level": "error"}, 3.0), ({"level": "info"}, 2.0)],
        ),
        (
            'sum without (pod) (count_over_time({app="api"} | logfmt [1m]))',
            [({"app": "api", "level": "error"}, 3.0), ({"app": "api", "level": "info"}, 2.0)],
        ),
        ('count(count_over_time({app="api"}[1m]))', [({}, 3.0)]),
        ('min(count_over_time({app="api"}[1m]))', [({}, 1.0)]),
        ('max(count_over_time({app="api"}[1m]))', [({}, 2.0)]),
        ('avg(count_over_time({app="api"}[1m]))', [({}, 5.0 / 3)]),
        ('sum by (nope) (count_over_time({app="api"}[1m]))', [({}, 5.0)]),
        (
            'max(sum by (level) (count_over_time({app="api"} | logfmt [1m])))',
            [({}, 3.0)],
        ),
        (
            'count by (level) (count_over_time({app="api"} | logfmt [1m]))',
            [({"level": "error"}, 2.0), ({"level": "info"}, 2.0)],
        ),
    ],
)
def test_vector_aggregation__ops_and_grouping__per_group_values(query, expected):
    samples = evaluate_instant(parse(query), LEVELS, 10 * S)
    assert [s.labels for s in samples] == [labels for labels, _ in expected]
    assert [s.value for s in samples] == pytest.approx([value for _, value in expected])
    assert all(s.timestamp_ns == 10 * S for s in samples)


def test_vector_aggregation__group_absent_at_some_steps__points_only_where_present():
    assert matrix('sum by (pod) (count_over_time({app="api"}[2s]))', LEVELS, 2, 6, 2) == [
        ({"pod": "a"}, [(2, 2.0)]),
        ({"pod": "b"}, [(4, 2.0)]),
        ({"pod": "c"}, [(6, 1.0)]),
    ]


def test_metric_query__unfiltered_parser_error__pipeline_error():
    entries = [entry(1, '{"level":"error"}'), entry(2, "not json")]
    with pytest.raises(PipelineError) as caught:
        evaluate_range(parse('sum(count_over_time({app="api"} | json [1m]))'), entries, S, 5 * S, S)
    assert "pipeline error: 'JSONParserErr'" in str(caught.value)
    assert '__error__!="JSONParserErr"' in str(caught.value)
    assert isinstance(caught.value, LogQLError)


def test_metric_query__errors_filtered_out__counts_the_rest():
    entries = [entry(1, '{"level":"error"}'), entry(2, "not json")]
    query = 'sum by (level) (count_over_time({app="api"} | json | __error__="" [1m]))'
    assert matrix(query, entries, 5, 5, 1) == [({"level": "error"}, [(5, 1.0)])]


def test_evaluate_range__log_query_or_bad_step__refused():
    with pytest.raises(LogQLError, match="log query returns lines"):
        evaluate_range(parse('{app="api"}'), WINDOW, 0, S, S)
    with pytest.raises(LogQLError, match="step must be longer than zero"):
        evaluate_range(parse('rate({app="api"}[1m])'), WINDOW, 0, S, 0)
    with pytest.raises(LogQLError, match="end of the range is before its start"):
        evaluate_range(parse('rate({app="api"}[1m])'), WINDOW, 2 * S, S, S)


def test_evaluate_range__more_than_11000_steps__refused_as_in_loki():
    query = parse('rate({app="api"}[1m])')
    assert evaluate_range(query, WINDOW, 0, 10_999 * S, S)  # 11,000 points: answered
    with pytest.raises(LogQLError, match="exceeded maximum resolution of 11,000 points"):
        evaluate_range(query, WINDOW, 0, 11_000 * S, S)


def test_evaluate_range__steps__start_to_end_inclusive():
    entries = [entry(t, "x") for t in range(0, 100)]
    result = evaluate_range(
        parse('count_over_time({app="api"}[10s])'), entries, 10 * S, 35 * S, 10 * S
    )
    assert [(t // S, v) for t, v in result[0].points] == [(10, 10.0), (20, 10.0), (30, 10.0)]


# --- helpers for storage backends ------------------------------------------------------------


def test_helpers__push_down_parts_of_a_metric_query():
    query = parse(
        'sum by (level) (count_over_time({app="api", env!="dev"} |= "GET" | json '
        '| level="error" !~ "health" [5m]))'
    )
    assert is_metric_query(query)
    assert stream_matchers(query) == (Matcher("app", "=", "api"), Matcher("env", "!=", "dev"))
    assert line_filters(query) == (LineFilter("|=", "GET"), LineFilter("!~", "health"))
    assert needs_parsers(query)
    assert lookback_ns(query) == 300 * S
    assert log_query(query).selector == stream_matchers(query)


def test_helpers__log_query_without_parser():
    query = parse('{app="api"} |= "a" | pod="x"')
    assert not is_metric_query(query)
    assert not needs_parsers(query)
    assert lookback_ns(query) == 0
    assert line_filters(query) == (LineFilter("|=", "a"),)
    assert needs_parsers(parse('{app="api"} | logfmt'))
    assert [f.is_regex for f in line_filters(parse('{a="b"} |= "x" |~ "y" != "z" !~ "w"'))] == [
        False,
        True,
        False,
        True,
    ]
    assert [f.negated for f in line_filters(parse('{a="b"} |= "x" |~ "y" != "z" !~ "w"'))] == [
        False,
        False,
        True,
        True,
    ]
