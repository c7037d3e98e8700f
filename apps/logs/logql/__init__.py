"""A LogQL subset in pure Python: parser, printer and reference evaluator (docs/logs.md).

``parse`` turns a query into a typed tree or raises ``LogQLError`` naming the position;
``select_lines`` and ``evaluate_range`` evaluate a tree over entries in memory; the helpers
(``stream_matchers``, ``line_filters``, ``needs_parsers``, ``lookback_ns``) tell a storage
backend what it can select or filter itself before handing the candidates over.
"""

from .ast import (
    AndFilter,
    Grouping,
    JsonParser,
    LabelFilter,
    LineFilter,
    LogfmtParser,
    LogQuery,
    Matcher,
    MetricQuery,
    NumberFilter,
    OrFilter,
    Query,
    RangeAggregation,
    StringFilter,
    VectorAggregation,
    format_query,
)
from .errors import LogQLError, PipelineError
from .evaluate import (
    ERROR_DETAILS_LABEL,
    ERROR_LABEL,
    LogEntry,
    Pipeline,
    Sample,
    Series,
    evaluate_instant,
    evaluate_range,
    is_metric_query,
    line_filters,
    log_query,
    lookback_ns,
    needs_parsers,
    select_lines,
    stream_matchers,
)
from .parser import parse

__all__ = [
    "ERROR_DETAILS_LABEL",
    "ERROR_LABEL",
    "AndFilter",
    "Grouping",
    "JsonParser",
    "LabelFilter",
    "LineFilter",
    "LogEntry",
    "LogQLError",
    "LogQuery",
    "LogfmtParser",
    "Matcher",
    "MetricQuery",
    "NumberFilter",
    "OrFilter",
    "Pipeline",
    "PipelineError",
    "Query",
    "RangeAggregation",
    "Sample",
    "Series",
    "StringFilter",
    "VectorAggregation",
    "evaluate_instant",
    "evaluate_range",
    "format_query",
    "is_metric_query",
    "line_filters",
    "log_query",
    "lookback_ns",
    "needs_parsers",
    "parse",
    "select_lines",
    "stream_matchers",
]
