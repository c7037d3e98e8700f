"""The REST API's log reads, under ``/api/v1/logs/``: ``search`` (cursor paging),
``histogram`` (matching lines per interval), ``context`` (lines around one entry),
``labels`` and ``tail`` (server-sent events). The team is the caller's
(:func:`apps.logs.params.request_team_id`)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from django.conf import settings
from django.http import StreamingHttpResponse
from django.urls import re_path
from drf_spectacular.utils import OpenApiResponse, OpenApiTypes, extend_schema
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.logs import read_serializers as s
from apps.logs.logql import LogQLError, Query, format_query
from apps.logs.params import (
    SECOND_NS,
    ParamError,
    decode_cursor,
    encode_cursor,
    now_ns,
    request_team_id,
    team_deployment_id,
)
from apps.logs.query import (
    Cursor,
    LogsQueryError,
    Scope,
    context_lines,
    find_entry,
    histogram_lines,
    line_hash,
    search_lines,
)
from apps.logs.storage import log_store
from apps.logs.storage.base import StoredEntry

HOUR_NS = 3600 * SECOND_NS


def _params(serializer_class: type[s.TeamParamsSerializer], request: Request) -> dict[str, Any]:
    serializer = serializer_class(data=request.query_params)
    serializer.is_valid(raise_exception=True)
    return dict(serializer.validated_data)


def _range(params: dict[str, Any]) -> tuple[int, int]:
    end = params.get("end", now_ns())
    if "since" in params:
        start = end - params["since"]
    else:
        start = params.get("start", end - HOUR_NS)
    if end <= start:
        raise ValidationError({"end": ["The end must be after the start."]})
    return start, end


def _scope(request: Request, params: dict[str, Any]) -> Scope:
    team_id = request_team_id(user=request.user, requested=params.get("team"))
    deployment = team_deployment_id(team_id=team_id, requested=params.get("deployment"))
    return Scope(team_id, deployment)


def _entry(entry: StoredEntry, labels: dict[str, str] | None = None) -> dict[str, Any]:
    seconds, rest = divmod(entry.timestamp_ns, SECOND_NS)
    moment = datetime.fromtimestamp(seconds, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return {
        "timestamp": str(entry.timestamp_ns),
        "time": f"{moment}.{rest:09d}Z",
        "stream": entry.stream_id,
        "labels": labels if labels is not None else dict(entry.labels),
        "line": entry.line,
        "line_hash": line_hash(entry.line),
        "deployment": entry.deployment_id,
        "metadata": dict(entry.metadata),
        "cursor": encode_cursor(entry.cursor, "forward"),
    }


def _refused(exc: Exception, field: str = "query") -> ValidationError:
    return ValidationError({field: [str(exc)]})


class LogsView(APIView):
    def handle_exception(self, exc: Exception) -> Response:
        if isinstance(exc, LogQLError | LogsQueryError):
            exc = _refused(exc)
        elif isinstance(exc, ParamError):
            exc = ValidationError(str(exc))
        return super().handle_exception(exc)


def _resume(scope: Scope, token: str, direction: str) -> Cursor:
    cursor_direction, timestamp, stream_id, hash_ = decode_cursor(token)
    if cursor_direction != direction:
        raise ValidationError({"cursor": [f"This cursor continues a {cursor_direction} search."]})
    entry = find_entry(
        log_store(), team_id=scope.team_id, stream_id=stream_id, timestamp_ns=timestamp, hash_=hash_
    )
    if entry is None:
        raise ValidationError({"cursor": ["The line this cursor points after is gone."]})
    return entry.cursor


class SearchView(LogsView):
    """Lines matching a LogQL log query, a page at a time."""

    @extend_schema(parameters=[s.SearchParamsSerializer], responses=s.LogSearchResultSerializer)
    def get(self, request: Request) -> Response:
        params = _params(s.SearchParamsSerializer, request)
        scope = _scope(request, params)
        start, end = _range(params)
        direction = params["direction"]
        after = _resume(scope, params["cursor"], direction) if "cursor" in params else None
        page = search_lines(
            log_store(),
            params["query"],
            scope,
            start_ns=start,
            end_ns=end,
            limit=params["limit"],
            direction=direction,
            after=after,
        )
        return Response(
            {
                "results": [_entry(hit.entry, hit.labels) for hit in page.hits],
                "next": encode_cursor(page.after, direction) if page.after else None,
            }
        )


class HistogramView(LogsView):
    """How many lines match a log query per interval: ``sum(count_over_time(<query>
    [step]))`` at each step, counted from the store's buckets when the query allows."""

    @extend_schema(parameters=[s.HistogramParamsSerializer], responses=s.LogHistogramSerializer)
    def get(self, request: Request) -> Response:
        params = _params(s.HistogramParamsSerializer, request)
        scope = _scope(request, params)
        start, end = _range(params)
        histogram = histogram_lines(
            log_store(),
            params["query"],
            scope,
            start_ns=start,
            end_ns=end,
            step_ns=params.get("step"),
        )
        return Response(
            {
                "query": format_query(histogram.query),
                "start": str(histogram.start_ns),
                "end": str(histogram.end_ns),
                "step": str(histogram.step_ns),
                "total": histogram.total,
                "buckets": [{"start": str(t), "count": c} for t, c in histogram.counts],
            }
        )


