"""Evaluation of the LogQL subset over entries in memory.

This is the reference semantics: a storage backend may evaluate the whole query here (SQLite),
or push the stream matchers and line filters down to its own search and hand only the
candidates to ``select_lines``/``evaluate_range``, which then give the same answer.

- Log queries keep the entries with ``start_ns <= t < end_ns`` (the end is exclusive, as in
  Loki's ``query_range``), newest first (``backward``) or oldest first (``forward``), at most
  ``limit``. Each entry comes back with its labels after the pipeline: stream labels,
  structured metadata and extracted labels.
- Metric queries are evaluated at ``start_ns, start_ns + step_ns, ... <= end_ns``; the range
  aggregation at ``t`` covers the entries with ``t - range < ts <= t``. A series has a point
  only at the steps whose window holds at least one entry, as in Loki.
- Pipeline errors follow Loki: a line ``| json`` or ``| logfmt`` cannot read gets
  ``__error__="JSONParserErr"``/``"LogfmtParserErr"`` (and ``__error_details__``); a numeric
  label filter whose label is not a number sets ``__error__="LabelFilterErr"``. Such lines
  are kept by numeric filters and returned by log queries with those labels; a string filter
  such as ``| __error__=""`` drops them. A metric query that still has an errored entry is
  refused with ``PipelineError``, since its series would be wrong.
"""

from __future__ import annotations

import bisect
import operator
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from itertools import accumulate
from typing import Literal

from .ast import (
    AndFilter,
    Grouping,
    JsonParser,
    LabelFilter,
    LabelFilterExpr,
    LineFilter,
    LogfmtParser,
    LogQuery,
    Matcher,
    MetricQuery,
    NumberFilter,
    OrFilter,
    Query,
    RangeAggregation,
    Stage,
    StringFilter,
    VectorAggregation,
)
from .errors import LogQLError, PipelineError
from .extract import ExtractError, json_fields, json_paths, logfmt_fields, parse_json_path
from .matching import line_filter_function, matcher_function
from .units import parse_bytes, parse_duration_ns, parse_number

ERROR_LABEL = "__error__"
ERROR_DETAILS_LABEL = "__error_details__"
JSON_PARSER_ERROR = "JSONParserErr"
LOGFMT_PARSER_ERROR = "LogfmtParserErr"
LABEL_FILTER_ERROR = "LabelFilterErr"
# An extracted label whose name is already a stream label gets this suffix, as in Loki.
DUPLICATE_SUFFIX = "_extracted"

# Loki's limit on the points of one series; past it the step is too small for the range.
MAX_POINTS = 11_000

Direction = Literal["backward", "forward"]
LabelSet = tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class LogEntry:
    timestamp_ns: int
    labels: Mapping[str, str]
    line: str
    metadata: Mapping[str, str] | None = None


@dataclass
class Series:
    """One series of a matrix: its labels and its ``(timestamp_ns, value)`` points."""

    labels: dict[str, str]
    points: list[tuple[int, float]] = field(default_factory=list)


@dataclass(frozen=True)
class Sample:
    """One element of an instant vector."""

    labels: dict[str, str]
    timestamp_ns: int
    value: float


# --- helpers for storage backends ----------------------------------------------------------


def log_query(query: Query) -> LogQuery:
    """The log query of ``query`` (itself, or the one inside a metric query)."""
    while isinstance(query, VectorAggregation):
        query = query.inner
    return query.query if isinstance(query, RangeAggregation) else query


def range_aggregation(query: MetricQuery) -> RangeAggregation:
    while isinstance(query, VectorAggregation):
        query = query.inner
    return query


def is_metric_query(query: Query) -> bool:
    return not isinstance(query, LogQuery)


def stream_matchers(query: Query) -> tuple[Matcher, ...]:
    """The stream selector's matchers: every selected entry matches all of them (a missing
    label is matched as ""), so a backend can select streams with them."""
    return log_query(query).selector


