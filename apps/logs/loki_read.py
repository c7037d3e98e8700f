"""Loki's HTTP query API (``/loki/api/v1/...``) with Loki's response shapes, so Grafana's
Loki data source and Loki's own clients read the team's logs: ``query_range``, ``query``,
``labels``, ``label/<name>/values``, ``series``, ``index/stats`` and ``status/buildinfo``.

Authentication is the API's: an API token as ``Authorization: Bearer <token>`` or as the
password of HTTP Basic (what Grafana's data source sends), or a console session. The team
is the token user's (see :func:`apps.logs.params.request_team_id`); a user in several teams
picks one with the ``team`` parameter or Loki's tenant header ``X-Scope-OrgID``, which
must name one of their own teams. Errors are Loki's (Prometheus') JSON shape:
``{"status": "error", "errorType": "bad_data", "error": "parse error at line 1, col 12: ..."}``.

``/loki/api/v1/tail`` is a websocket in Loki and is not offered: the REST API's
``/api/v1/logs/tail`` streams the same lines as server-sent events.
"""

from __future__ import annotations

import math
import re
import time
from collections import defaultdict
from typing import Any

from django.conf import settings
from django.urls import path
from rest_framework import exceptions
from rest_framework.authentication import SessionAuthentication
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.accounts.authentication import ApiTokenAuthentication, BasicApiTokenAuthentication
from apps.core.digits import ascii_int
from apps.logs.logql import LogQLError, LogQuery, Query, is_metric_query, stream_matchers
from apps.logs.logql.evaluate import Series
from apps.logs.params import (
    SECOND_NS,
    ParamError,
    default_step_ns,
    now_ns,
    parse_duration_param,
    parse_time_ns,
    request_team_id,
)
from apps.logs.query import (
    LogsQueryError,
    Scope,
    count_lines,
    parse_query,
    query_lines,
    query_range,
)
from apps.logs.storage import log_store

HOUR_NS = 3600 * SECOND_NS
# What /loki/api/v1/status/buildinfo reports: the Loki API version these answers follow.
LOKI_API_VERSION = "2.9.0"
_ERROR_TYPES = {
    400: "bad_data",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "bad_data",
    413: "bad_data",
    422: "execution",
    429: "unavailable",
    503: "unavailable",
}


def _value(v: float) -> str:
    """A sample value as Prometheus prints it (Go's ``strconv.FormatFloat(v, 'f', -1)``)."""
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "+Inf" if v > 0 else "-Inf"
    if v == int(v) and abs(v) < 1e21:
        return str(int(v))
    return repr(v)


def _seconds(ns: int) -> float | int:
    whole, rest = divmod(ns, SECOND_NS)
    return whole if rest == 0 else ns / SECOND_NS


def _message(data: Any) -> str:
    """One line from the project's error body (``detail``, and a validation error's
    ``errors`` by field)."""
    if isinstance(data, dict) and "errors" in data:
        return _message(data["errors"])
    if isinstance(data, dict) and "detail" in data:
        return str(data["detail"])
    if isinstance(data, dict):
        return "; ".join(
            _message(v) if k == "non_field_errors" else f"{k}: {_message(v)}"
            for k, v in data.items()
        )
    if isinstance(data, list):
        return " ".join(_message(v) for v in data)
    return str(data)


# A sum of constant vectors, e.g. ``vector(1)+vector(1)``: what Grafana's Loki data source
# sends to test the connection (it expects 2).
_CONSTANT_TERM = re.compile(r"\s*([+-])?\s*vector\(\s*([0-9]+(?:\.[0-9]+)?)\s*\)\s*")


def _constant_vector(text: str) -> float | None:
    """The value of a sum of ``vector(<number>)`` terms, or ``None`` for anything else."""
    total, pos, first = 0.0, 0, True
    while pos < len(text):
        term = _CONSTANT_TERM.match(text, pos)
        if term is None or term.end() == pos or (term.group(1) is None and not first):
            return None
        sign = -1.0 if term.group(1) == "-" else 1.0
        total += sign * float(term.group(2))
        pos, first = term.end(), False
    return None if first else total


def _stats(started: float, returned: int) -> dict[str, Any]:
    """The part of Loki's query statistics this store knows: the time taken and how many
    entries or samples the answer holds."""
    return {
        "summary": {
            "execTime": round(time.perf_counter() - started, 6),
            "totalEntriesReturned": returned,
        }
    }


def _success(data: Any) -> Response:
    return Response({"status": "success", "data": data})


