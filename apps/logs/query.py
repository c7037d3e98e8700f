"""Running a LogQL query against the configured store: the store selects (stream matchers,
literal line filters and the deployment pushed down), the pure evaluator of
:mod:`apps.logs.logql` does the rest, so every backend gives the reference answer.

Metric queries whose lines need no parser and no regex filter, with the range functions
that only count lines or bytes, are answered from the store's per-bucket counts
(:meth:`LogStore.count_buckets`) without reading a line: that is what keeps a 24-hour
``sum by (level) (count_over_time(...[5m]))`` over millions of lines in seconds. Everything
else reads the candidate lines, at most :data:`MAX_SCAN` of them; a query that would need
more is refused with advice to narrow it, never answered from a partial read.
"""

from __future__ import annotations

import hashlib
import math
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass

from apps.logs.logql import (
    LineFilter,
    LogEntry,
    LogQLError,
    LogQuery,
    Matcher,
    Pipeline,
    Query,
    RangeAggregation,
    Sample,
    Series,
    VectorAggregation,
    evaluate_range,
    format_query,
    is_metric_query,
    line_filters,
    log_query,
    lookback_ns,
    needs_parsers,
    parse,
    stream_matchers,
)
from apps.logs.logql.ast import format_duration
from apps.logs.logql.evaluate import MAX_POINTS, Direction
from apps.logs.storage.base import LogSelect, LogStore, SeriesCount, StoredEntry

Cursor = tuple[int, str, str]

# The most candidate lines one query reads from the store (log queries stop earlier, at
# their limit); past it the query is refused with advice to narrow it.
MAX_SCAN = 500_000
PAGE_SIZE = 5_000
# A histogram's default number of buckets over its range.
HISTOGRAM_BUCKETS = 60
_SECOND_NS = 1_000_000_000
# Range functions answered from bucket counts, and whether each reads bytes.
_COUNTED = {"count_over_time": False, "rate": False, "bytes_over_time": True, "bytes_rate": True}
_PER_SECOND = {"rate", "bytes_rate"}


class LogsQueryError(ValueError):
    """A query that is valid LogQL but cannot be answered as asked (too much to read, a
    range the step cannot cover): HTTP 400 with this message."""


@dataclass(frozen=True)
class Scope:
    """Whose lines and where: the team (from the caller's token) and optionally one of its
    deployments."""

    team_id: int
    deployment_id: int | None = None


def parse_query(text: str) -> Query:
    """The query's tree; :class:`LogQLError` (a ``ValueError`` naming the position) when
    it is not valid LogQL of the supported subset."""
    return parse(text)


def _select(query: Query, scope: Scope, start_ns: int, end_ns: int) -> LogSelect:
    literal = [f for f in line_filters(query) if not f.is_regex]
    return LogSelect(
        team_id=scope.team_id,
        start_ns=start_ns,
        end_ns=end_ns,
        matchers=stream_matchers(query),
        deployment_id=scope.deployment_id,
        line_contains=tuple(f.value for f in literal if f.op == "|="),
        line_excludes=tuple(f.value for f in literal if f.op == "!="),
    )


def as_log_entry(entry: StoredEntry) -> LogEntry:
    """A stored line as the evaluator reads it: its stream labels, and its structured
    metadata (with the normalized severity as ``level`` when neither names one)."""
    metadata = dict(entry.metadata)
    if entry.severity and "level" not in metadata and all(k != "level" for k, _ in entry.labels):
        metadata["level"] = entry.severity
    return LogEntry(entry.timestamp_ns, dict(entry.labels), entry.line, metadata or None)


def _too_much(max_scan: int) -> LogsQueryError:
    return LogsQueryError(
        f"the query selects more than {max_scan:,} lines; narrow the stream "
        'selector, add a line filter (|= "text") or shorten the time range'
    )


def _candidates(
    store: LogStore, select: LogSelect, direction: Direction, max_scan: int
) -> Iterator[list[StoredEntry]]:
    """The selected lines page by page in ``direction``; refuses past ``max_scan``."""
    after = None
    read = 0
    while True:
        page = store.select(select, limit=PAGE_SIZE, direction=direction, after=after)
        read += len(page.entries)
        if read > max_scan:
            raise _too_much(max_scan)
        if page.entries:
            yield page.entries
        if page.after is None:
            return
        after = page.after