def line_filters(query: Query) -> tuple[LineFilter, ...]:
    """Every line filter, in order. They all apply to the raw line (this subset has no stage
    that rewrites it) and all must pass, so a backend may apply any of them itself, e.g.
    ``|=`` as ``LIKE '%s%'``/``position``, ``!=`` as ``NOT LIKE``; matching is case-sensitive."""
    return tuple(s for s in log_query(query).stages if isinstance(s, LineFilter))


def needs_parsers(query: Query) -> bool:
    """Whether the pipeline runs ``| json`` or ``| logfmt`` on the lines."""
    return any(isinstance(s, JsonParser | LogfmtParser) for s in log_query(query).stages)


def lookback_ns(query: Query) -> int:
    """How far before ``start`` a metric query reads entries (its range); 0 for log queries."""
    return 0 if isinstance(query, LogQuery) else range_aggregation(query).range_ns


# --- the pipeline ---------------------------------------------------------------------------

_COMPARE: dict[str, Callable[[float, float], bool]] = {
    "==": operator.eq,
    "!=": operator.ne,
    ">": operator.gt,
    ">=": operator.ge,
    "<": operator.lt,
    "<=": operator.le,
}
_CONVERT: dict[str, Callable[[str], float | None]] = {
    "number": parse_number,
    "duration": lambda text: parse_duration_ns(text, signed=True),
    "bytes": parse_bytes,
}

# A stage gets the line, the labels so far (which it may change) and the stream's labels;
# it answers whether the entry goes on.
_StageFunction = Callable[[str, dict[str, str], Mapping[str, str]], bool]
_LabelPredicate = Callable[[dict[str, str]], bool]


def _set_error(labels: dict[str, str], error: str, details: str) -> None:
    labels.setdefault(ERROR_LABEL, error)
    labels.setdefault(ERROR_DETAILS_LABEL, details)


def _add_extracted(
    labels: dict[str, str], stream: Mapping[str, str], fields: Iterable[tuple[str, str]]
) -> None:
    for name, value in fields:
        labels[name + DUPLICATE_SUFFIX if name in stream else name] = value


def _parser_stage(extract: Callable[[str], list[tuple[str, str]]], error: str) -> _StageFunction:
    def run(line: str, labels: dict[str, str], stream: Mapping[str, str]) -> bool:
        try:
            fields = extract(line)
        except ExtractError as exc:
            _set_error(labels, error, str(exc))
            return True
        _add_extracted(labels, stream, fields)
        return True

    return run


def _label_predicate(expr: LabelFilterExpr) -> _LabelPredicate:
    if isinstance(expr, StringFilter):
        name = expr.matcher.name
        matches = matcher_function(expr.matcher)
        return lambda labels: matches(labels.get(name, ""))
    if isinstance(expr, NumberFilter):
        return _number_predicate(expr)
    left, right = _label_predicate(expr.left), _label_predicate(expr.right)
    if isinstance(expr, AndFilter):
        return lambda labels: left(labels) and right(labels)
    assert isinstance(expr, OrFilter)
    return lambda labels: left(labels) or right(labels)


def _number_predicate(expr: NumberFilter) -> _LabelPredicate:
    compare = _COMPARE[expr.op]
    convert = _CONVERT[expr.kind]

    def run(labels: dict[str, str]) -> bool:
        if ERROR_LABEL in labels:
            return True  # Loki: only string filters drop a line that already has an error
        text = labels.get(expr.name)
        if text is None:
            return False
        value = convert(text)
        if value is None:
            _set_error(labels, LABEL_FILTER_ERROR, f"{expr.name}={text!r} is not a {expr.kind}")
            return True
        return compare(value, expr.value)

    return run


def _stage_function(stage: Stage) -> _StageFunction:
    if isinstance(stage, LineFilter):
        passes = line_filter_function(stage)
        return lambda line, labels, stream: passes(line)
    if isinstance(stage, LogfmtParser):
        return _parser_stage(logfmt_fields, LOGFMT_PARSER_ERROR)
    if isinstance(stage, JsonParser):
        if not stage.params:
            return _parser_stage(json_fields, JSON_PARSER_ERROR)
        paths = tuple((label, parse_json_path(path)) for label, path in stage.params)
        return _parser_stage(lambda line: json_paths(line, paths), JSON_PARSER_ERROR)
    assert isinstance(stage, LabelFilter)
    predicate = _label_predicate(stage.expr)
    return lambda line, labels, stream: predicate(labels)