class ContextView(LogsView):
    """Lines of one entry's stream before and after it."""

    @extend_schema(parameters=[s.ContextParamsSerializer], responses=s.LogContextSerializer)
    def get(self, request: Request) -> Response:
        params = _params(s.ContextParamsSerializer, request)
        scope = _scope(request, params)
        if "cursor" in params:
            _, timestamp, stream_id, hash_ = decode_cursor(params["cursor"])
        else:
            timestamp, stream_id, hash_ = params["timestamp"], params["stream"], params["line_hash"]
        store = log_store()
        entry = find_entry(
            store, team_id=scope.team_id, stream_id=stream_id, timestamp_ns=timestamp, hash_=hash_
        )
        if entry is None:
            raise ValidationError("No such entry in your team's logs.")
        older = context_lines(
            store, entry, team_id=scope.team_id, count=params["before"], direction="backward"
        )
        newer = context_lines(
            store, entry, team_id=scope.team_id, count=params["after"], direction="forward"
        )
        return Response(
            {
                "entry": _entry(entry),
                "before": [_entry(e) for e in reversed(older)],
                "after": [_entry(e) for e in newer],
            }
        )


class LabelsView(LogsView):
    """Label names of the team's streams in range, or one label's values (``name``)."""

    @extend_schema(parameters=[s.LabelsParamsSerializer], responses=s.LogLabelsSerializer)
    def get(self, request: Request) -> Response:
        params = _params(s.LabelsParamsSerializer, request)
        team_id = request_team_id(user=request.user, requested=params.get("team"))
        start, end = _range(params)
        store = log_store()
        if params.get("name"):
            values = store.label_values(
                team_id=team_id, name=params["name"], start_ns=start, end_ns=end
            )
        else:
            values = store.label_names(team_id=team_id, start_ns=start, end_ns=end)
        return Response({"values": values})


def _event(name: str, data: dict[str, Any]) -> str:
    return f"event: {name}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


def tail_events(query: Query, scope: Scope, start_ns: int) -> Iterator[str]:
    """Server-sent events: each new matching line (oldest first) as it is stored, polling
    the store every ``LOGS_TAIL_POLL_S``; a comment as heartbeat when nothing came for
    ``LOGS_TAIL_HEARTBEAT_S``; an ``end`` event after ``LOGS_TAIL_MAX_S``. Lines stored
    later with a timestamp before the newest one sent are not sent (as in Loki's tail)."""
    poll = float(settings.LOGS_TAIL_POLL_S)
    heartbeat = float(settings.LOGS_TAIL_HEARTBEAT_S)
    deadline = time.monotonic() + float(settings.LOGS_TAIL_MAX_S)
    limit = int(settings.LOGS_QUERY_MAX_LIMIT)
    after: Cursor | None = None
    yield "retry: 1000\n" + _event("open", {"start": str(start_ns)})
    quiet_since = time.monotonic()
    while time.monotonic() < deadline:
        try:
            page = search_lines(
                log_store(),
                query,
                scope,
                start_ns=start_ns,
                end_ns=2**63 - 1,
                limit=limit,
                direction="forward",
                after=after,
            )
        except LogsQueryError as exc:
            yield _event("error", {"detail": str(exc)})
            return
        for hit in page.hits:
            yield _event("line", _entry(hit.entry, hit.labels))
        if page.hits:
            after = page.hits[-1].entry.cursor
            quiet_since = time.monotonic()
            if page.after is not None:
                continue  # more are waiting: no sleep
        elif time.monotonic() - quiet_since >= heartbeat:
            yield ": heartbeat\n\n"
            quiet_since = time.monotonic()
        time.sleep(poll)
    yield _event("end", {"reason": "the stream's time is up; reconnect to go on"})


class TailView(LogsView):
    """New lines matching a log query as server-sent events (``text/event-stream``)."""

    def perform_content_negotiation(self, request: Request, force: bool = False) -> Any:
        # A browser's EventSource accepts only text/event-stream, which no DRF renderer
        # offers: the stream is written as is, and a refusal before it goes out as JSON.
        return super().perform_content_negotiation(request, force=True)

    @extend_schema(
        parameters=[s.TailParamsSerializer],
        responses={(200, "text/event-stream"): OpenApiResponse(OpenApiTypes.STR)},
    )
    def get(self, request: Request) -> StreamingHttpResponse:
        params = _params(s.TailParamsSerializer, request)
        scope = _scope(request, params)
        start = params.get("start", now_ns())
        response = StreamingHttpResponse(
            tail_events(params["query"], scope, start), content_type="text/event-stream"
        )
        response["Cache-Control"] = "no-cache"
        response["X-Accel-Buffering"] = "no"  # nginx: pass each event on as it comes
        return response


urlpatterns = [
    re_path(r"^search/?$", SearchView.as_view(), name="logs-search"),
    re_path(r"^histogram/?$", HistogramView.as_view(), name="logs-histogram"),
    re_path(r"^context/?$", ContextView.as_view(), name="logs-context"),
    re_path(r"^labels/?$", LabelsView.as_view(), name="logs-labels"),
    re_path(r"^tail/?$", TailView.as_view(), name="logs-tail"),
]
