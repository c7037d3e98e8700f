"""Input and output of the REST API's log reads (``/api/v1/logs/...``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

from django.conf import settings
from rest_framework import serializers

from apps.logs.logql import LogQLError, LogQuery, Query, is_metric_query
from apps.logs.params import ParamError, parse_duration_param, parse_time_ns
from apps.logs.query import parse_query

_TIME_HELP = "Nanoseconds since the epoch, unix seconds (with a fraction) or RFC 3339."


class _ParsedField(serializers.CharField):
    """Text read by one of :mod:`apps.logs.params`' parsers into nanoseconds."""

    parse: ClassVar[Callable[..., int]]

    def to_internal_value(self, data: Any) -> int:  # type: ignore[override]
        try:
            return type(self).parse(str(data), name=self.field_name or "value")
        except ParamError as exc:
            raise serializers.ValidationError(str(exc).split(": ", 1)[-1]) from None


class TimeField(_ParsedField):
    """A time as Loki's API takes it, in nanoseconds."""

    parse = staticmethod(parse_time_ns)


class DurationField(_ParsedField):
    """``5m``, ``1h30m`` or seconds, in nanoseconds."""

    parse = staticmethod(parse_duration_param)


class LogQueryField(serializers.CharField):
    """A LogQL log query (a stream selector and its pipeline), parsed."""

    def to_internal_value(self, data: Any) -> Query:  # type: ignore[override]
        text = super().to_internal_value(data)
        try:
            query = parse_query(text)
        except LogQLError as exc:
            raise serializers.ValidationError(str(exc)) from None
        if is_metric_query(query) or not isinstance(query, LogQuery):
            raise serializers.ValidationError(
                "expected a log query (a stream selector and line filters), not a metric query"
            )
        return query


class TeamParamsSerializer(serializers.Serializer):
    team = serializers.IntegerField(
        required=False, help_text="Team to read; needed when you belong to several teams."
    )


class RangeParamsSerializer(TeamParamsSerializer):
    start = TimeField(required=False, help_text=f"Range start (default: end - 1 h). {_TIME_HELP}")
    end = TimeField(required=False, help_text=f"Range end, excluded (default: now). {_TIME_HELP}")
    since = DurationField(
        required=False, help_text="Instead of start: this long before end (e.g. 15m)."
    )

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if "start" in attrs and "since" in attrs:
            raise serializers.ValidationError({"since": ["Give start or since, not both."]})
        return attrs


class QueryParamsSerializer(RangeParamsSerializer):
    query = LogQueryField(help_text='A LogQL log query, e.g. {app="api"} |= "error".')
    deployment = serializers.IntegerField(
        required=False, help_text="Only the streams linked to this deployment of the team."
    )


class SearchParamsSerializer(QueryParamsSerializer):
    limit = serializers.IntegerField(
        required=False,
        default=100,
        min_value=1,
        help_text="Lines per page (at most LOGS_QUERY_MAX_LIMIT, 5000 by default).",
    )
    direction = serializers.ChoiceField(
        choices=["backward", "forward"],
        default="backward",
        help_text="backward: newest first; forward: oldest first.",
    )
    cursor = serializers.CharField(
        required=False, help_text="The `next` of the previous page, to continue after it."
    )

    def validate_limit(self, value: int) -> int:
        cap = int(settings.LOGS_QUERY_MAX_LIMIT)
        if value > cap:
            raise serializers.ValidationError(f"At most {cap} lines per page.")
        return value


class HistogramParamsSerializer(QueryParamsSerializer):
    step = DurationField(
        required=False, help_text="Bucket width (default: the range in about 60 buckets)."
    )


class ContextParamsSerializer(TeamParamsSerializer):
    cursor = serializers.CharField(
        required=False, help_text="An entry's `cursor` from a search result."
    )
    stream = serializers.CharField(required=False, help_text="Or: the entry's stream id ...")
    timestamp = TimeField(required=False, help_text="... its timestamp ...")
    line_hash = serializers.CharField(required=False, help_text="... and its `line_hash`.")
    before = serializers.IntegerField(
        required=False, default=10, min_value=0, max_value=1000, help_text="Older lines."
    )
    after = serializers.IntegerField(
        required=False, default=10, min_value=0, max_value=1000, help_text="Newer lines."
    )

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        named = [k for k in ("stream", "timestamp", "line_hash") if k in attrs]
        if "cursor" in attrs and named:
            raise serializers.ValidationError("Give cursor, or stream, timestamp and line_hash.")
        if "cursor" not in attrs and len(named) != 3:
            raise serializers.ValidationError(
                "Name the entry: cursor, or stream, timestamp and line_hash."
            )
        return attrs


class TailParamsSerializer(TeamParamsSerializer):
    query = LogQueryField(help_text="A LogQL log query.")
    deployment = serializers.IntegerField(required=False, help_text="Only this deployment.")
    start = TimeField(
        required=False, help_text=f"Send lines from here (default: now). {_TIME_HELP}"
    )


class LabelsParamsSerializer(RangeParamsSerializer):
    name = serializers.CharField(
        required=False, help_text="A label name: its values instead of the names."
    )


class LogEntrySerializer(serializers.Serializer):
    timestamp = serializers.CharField(help_text="Nanoseconds since the epoch (a string).")
    time = serializers.CharField(help_text="The same in RFC 3339.")
    stream = serializers.CharField(help_text="Stream id.")
    labels = serializers.DictField(
        child=serializers.CharField(), help_text="Labels after the query's pipeline."
    )
    line = serializers.CharField(help_text="The log line.")
    line_hash = serializers.CharField(help_text="Names the line with stream and timestamp.")
    deployment = serializers.IntegerField(allow_null=True, help_text="Deployment of the stream.")
    metadata = serializers.DictField(
        child=serializers.CharField(), help_text="Structured metadata."
    )
    cursor = serializers.CharField(help_text="This entry, for the context endpoint.")


class LogSearchResultSerializer(serializers.Serializer):
    results = LogEntrySerializer(many=True, help_text="Matching lines, in the direction asked.")
    next = serializers.CharField(
        allow_null=True, help_text="Cursor of the next page; null on the last one."
    )


class LogBucketSerializer(serializers.Serializer):
    start = serializers.CharField(help_text="Bucket start (ns); it covers [start, start + step).")
    count = serializers.IntegerField(help_text="Matching lines in the bucket.")


class LogHistogramSerializer(serializers.Serializer):
    query = serializers.CharField(help_text="The metric query counted.")
    start = serializers.CharField(help_text="Start of the first bucket (ns).")
    end = serializers.CharField(help_text="Start plus whole steps.")
    step = serializers.CharField(help_text="Nanoseconds.")
    total = serializers.IntegerField(help_text="Matching lines in all buckets.")
    buckets = LogBucketSerializer(many=True, help_text="Every bucket, empty ones too.")


class LogContextSerializer(serializers.Serializer):
    entry = LogEntrySerializer(help_text="The entry named.")
    before = LogEntrySerializer(many=True, help_text="Older lines, oldest first.")
    after = LogEntrySerializer(many=True, help_text="Newer lines, oldest first.")


class LogLabelsSerializer(serializers.Serializer):
    values = serializers.ListField(
        child=serializers.CharField(), help_text="Label names, or the values of one."
    )