class Pipeline:
    """A log query compiled once and run on many entries."""

    def __init__(self, query: LogQuery):
        self.query = query
        self._matchers = [(m.name, matcher_function(m)) for m in query.selector]
        self._stages = [_stage_function(stage) for stage in query.stages]

    def selects_stream(self, labels: Mapping[str, str]) -> bool:
        return all(matches(labels.get(name, "")) for name, matches in self._matchers)

    def process(self, entry: LogEntry) -> dict[str, str] | None:
        """The entry's labels after the pipeline, or None when the entry is filtered out."""
        if not self.selects_stream(entry.labels):
            return None
        labels = dict(entry.labels)
        if entry.metadata:
            _add_extracted(labels, entry.labels, entry.metadata.items())
        for stage in self._stages:
            if not stage(entry.line, labels, entry.labels):
                return None
        return labels


def _log_query_or_refuse(query: Query) -> LogQuery:
    if not isinstance(query, LogQuery):
        raise LogQLError("a metric query returns series, not log lines; use a log query")
    return query


def select_lines(
    query: Query,
    entries: Iterable[LogEntry],
    start_ns: int,
    end_ns: int,
    limit: int,
    direction: Direction = "backward",
) -> list[LogEntry]:
    """The entries ``query`` selects in ``[start_ns, end_ns)``, in ``direction`` order, at
    most ``limit``, each with its labels after the pipeline. Entries with the same timestamp
    keep their input order (reversed when going backward)."""
    pipeline = Pipeline(_log_query_or_refuse(query))
    candidates = [e for e in entries if start_ns <= e.timestamp_ns < end_ns]
    candidates.sort(key=lambda e: e.timestamp_ns)
    if direction == "backward":
        candidates.reverse()
    elif direction != "forward":
        raise LogQLError(f"direction must be backward or forward, not {direction!r}")
    selected: list[LogEntry] = []
    for entry in candidates:
        if len(selected) >= limit:
            break
        labels = pipeline.process(entry)
        if labels is not None:
            selected.append(LogEntry(entry.timestamp_ns, labels, entry.line, entry.metadata))
    return selected


# --- metric queries -------------------------------------------------------------------------

# Per series: the value at each step timestamp that has one.
_Steps = dict[LabelSet, dict[int, float]]


def _refuse_errors(labels: dict[str, str]) -> None:
    error = labels[ERROR_LABEL]
    shown = ", ".join(f'{k}="{v}"' for k, v in sorted(labels.items()) if k != ERROR_DETAILS_LABEL)
    raise PipelineError(
        f"pipeline error: '{error}' for series: '{{{shown}}}'. Use a label filter to "
        f'intentionally skip this error (e.g. | __error__!="{error}"); to skip all errors '
        'use | __error__=""'
    )