def query_lines(
    store: LogStore,
    query: Query,
    scope: Scope,
    *,
    start_ns: int,
    end_ns: int,
    limit: int,
    direction: Direction = "backward",
    max_scan: int = MAX_SCAN,
) -> list[LogEntry]:
    """At most ``limit`` lines of a log query in [start_ns, end_ns), in ``direction``
    order, each with its labels after the pipeline."""
    page = search_lines(
        store,
        query,
        scope,
        start_ns=start_ns,
        end_ns=end_ns,
        limit=limit,
        direction=direction,
        max_scan=max_scan,
    )
    return [
        LogEntry(
            hit.entry.timestamp_ns, hit.labels, hit.entry.line, as_log_entry(hit.entry).metadata
        )
        for hit in page.hits
    ]


def _countable(query: Query) -> RangeAggregation | None:
    """The range aggregation when the query can be answered from bucket counts: a counting
    function over lines that need no parser, label filter or regex filter, directly under
    a ``sum`` (whose grouping is checked against the streams' labels later)."""
    inner = query.inner if isinstance(query, VectorAggregation) else query
    if not isinstance(inner, RangeAggregation) or inner.op not in _COUNTED:
        return None
    if needs_parsers(inner.query) or any(f.is_regex for f in line_filters(inner.query)):
        return None
    if any(not isinstance(stage, LineFilter) for stage in inner.query.stages):
        return None  # a label filter reads labels the buckets do not keep
    # Inner series carry each line's metadata as labels, so one stream may be several
    # series: only a sum of them is the same whatever the split.
    if not isinstance(query, VectorAggregation) or query.op != "sum":
        return None
    return inner


def _grid(start_ns: int, end_ns: int, step_ns: int) -> list[int]:
    if step_ns <= 0:
        raise LogsQueryError("the step must be longer than zero")
    if end_ns < start_ns:
        raise LogsQueryError("the end of the range is before its start")
    count = (end_ns - start_ns) // step_ns + 1
    if count > MAX_POINTS:
        raise LogsQueryError(
            f"exceeded maximum resolution of {MAX_POINTS:,} points per timeseries. "
            "Try increasing the value of the step parameter"
        )
    return [start_ns + i * step_ns for i in range(count)]


def _prefix(values: list[int]) -> list[int]:
    out = [0]
    for value in values:
        out.append(out[-1] + value)
    return out


