"""The typed syntax tree of the LogQL subset, and its printer.

Every node is a frozen dataclass, so two parses of the same text compare equal and a node can
be used as a cache key. ``format_query`` writes the canonical text of a tree;
``parse(format_query(tree)) == tree`` holds for every tree the parser can produce.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

MatchOp = Literal["=", "!=", "=~", "!~"]
LineFilterOp = Literal["|=", "!=", "|~", "!~"]
CompareOp = Literal["==", "!=", ">", ">=", "<", "<="]
NumberKind = Literal["number", "duration", "bytes"]
RangeOp = Literal["count_over_time", "rate", "bytes_over_time", "bytes_rate"]
VectorOp = Literal["sum", "count", "min", "max", "avg"]

RANGE_OPS: tuple[RangeOp, ...] = ("count_over_time", "rate", "bytes_over_time", "bytes_rate")
VECTOR_OPS: tuple[VectorOp, ...] = ("sum", "count", "min", "max", "avg")


@dataclass(frozen=True)
class Matcher:
    """A stream selector matcher or a string label filter: ``name op "value"``."""

    name: str
    op: MatchOp
    value: str


@dataclass(frozen=True)
class LineFilter:
    """``|= "s"`` (contains), ``!= "s"`` (does not contain), ``|~ "re"``, ``!~ "re"``."""

    op: LineFilterOp
    value: str

    @property
    def is_regex(self) -> bool:
        return self.op in ("|~", "!~")

    @property
    def negated(self) -> bool:
        return self.op in ("!=", "!~")


@dataclass(frozen=True)
class JsonParser:
    """``| json`` (every field, flattened) or ``| json label="path", ...`` (those paths)."""

    params: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class LogfmtParser:
    """``| logfmt``."""


@dataclass(frozen=True)
class StringFilter:
    """``| name op "value"``: compares the label's text (a missing label reads as "")."""

    matcher: Matcher


@dataclass(frozen=True)
class NumberFilter:
    """``| name op literal``: the label converted to a number, a duration or a size.

    ``value`` is in the literal's base unit (nanoseconds for durations, bytes for sizes);
    ``literal`` is the text as written, kept so the query prints back as typed."""

    name: str
    op: CompareOp
    kind: NumberKind
    value: float
    literal: str


@dataclass(frozen=True)
class AndFilter:
    left: LabelFilterExpr
    right: LabelFilterExpr


@dataclass(frozen=True)
class OrFilter:
    left: LabelFilterExpr
    right: LabelFilterExpr


LabelFilterExpr = StringFilter | NumberFilter | AndFilter | OrFilter


@dataclass(frozen=True)
class LabelFilter:
    """A pipeline stage ``| <label filter expression>``."""

    expr: LabelFilterExpr


Stage = LineFilter | JsonParser | LogfmtParser | LabelFilter


@dataclass(frozen=True)
class LogQuery:
    """``{selector} stage stage ...``: the stages run in order on each entry."""

    selector: tuple[Matcher, ...]
    stages: tuple[Stage, ...] = ()


@dataclass(frozen=True)
class RangeAggregation:
    """``op(<log query> [range])``: over each window ``(t - range, t]``."""

    op: RangeOp
    query: LogQuery
    range_ns: int


@dataclass(frozen=True)
class Grouping:
    """``by (a, b)`` keeps only those labels, ``without (a, b)`` drops them."""

    without: bool
    labels: tuple[str, ...]


@dataclass(frozen=True)
class VectorAggregation:
    op: VectorOp
    inner: MetricQuery
    grouping: Grouping | None = None


MetricQuery = RangeAggregation | VectorAggregation
Query = LogQuery | MetricQuery


# --- printing -----------------------------------------------------------------------------

_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def quote(value: str) -> str:
    """``value`` as a double-quoted LogQL string literal that reads back as ``value``."""
    out = []
    for ch in value:
        if ch in _ESCAPES:
            out.append(_ESCAPES[ch])
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\x{ord(ch):02x}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


_DURATION_UNITS = (
    ("d", 86_400_000_000_000),
    ("h", 3_600_000_000_000),
    ("m", 60_000_000_000),
    ("s", 1_000_000_000),
    ("ms", 1_000_000),
    ("us", 1_000),
    ("ns", 1),
)


def format_duration(ns: int) -> str:
    """``5400000000000`` -> ``"1h30m"``: largest units first, as Prometheus prints."""
    if ns <= 0:
        return "0s"
    parts = []
    for unit, size in _DURATION_UNITS:
        count, ns = divmod(ns, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)


def format_matcher(matcher: Matcher) -> str:
    return f"{matcher.name}{matcher.op}{quote(matcher.value)}"


def format_selector(matchers: tuple[Matcher, ...]) -> str:
    return "{" + ", ".join(format_matcher(m) for m in matchers) + "}"


def _format_label_filter(expr: LabelFilterExpr, parent: str = "", right: bool = False) -> str:
    if isinstance(expr, StringFilter):
        return format_matcher(expr.matcher)
    if isinstance(expr, NumberFilter):
        return f"{expr.name} {expr.op} {expr.literal}"
    word = "and" if isinstance(expr, AndFilter) else "or"
    # "and" binds tighter than "or", and both group to the left: parentheses are written
    # where the tree differs from that reading, so the text parses back to the same tree.
    text = (
        f"{_format_label_filter(expr.left, word)} {word} "
        f"{_format_label_filter(expr.right, word, right=True)}"
    )
    return f"({text})" if right or (parent == "and" and word == "or") else text


def _format_stage(stage: Stage) -> str:
    if isinstance(stage, LineFilter):
        return f"{stage.op} {quote(stage.value)}"
    if isinstance(stage, JsonParser):
        if not stage.params:
            return "| json"
        return "| json " + ", ".join(f"{label}={quote(path)}" for label, path in stage.params)
    if isinstance(stage, LogfmtParser):
        return "| logfmt"
    text = _format_label_filter(stage.expr)
    leftmost = stage.expr
    while isinstance(leftmost, AndFilter | OrFilter):
        leftmost = leftmost.left
    name = leftmost.matcher.name if isinstance(leftmost, StringFilter) else leftmost.name
    # "| json != ..." reads as the parser and a line filter: parentheses keep it a label filter.
    return f"| ({text})" if name in ("json", "logfmt") else f"| {text}"


def format_query(query: Query) -> str:
    """The canonical text of ``query``."""
    if isinstance(query, LogQuery):
        return " ".join([format_selector(query.selector), *map(_format_stage, query.stages)])
    if isinstance(query, RangeAggregation):
        return f"{query.op}({format_query(query.query)} [{format_duration(query.range_ns)}])"
    grouping = ""
    if query.grouping is not None:
        word = "without" if query.grouping.without else "by"
        grouping = f" {word} ({', '.join(query.grouping.labels)}) "
    return f"{query.op}{grouping}({format_query(query.inner)})"