@dataclass(frozen=True)
class _Grid:
    """The evaluation timestamps ``start + k * step`` for ``k`` in ``range(count)``."""

    start: int
    step: int
    count: int

    def first_at_or_after(self, t: int) -> int:
        return max(0, -(-(t - self.start) // self.step))


def _touched_steps(times: list[int], range_ns: int, grid: _Grid) -> Iterator[int]:
    """The indexes of the steps whose window holds at least one of ``times`` (sorted), each
    once and in order: a series with few entries costs a few steps, not the whole grid."""
    nxt = 0
    for t in times:
        # The windows (s - range, s] that hold t are those of the steps t <= s < t + range.
        first = max(grid.first_at_or_after(t), nxt)
        stop = min(grid.first_at_or_after(t + range_ns), grid.count)
        yield from range(first, stop)
        nxt = max(nxt, stop)


def _range_steps(agg: RangeAggregation, entries: Iterable[LogEntry], grid: _Grid) -> _Steps:
    pipeline = Pipeline(agg.query)
    first, last = grid.start - agg.range_ns, grid.start + (grid.count - 1) * grid.step
    by_series: dict[LabelSet, list[tuple[int, int]]] = defaultdict(list)
    weighted = agg.op in ("bytes_over_time", "bytes_rate")
    for entry in entries:
        if not first < entry.timestamp_ns <= last:
            continue
        labels = pipeline.process(entry)
        if labels is None:
            continue
        if ERROR_LABEL in labels:
            _refuse_errors(labels)
        weight = len(entry.line.encode("utf-8", "surrogatepass")) if weighted else 1
        by_series[tuple(sorted(labels.items()))].append((entry.timestamp_ns, weight))
    per_second = agg.op in ("rate", "bytes_rate")
    seconds = agg.range_ns / 1e9
    result: _Steps = {}
    for key, samples in by_series.items():
        samples.sort()
        times = [t for t, _ in samples]
        totals = [0, *accumulate(w for _, w in samples)]
        values: dict[int, float] = {}
        for index in _touched_steps(times, agg.range_ns, grid):
            step = grid.start + index * grid.step
            # The window (step - range, step]: bisect_right excludes its left edge.
            lo = bisect.bisect_right(times, step - agg.range_ns)
            hi = bisect.bisect_right(times, step)
            total = float(totals[hi] - totals[lo])
            values[step] = total / seconds if per_second else total
        result[key] = values
    return result


def _group_key(key: LabelSet, grouping: Grouping | None) -> LabelSet:
    if grouping is None:
        return ()
    names = set(grouping.labels)
    if grouping.without:
        return tuple((k, v) for k, v in key if k not in names)
    return tuple((k, v) for k, v in key if k in names)


_REDUCE: dict[str, Callable[[list[float]], float]] = {
    "sum": sum,
    "count": lambda values: float(len(values)),
    "min": min,
    "max": max,
    "avg": lambda values: sum(values) / len(values),
}


def _steps(query: MetricQuery, entries: Iterable[LogEntry], grid: _Grid) -> _Steps:
    if isinstance(query, RangeAggregation):
        return _range_steps(query, entries, grid)
    inner = _steps(query.inner, entries, grid)
    grouped: dict[LabelSet, dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
    for key, values in inner.items():
        group = grouped[_group_key(key, query.grouping)]
        for step, value in values.items():
            group[step].append(value)
    reduce = _REDUCE[query.op]
    return {
        key: {step: reduce(values) for step, values in by_step.items()}
        for key, by_step in grouped.items()
    }


def _metric_query_or_refuse(query: Query) -> MetricQuery:
    if isinstance(query, LogQuery):
        raise LogQLError(
            "a log query returns lines, not series; wrap it in a function such as "
            "count_over_time(...[5m])"
        )
    return query


def evaluate_range(
    query: Query, entries: Iterable[LogEntry], start_ns: int, end_ns: int, step_ns: int
) -> list[Series]:
    """The matrix of ``query`` at ``start_ns, start_ns + step_ns, ... <= end_ns``: series
    sorted by their labels, each point ``(timestamp_ns, value)`` in time order. ``entries``
    must include those from ``start_ns - lookback_ns(query)`` on for the first window."""
    metric = _metric_query_or_refuse(query)
    if step_ns <= 0:
        raise LogQLError("the step must be longer than zero")
    if end_ns < start_ns:
        raise LogQLError("the end of the range is before its start")
    grid = _Grid(start_ns, step_ns, (end_ns - start_ns) // step_ns + 1)
    if grid.count > MAX_POINTS:
        raise LogQLError(
            f"exceeded maximum resolution of {MAX_POINTS:,} points per timeseries. "
            "Try increasing the value of the step parameter"
        )
    result = _steps(metric, entries, grid)
    return [
        Series(dict(key), sorted(values.items()))
        for key, values in sorted(result.items())
        if values
    ]


def evaluate_instant(query: Query, entries: Iterable[LogEntry], time_ns: int) -> list[Sample]:
    """The vector of ``query`` at ``time_ns`` (one step of ``evaluate_range``)."""
    return [
        Sample(series.labels, time_ns, series.points[0][1])
        for series in evaluate_range(query, entries, time_ns, time_ns, 1)
    ]