class LokiView(APIView):
    """The base of every Loki endpoint: its authentication, its error shape, and the team
    and store of the request."""

    authentication_classes = [
        ApiTokenAuthentication,
        BasicApiTokenAuthentication,
        SessionAuthentication,
    ]
    permission_classes = [IsAuthenticated]
    schema = None  # Loki's API is documented by Loki; the OpenAPI document is the REST API

    def handle_exception(self, exc: Exception) -> Response:
        if isinstance(exc, LogQLError | LogsQueryError | ParamError):
            exc = exceptions.ValidationError(str(exc))
        response = super().handle_exception(exc)
        message = _message(response.data)
        status = response.status_code
        # Loki's (Prometheus') error fields, and the project's ``detail`` every API error has.
        response.data = {
            "status": "error",
            "errorType": _ERROR_TYPES.get(status, "internal"),
            "error": message,
            "detail": message,
        }
        return response

    def param(self, name: str, default: str | None = None) -> str | None:
        value = self.request.query_params.get(name)
        if value is None and isinstance(self.request.data, dict):
            value = self.request.data.get(name)  # Grafana may POST a form
        return default if value in (None, "") else str(value)

    def scope(self) -> Scope:
        requested = self.param("team") or self.request.headers.get("X-Scope-OrgID")
        return Scope(request_team_id(user=self.request.user, requested=requested))

    def range_ns(self, *, default_span_ns: int) -> tuple[int, int]:
        end_text = self.param("end")
        end = parse_time_ns(end_text, name="end") if end_text else now_ns()
        start_text, since = self.param("start"), self.param("since")
        if start_text:
            start = parse_time_ns(start_text, name="start")
        elif since:
            start = end - parse_duration_param(since, name="since")
        else:
            start = end - default_span_ns
        if end < start:
            raise ParamError("end timestamp must not be before start time")
        return start, end

    def query(self) -> Query:
        text = self.param("query")
        if not text:
            raise ParamError("query: a LogQL query is required")
        return parse_query(text)

    def limit(self) -> int:
        text = self.param("limit", "100") or "100"
        asked = ascii_int(text)
        if asked is None or asked <= 0:
            raise ParamError(f"limit: {text!r} must be a positive integer")
        cap = int(settings.LOGS_QUERY_MAX_LIMIT)
        if asked > cap:
            raise ParamError(f"limit: at most {cap} lines per query (asked {text})")
        return asked

    def direction(self) -> str:
        direction = (self.param("direction", "backward") or "backward").lower()
        if direction not in ("backward", "forward"):
            raise ParamError(f"direction: {direction!r} is not backward or forward")
        return direction


def _streams(query: Query, view: LokiView, scope: Scope, start: int, end: int) -> Response:
    started = time.perf_counter()
    direction = view.direction()
    lines = query_lines(
        log_store(),
        query,
        scope,
        start_ns=start,
        end_ns=end,
        limit=view.limit(),
        direction=direction,  # type: ignore[arg-type]
    )
    grouped: dict[tuple[tuple[str, str], ...], list[list[str]]] = defaultdict(list)
    for line in lines:
        grouped[tuple(sorted(line.labels.items()))].append([str(line.timestamp_ns), line.line])
    result = [{"stream": dict(key), "values": values} for key, values in grouped.items()]
    stats = _stats(started, len(lines))
    return _success({"resultType": "streams", "result": result, "stats": stats})


def _matrix(series: list[Series]) -> list[dict[str, Any]]:
    return [
        {"metric": s.labels, "values": [[_seconds(t), _value(v)] for t, v in s.points]}
        for s in series
    ]


class QueryRangeView(LokiView):
    """``GET|POST /loki/api/v1/query_range``: lines of a log query grouped by stream, or
    the matrix of a metric query."""

    def get(self, request: Request) -> Response:
        query = self.query()
        start, end = self.range_ns(default_span_ns=HOUR_NS)
        scope = self.scope()
        if not is_metric_query(query):
            # Loki's range is [start, end] for logs; the store's is half-open.
            return _streams(query, self, scope, start, end + 1)
        step_text = self.param("step")
        step = (
            parse_duration_param(step_text, name="step")
            if step_text
            else default_step_ns(start, end)
        )
        started = time.perf_counter()
        series = query_range(log_store(), query, scope, start_ns=start, end_ns=end, step_ns=step)
        stats = _stats(started, sum(len(s.points) for s in series))
        return _success({"resultType": "matrix", "result": _matrix(series), "stats": stats})

    post = get