def _window_values(
    series: SeriesCount, times: list[int], origin: int, width: int, range_ns: int, op: str
) -> dict[int, float]:
    """Each step's value of one stream: the sum of the buckets inside its window
    ``(t - range, t]``. Bucket ``i`` is ``(origin + i*width, origin + (i+1)*width]`` and
    ``width`` divides both the step and the range, so every window is whole buckets. A step
    whose window holds no line has no value, as in the evaluator."""
    lines = _prefix(series.counts)
    summed = _prefix(series.bytes) if _COUNTED[op] else lines
    n = len(series.counts)
    per = range_ns // width
    out: dict[int, float] = {}
    for t in times:
        hi = min(max((t - origin) // width, 0), n)  # buckets before index hi end by t
        lo = min(max(hi - per, 0), n)
        if lines[hi] - lines[lo] > 0:
            value = float(summed[hi] - summed[lo])
            out[t] = value / (range_ns / 1e9) if op in _PER_SECOND else value
    return out


def _sum_groups(
    groups: Mapping[tuple[tuple[str, str], ...], list[dict[int, float]]],
) -> list[Series]:
    result = []
    for key, members in sorted(groups.items()):
        points: dict[int, float] = defaultdict(float)
        for member in members:
            for t, v in member.items():
                points[t] += v
        if points:
            result.append(Series(dict(key), sorted(points.items())))
    return result


def _group_key(
    labels: Iterable[tuple[str, str]], query: VectorAggregation
) -> tuple[tuple[str, str], ...] | None:
    """The stream's group, or ``None`` when its labels cannot tell it: ``without`` keeps
    labels a line's metadata may add, and a ``by`` label the stream lacks may be one."""
    grouping = query.grouping
    pairs = dict(labels)
    if grouping is None:
        return ()
    if grouping.without:
        return None
    if any(name not in pairs for name in grouping.labels):
        return None  # a "by" label the stream lacks may be metadata: not from buckets
    return tuple(sorted((k, pairs[k]) for k in grouping.labels))


def _from_buckets(
    store: LogStore,
    query: Query,
    agg: RangeAggregation,
    scope: Scope,
    times: list[int],
) -> list[Series] | None:
    """The matrix from bucket counts, or ``None`` when the streams' labels cannot give
    the grouping (then the lines are read)."""
    step = times[1] - times[0] if len(times) > 1 else agg.range_ns
    width = math.gcd(step, agg.range_ns)
    origin = times[0] - agg.range_ns
    # Buckets (origin + i*w, origin + (i+1)*w] are [origin+1 + i*w, ...) in half-open form.
    select = _select(agg.query, scope, origin + 1, times[-1] + 1)
    if (times[-1] - origin) // width > 4 * MAX_POINTS:
        return None  # too fine a grid for buckets: read the lines instead
    counts = store.count_buckets(select, step_ns=width)
    assert isinstance(query, VectorAggregation)
    groups: dict[tuple[tuple[str, str], ...], list[dict[int, float]]] = defaultdict(list)
    for c in counts:
        key = _group_key(c.labels, query)
        if key is None:
            return None
        values = _window_values(c, times, origin, width, agg.range_ns, agg.op)
        if values:
            groups[key].append(values)
    return _sum_groups(groups)


def query_range(
    store: LogStore,
    query: Query,
    scope: Scope,
    *,
    start_ns: int,
    end_ns: int,
    step_ns: int,
    max_scan: int = MAX_SCAN,
) -> list[Series]:
    """The matrix of a metric query at ``start_ns, start_ns + step_ns, ... <= end_ns``."""
    if not is_metric_query(query):
        raise LogsQueryError("a log query returns lines: use the lines query")
    times = _grid(start_ns, end_ns, step_ns)
    agg = _countable(query)
    if agg is not None:
        series = _from_buckets(store, query, agg, scope, times)
        if series is not None:
            return series
    reach = start_ns - lookback_ns(query)
    select = _select(log_query(query), scope, reach + 1, end_ns + 1)
    # A generator: the evaluator keeps only (time, weight) per series, so memory is one
    # page of lines at a time, not every line read.
    entries = (
        as_log_entry(e) for page in _candidates(store, select, "forward", max_scan) for e in page
    )
    return evaluate_range(query, entries, start_ns, end_ns, step_ns)


def query_instant(
    store: LogStore, query: Query, scope: Scope, *, at_ns: int, max_scan: int = MAX_SCAN
) -> list[Sample]:
    """The vector of a metric query at ``at_ns`` (one step of :func:`query_range`)."""
    return [
        Sample(series.labels, at_ns, series.points[0][1])
        for series in query_range(
            store, query, scope, start_ns=at_ns, end_ns=at_ns, step_ns=1, max_scan=max_scan
        )
    ]


@dataclass(frozen=True)
class Hit:
    """One line a search found: as stored, and its labels after the query's pipeline."""

    entry: StoredEntry
    labels: dict[str, str]


@dataclass(frozen=True)
class HitPage:
    """Lines in the requested direction, and the store cursor of the last one when more
    may follow (``None``: the range holds no further matching line)."""

    hits: list[Hit]
    after: Cursor | None


def line_hash(line: str) -> str:
    """A short, stable name of a line's text: what a cursor keeps instead of the line."""
    return hashlib.sha256(line.encode()).hexdigest()[:16]


def search_lines(
    store: LogStore,
    query: Query,
    scope: Scope,
    *,
    start_ns: int,
    end_ns: int,
    limit: int,
    direction: Direction = "backward",
    after: Cursor | None = None,
    max_scan: int = MAX_SCAN,
) -> HitPage:
    """Like :func:`query_lines`, in the store's total order (time, stream, line) and
    strictly after ``after`` in ``direction``, keeping each line's stream: passing the
    returned ``after`` back continues exactly after the last line, with no gap and no
    repeat, however many lines share a timestamp."""
    if is_metric_query(query):
        raise LogsQueryError("a metric query returns series, not lines: use the range query")
    if limit <= 0:
        raise LogsQueryError("the limit must be at least 1")
    pipeline = Pipeline(log_query(query))
    select = _select(query, scope, start_ns, end_ns)
    hits: list[Hit] = []
    read = 0
    while True:
        page = store.select(select, limit=PAGE_SIZE, direction=direction, after=after)
        read += len(page.entries)
        if read > max_scan:
            raise _too_much(max_scan)
        for entry in page.entries:
            labels = pipeline.process(as_log_entry(entry))
            if labels is None:
                continue
            hits.append(Hit(entry, labels))
            if len(hits) >= limit:
                return HitPage(hits, entry.cursor)
        if page.after is None:
            return HitPage(hits, None)
        after = page.after


@dataclass(frozen=True)
class Histogram:
    """Matching lines per bucket: bucket ``i`` covers ``[start_ns + i*step_ns, + step_ns)``,
    every bucket listed (empty ones with 0); ``query`` is the metric query counted."""

    query: Query
    start_ns: int
    end_ns: int
    step_ns: int
    counts: list[tuple[int, int]]

    @property
    def total(self) -> int:
        return sum(count for _, count in self.counts)


def histogram_lines(
    store: LogStore,
    query: Query,
    scope: Scope,
    *,
    start_ns: int,
    end_ns: int,
    step_ns: int | None = None,
    max_scan: int = MAX_SCAN,
) -> Histogram:
    """How many lines of a log query fall in each step of [start_ns, end_ns) (the end
    rounded up to whole steps; the default step cuts the range in about
    :data:`HISTOGRAM_BUCKETS` whole seconds): ``sum(count_over_time(<query> [step]))``,
    counted from the store's buckets when the query allows."""
    if is_metric_query(query):
        raise LogsQueryError("a metric query returns series, not lines: use the range query")
    step = step_ns or max(
        -(-(end_ns - start_ns) // HISTOGRAM_BUCKETS // _SECOND_NS) * _SECOND_NS, _SECOND_NS
    )
    buckets = -(-(end_ns - start_ns) // step)
    end = start_ns + buckets * step
    metric = parse(f"sum(count_over_time({format_query(query)} [{format_duration(step)}]))")
    # count_over_time at t counts (t - step, t]: evaluated at start + step - 1, ... it
    # counts [start, start + step), ... as the search reads them.
    series = query_range(
        store,
        metric,
        scope,
        start_ns=start_ns + step - 1,
        end_ns=end - 1,
        step_ns=step,
        max_scan=max_scan,
    )
    counts = {t + 1 - step: int(v) for serie in series for t, v in serie.points}
    return Histogram(
        metric, start_ns, end, step, [(t, counts.get(t, 0)) for t in range(start_ns, end, step)]
    )


def count_lines(
    store: LogStore, query: Query, scope: Scope, *, start_ns: int, end_ns: int
) -> list[SeriesCount]:
    """Per stream, the lines (and bytes) its selector and literal line filters select in
    [start_ns, end_ns), in one bucket: read from the store's counts, no line is read."""
    select = _select(log_query(query), scope, start_ns, end_ns)
    return store.count_buckets(select, step_ns=max(end_ns - start_ns, 1))


def find_entry(
    store: LogStore, *, team_id: int, stream_id: str, timestamp_ns: int, hash_: str
) -> StoredEntry | None:
    """The team's entry of ``stream_id`` at ``timestamp_ns`` whose :func:`line_hash` is
    ``hash_``, or ``None``."""
    select = LogSelect(team_id=team_id, start_ns=timestamp_ns, end_ns=timestamp_ns + 1)
    after = None
    while True:
        page = store.select(select, limit=PAGE_SIZE, direction="forward", after=after)
        for entry in page.entries:
            if entry.stream_id == stream_id and line_hash(entry.line) == hash_:
                return entry
        if page.after is None:
            return None
        after = page.after


def context_lines(
    store: LogStore, entry: StoredEntry, *, team_id: int, count: int, direction: Direction
) -> list[StoredEntry]:
    """Up to ``count`` lines of ``entry``'s stream next to it: older ones (``backward``,
    nearest first) or newer ones (``forward``). The store selects by the stream's labels,
    which other streams may carry too (with more labels): those lines are skipped."""
    if count <= 0:
        return []
    matchers = tuple(Matcher(name, "=", value) for name, value in entry.labels)
    end = entry.timestamp_ns + 1 if direction == "backward" else 2**63 - 1
    start = 0 if direction == "backward" else entry.timestamp_ns
    select = LogSelect(team_id=team_id, start_ns=start, end_ns=end, matchers=matchers)
    found: list[StoredEntry] = []
    after: Cursor | None = entry.cursor
    read = 0
    while after is not None and len(found) < count:
        page = store.select(select, limit=max(count, 100), direction=direction, after=after)
        read += len(page.entries)
        found += [e for e in page.entries if e.stream_id == entry.stream_id]
        if read >= MAX_SCAN:
            break
        after = page.after
    return found[:count]


__all__ = [
    "HISTOGRAM_BUCKETS",
    "MAX_SCAN",
    "Cursor",
    "Histogram",
    "Hit",
    "HitPage",
    "LogQLError",
    "LogQuery",
    "LogsQueryError",
    "Scope",
    "as_log_entry",
    "context_lines",
    "count_lines",
    "find_entry",
    "histogram_lines",
    "is_metric_query",
    "line_hash",
    "parse_query",
    "query_instant",
    "query_lines",
    "query_range",
    "search_lines",
]
