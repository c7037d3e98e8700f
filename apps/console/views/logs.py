"""The Logs page: a LogQL search over a range with a histogram of the matching lines (or,
for a metric query, its chart), each line's context in its stream, and a live tail.

It reads through the same bounded query code as the REST API (:mod:`apps.logs.query`:
limits, and the refusal past ``MAX_SCAN`` lines shown as the page's message), for the team
the REST API would read (:func:`apps.logs.params.request_team_id`, via the forms). The
live tail is the REST API's server-sent events endpoint, which takes the console's
session; ``logs.js`` follows it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from django.http import HttpRequest, HttpResponse
from django.urls import reverse
from django.views.decorators.http import require_GET

from apps.logs.logql import LogQLError, Query, Series, format_query, is_metric_query
from apps.logs.params import default_step_ns
from apps.logs.query import (
    MAX_SCAN,
    LogsQueryError,
    Scope,
    context_lines,
    find_entry,
    histogram_lines,
    line_hash,
    query_range,
    search_lines,
)
from apps.logs.storage import log_store
from apps.logs.storage.base import StoredEntry

from ..forms import LOG_CONTEXT_LINES, LogContextForm, LogSearchForm
from ..selectors import chart_data
from .base import console_page, render_page

LINE_HEADERS = "Time,Level,Stream,Line,Context"
# The most series a metric query's chart draws (the largest totals), so one query
# grouping by a label with thousands of values cannot make the page unusable.
MAX_CHART_SERIES = 20
_NS = 1_000_000_000


def _moment(timestamp_ns: int) -> datetime:
    seconds, rest = divmod(timestamp_ns, _NS)
    return datetime.fromtimestamp(seconds, tz=UTC).replace(microsecond=rest // 1000)


def _level(entry: StoredEntry, labels: dict[str, str]) -> str:
    return labels.get("level") or dict(entry.metadata).get("level") or entry.severity or ""


@dataclass(frozen=True)
class LogRow:
    """One line as a row: when, its level, its stream's labels, the line, and the URL of
    its context (``None`` for the entry a context page is about)."""

    at: datetime
    level: str
    labels: list[tuple[str, str]]
    line: str
    context_url: str | None
    current: bool = False


def _context_url(entry: StoredEntry, team_id: int) -> str:
    params = {
        "team": team_id,
        "stream": entry.stream_id,
        "timestamp": entry.timestamp_ns,
        "line_hash": line_hash(entry.line),
    }
    return f"{reverse('console:logs-context')}?{urlencode(params)}"


def _row(
    entry: StoredEntry, team_id: int, labels: dict[str, str] | None = None, *, link: bool = True
) -> LogRow:
    return LogRow(
        at=_moment(entry.timestamp_ns),
        level=_level(entry, labels if labels is not None else dict(entry.labels)),
        labels=sorted(entry.labels),
        line=entry.line,
        context_url=_context_url(entry, team_id) if link else None,
        current=not link,
    )


def _series_name(series: Series) -> str:
    return "{" + ", ".join(f'{k}="{v}"' for k, v in sorted(series.labels.items())) + "}"


def _metric_chart(series: list[Series]) -> tuple[dict[str, Any], int]:
    """The chart of a metric query's series (the :data:`MAX_CHART_SERIES` largest) and how
    many series it had."""
    ranked = sorted(series, key=lambda s: -sum(v for _, v in s.points))[:MAX_CHART_SERIES]
    return chart_data(
        series={
            _series_name(s): [(t / _NS, v) for t, v in s.points]
            for s in sorted(ranked, key=_series_name)
        }
    ), len(series)


def _histogram_chart(counts: list[tuple[int, int]]) -> dict[str, Any]:
    points = [(t / _NS, float(c)) for t, c in counts]
    return {**chart_data(series={"matching lines": points}), "bars": True}


def _results(form: LogSearchForm) -> dict[str, Any]:
    """What the page shows under the form: the histogram and lines of a log query or the
    chart of a metric query, or why the query was refused."""
    if not form.is_bound or not form.is_valid():
        return {}
    data = form.cleaned_data
    query: Query = data["query"]
    scope = Scope(team_id=data["team"])
    start, end = data["start_ns"], data["end_ns"]
    store = log_store()
    context: dict[str, Any] = {"searched": True, "start": _moment(start), "end": _moment(end)}
    try:
        if is_metric_query(query):
            step = default_step_ns(start, end)
            series = query_range(
                store, query, scope, start_ns=start, end_ns=end, step_ns=step, max_scan=MAX_SCAN
            )
            chart, total = _metric_chart(series)
            return {**context, "metric": chart, "series_total": total}
        histogram = histogram_lines(
            store, query, scope, start_ns=start, end_ns=end, max_scan=MAX_SCAN
        )
        page = search_lines(
            store,
            query,
            scope,
            start_ns=start,
            end_ns=end,
            limit=data["limit"],
            direction=data["direction"],
            max_scan=MAX_SCAN,
        )
    except (LogQLError, LogsQueryError) as exc:
        return {**context, "refused": str(exc)}
    tail = {"query": format_query(query), "team": scope.team_id}
    return {
        **context,
        "histogram": _histogram_chart(histogram.counts),
        "histogram_total": histogram.total,
        "step": histogram.step_ns // _NS,
        "rows": [_row(hit.entry, scope.team_id, hit.labels) for hit in page.hits],
        "more": page.after is not None,
        "tail_url": f"{reverse('logs-tail')}?{urlencode(tail)}",
    }


@require_GET
@console_page
def logs_page(request: HttpRequest) -> HttpResponse:
    form = LogSearchForm(request.GET or None, user=request.user)
    return render_page(
        request,
        template="console/logs/page.html",
        partial="console/logs/_search.html",
        context={
            "nav": "logs",
            "form": form,
            "line_headers": LINE_HEADERS,
            "max_chart_series": MAX_CHART_SERIES,
            **_results(form),
        },
    )


def _context(form: LogContextForm) -> dict[str, Any]:
    if not form.is_valid():
        return {}
    data = form.cleaned_data
    team_id = data["team"]
    store = log_store()
    entry = find_entry(
        store,
        team_id=team_id,
        stream_id=data["stream"],
        timestamp_ns=data["timestamp"],
        hash_=data["line_hash"],
    )
    if entry is None:
        return {"missing": True}
    count = data["lines"] or LOG_CONTEXT_LINES
    older = context_lines(store, entry, team_id=team_id, count=count, direction="backward")
    newer = context_lines(store, entry, team_id=team_id, count=count, direction="forward")
    return {
        "entry": entry,
        "count": count,
        "stream_labels": sorted(entry.labels),
        "rows": [
            *(_row(e, team_id) for e in reversed(older)),
            _row(entry, team_id, link=False),
            *(_row(e, team_id) for e in newer),
        ],
    }


@require_GET
@console_page
def log_context(request: HttpRequest) -> HttpResponse:
    """The lines of one entry's stream before and after it, oldest first: its own page,
    or the fragment the Logs page loads under its table."""
    form = LogContextForm(request.GET, user=request.user)
    return render_page(
        request,
        template="console/logs/context.html",
        partial="console/logs/_context.html",
        context={
            "nav": "logs",
            "form": form,
            "context_headers": LINE_HEADERS,
            **_context(form),
        },
    )