class InstantQueryView(LokiView):
    """``GET|POST /loki/api/v1/query``: a metric query's vector at ``time`` (default now);
    a log query's newest lines up to ``time`` within ``since`` (default one hour)."""

    def get(self, request: Request) -> Response:
        time_text = self.param("time")
        at = parse_time_ns(time_text, name="time") if time_text else now_ns()
        constant = _constant_vector(self.param("query") or "")
        if constant is not None:
            result = [{"metric": {}, "value": [_seconds(at), _value(constant)]}]
            return _success({"resultType": "vector", "result": result, "stats": {}})
        query = self.query()
        scope = self.scope()
        if not is_metric_query(query):
            since = self.param("since")
            span = parse_duration_param(since, name="since") if since else HOUR_NS
            return _streams(query, self, scope, at - span, at + 1)
        started = time.perf_counter()
        series = query_range(log_store(), query, scope, start_ns=at, end_ns=at, step_ns=SECOND_NS)
        result = [
            {"metric": s.labels, "value": [_seconds(t), _value(v)]}
            for s in series
            for t, v in s.points[:1]
        ]
        stats = _stats(started, len(result))
        return _success({"resultType": "vector", "result": result, "stats": stats})

    post = get


# Loki's label and series endpoints look back six hours by default.
_LABELS_SPAN_NS = 6 * HOUR_NS


class LabelsView(LokiView):
    """``GET /loki/api/v1/labels``: the label names of the team's streams in range."""

    def get(self, request: Request) -> Response:
        start, end = self.range_ns(default_span_ns=_LABELS_SPAN_NS)
        scope = self.scope()
        names = log_store().label_names(team_id=scope.team_id, start_ns=start, end_ns=end + 1)
        return _success(names)


class LabelValuesView(LokiView):
    """``GET /loki/api/v1/label/<name>/values``."""

    def get(self, request: Request, name: str) -> Response:
        start, end = self.range_ns(default_span_ns=_LABELS_SPAN_NS)
        scope = self.scope()
        values = log_store().label_values(
            team_id=scope.team_id, name=name, start_ns=start, end_ns=end + 1
        )
        return _success(values)


def _selectors(texts: list[str]) -> list[LogQuery]:
    selectors = []
    for text in texts:
        query = parse_query(text)
        if not isinstance(query, LogQuery):
            raise ParamError(f"match[]: {text!r} is a metric query, not a stream selector")
        selectors.append(query)
    return selectors


class SeriesView(LokiView):
    """``GET|POST /loki/api/v1/series?match[]=...``: the label sets of the team's streams
    matching any of the selectors."""

    def get(self, request: Request) -> Response:
        texts = request.query_params.getlist("match[]")
        if not texts and hasattr(request.data, "getlist"):
            texts = request.data.getlist("match[]")
        if not texts:
            raise ParamError("match[]: at least one stream selector is required")
        selectors = _selectors(texts)
        start, end = self.range_ns(default_span_ns=_LABELS_SPAN_NS)
        scope = self.scope()
        seen: dict[tuple[tuple[str, str], ...], None] = {}
        for selector in selectors:
            for labels in log_store().series(
                team_id=scope.team_id,
                matchers=stream_matchers(selector),
                start_ns=start,
                end_ns=end + 1,
            ):
                seen.setdefault(tuple(labels), None)
        return _success([dict(labels) for labels in seen])

    post = get


class IndexStatsView(LokiView):
    """``GET /loki/api/v1/index/stats?query=<selector>``: streams, entries and bytes in
    range (``chunks`` is Loki's storage unit, which this store has not: 0)."""

    def get(self, request: Request) -> Response:
        query = self.query()
        start, end = self.range_ns(default_span_ns=HOUR_NS)
        scope = self.scope()
        counts = count_lines(log_store(), query, scope, start_ns=start, end_ns=end + 1)
        return Response(
            {
                "streams": sum(1 for c in counts if sum(c.counts)),
                "chunks": 0,
                "entries": sum(sum(c.counts) for c in counts),
                "bytes": sum(sum(c.bytes) for c in counts),
            }
        )


class BuildInfoView(LokiView):
    """``GET /loki/api/v1/status/buildinfo``: the Loki API version these answers follow."""

    def get(self, request: Request) -> Response:
        return Response(
            {
                "version": LOKI_API_VERSION,
                "revision": "",
                "branch": "",
                "buildUser": "llm-controlplane",
                "buildDate": "",
                "goVersion": "",
            }
        )


urlpatterns = [
    path("query_range", QueryRangeView.as_view(), name="loki-query-range"),
    path("query", InstantQueryView.as_view(), name="loki-query"),
    path("labels", LabelsView.as_view(), name="loki-labels"),
    path("label/<str:name>/values", LabelValuesView.as_view(), name="loki-label-values"),
    path("series", SeriesView.as_view(), name="loki-series"),
    path("index/stats", IndexStatsView.as_view(), name="loki-index-stats"),
    path("status/buildinfo", BuildInfoView.as_view(), name="loki-buildinfo"),
]
