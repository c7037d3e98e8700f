"""Recursive-descent parser of the LogQL subset (grammar in docs/logs.md).

Errors name the place, as Loki does: ``parse error at line 1, col 12: syntax error:
unexpected }, expecting a label name``. Regular expressions are checked here, so an invalid
one is refused with the position of its string rather than at evaluation time.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar, cast, get_args

from apps.core.regex import RegexError, regex_compile

from . import lexer
from .ast import (
    RANGE_OPS,
    VECTOR_OPS,
    AndFilter,
    CompareOp,
    Grouping,
    JsonParser,
    LabelFilter,
    LabelFilterExpr,
    LineFilter,
    LineFilterOp,
    LogfmtParser,
    LogQuery,
    Matcher,
    MatchOp,
    MetricQuery,
    NumberFilter,
    NumberKind,
    OrFilter,
    Query,
    RangeAggregation,
    RangeOp,
    Stage,
    StringFilter,
    VectorAggregation,
    VectorOp,
)
from .errors import LogQLError
from .extract import parse_json_path
from .lexer import EOF, Token
from .matching import line_regex, matcher_function

_MATCH_OPS: tuple[str, ...] = get_args(MatchOp)
_LINE_FILTER_OPS: tuple[str, ...] = get_args(LineFilterOp)
_COMPARE_OPS = ("==", "!=", ">", ">=", "<", "<=", "=")
_NUMBER_KINDS: dict[str, NumberKind] = {
    lexer.NUMBER: "number",
    lexer.DURATION: "duration",
    lexer.BYTES: "bytes",
}
# Known Loki constructs outside the subset: refused by name rather than as a bare syntax error.
_UNSUPPORTED_STAGES = frozenset(
    {"line_format", "label_format", "regexp", "pattern", "unpack", "unwrap", "drop", "keep",
     "decolorize", "distinct", "ip"}
)  # fmt: skip
_UNSUPPORTED_FUNCTIONS = frozenset(
    {"sum_over_time", "avg_over_time", "max_over_time", "min_over_time", "stddev_over_time",
     "stdvar_over_time", "quantile_over_time", "first_over_time", "last_over_time",
     "absent_over_time", "rate_counter", "topk", "bottomk", "stddev", "stdvar", "sort",
     "sort_desc", "label_replace", "vector", "approx_topk"}
)  # fmt: skip
# Parentheses and aggregations nest at most this deep, and one label filter joins at most this
# many conditions: the tree is walked recursively when printed and evaluated.
MAX_DEPTH = 64
_T = TypeVar("_T")
_BINARY_OPERATORS = ("+", "-", "*", "/", "%", "^", "==", "!=", ">", ">=", "<", "<=")


class _Parser:
    def __init__(self, source: str):
        self.source = source
        self.tokens = lexer.tokenize(source)
        self.pos = 0
        self.depth = 0
        self.conditions = 0

    # --- token helpers ----------------------------------------------------------------

    @property
    def tok(self) -> Token:
        return self.tokens[self.pos]

    def peek(self, ahead: int = 1) -> Token:
        return self.tokens[min(self.pos + ahead, len(self.tokens) - 1)]

    def advance(self) -> Token:
        token = self.tok
        if token.kind != lexer.EOF:
            self.pos += 1
        return token

    def error(self, message: str, token: Token | None = None) -> LogQLError:
        token = token or self.tok
        return LogQLError(message, text=self.source, offset=token.offset)

    def unexpected(self, expecting: str, token: Token | None = None) -> LogQLError:
        token = token or self.tok
        return self.error(f"syntax error: unexpected {token.describe()}, expecting {expecting}")

    def expect(self, kind: str, expecting: str | None = None) -> Token:
        if self.tok.kind != kind:
            raise self.unexpected(expecting or repr(kind))
        return self.advance()

    def nest(self) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise self.error(f"the query is nested too deeply (more than {MAX_DEPTH} levels)")

    def parenthesized(self, inner: Callable[[], _T]) -> _T:
        """``( inner )``, the current token being the ``(``."""
        self.nest()
        self.advance()
        value = inner()
        self.expect(")", "')'")
        self.depth -= 1
        return value

    def at_word(self, word: str) -> bool:
        return self.tok.kind == lexer.IDENT and self.tok.text == word

    # --- queries ----------------------------------------------------------------------

    def parse(self) -> Query:
        if self.tok.kind == lexer.EOF:
            raise self.error("syntax error: empty query, expecting a stream selector {...}")
        query: Query = self.log_query() if self.tok.kind == "{" else self.metric_query()
        if self.tok.kind in _BINARY_OPERATORS or any(map(self.at_word, ("or", "and", "unless"))):
            raise self.error(
                f"binary operator {self.tok.text} is not supported: this LogQL subset has no "
                "arithmetic or comparison between queries"
            )
        if self.tok.kind != lexer.EOF:
            log = isinstance(query, LogQuery)
            raise self.unexpected("end of input or a pipeline stage" if log else EOF)
        return query

    def metric_query(self) -> MetricQuery:
        token = self.tok
        if token.kind == "(":
            return self.parenthesized(self.metric_query)
        if token.kind != lexer.IDENT:
            raise self.unexpected("a stream selector {...} or a function such as count_over_time")
        if token.text in RANGE_OPS:
            return self.range_aggregation()
        if token.text in VECTOR_OPS:
            return self.vector_aggregation()
        if token.text in _UNSUPPORTED_FUNCTIONS:
            raise self.error(
                f"function {token.text} is not supported (supported: "
                f"{', '.join((*RANGE_OPS, *VECTOR_OPS))})"
            )
        raise self.unexpected("a stream selector {...} or a function such as count_over_time")

    def range_aggregation(self) -> RangeAggregation:
        op = cast(RangeOp, self.advance().text)
        self.expect("(", "'(' after " + op)
        if self.tok.kind == "(":
            # count_over_time(({app="a"} |= "x")[5m])
            self.advance()
            query = self.log_query()
            self.expect(")", "')'")
            range_ns = self.range()
        else:
            selector = self.selector()
            stages = self.pipeline()
            range_ns = self.range()
            # Loki also takes the range right after the selector: {app="a"}[5m] |= "x".
            if not stages:
                stages = self.pipeline()
            query = LogQuery(selector, tuple(stages))
        if self.at_word("offset"):
            raise self.error("offset modifiers are not supported")
        if self.tok.kind == ",":
            raise self.error(f"{op} takes no parameter")
        self.expect(")", f"')' closing {op}")
        if self.at_word("by") or self.at_word("without"):
            raise self.error(
                f"{op} takes no grouping; group with an aggregation: sum by (...) ({op}(...))"
            )
        return RangeAggregation(op, query, range_ns)

    def range(self) -> int:
        if self.tok.kind != "[":
            raise self.unexpected("a range such as [5m] (a metric query needs a range)")
        self.advance()
        token = self.tok
        if token.kind != lexer.DURATION:
            raise self.unexpected("a duration such as 5m")
        self.advance()
        self.expect("]", "']'")
        range_ns = int(token.value)
        if range_ns <= 0:
            raise self.error("the range must be longer than zero", token)
        return range_ns

    def vector_aggregation(self) -> VectorAggregation:
        op = cast(VectorOp, self.advance().text)
        grouping = self.grouping()
        if self.tok.kind != "(":
            raise self.unexpected(f"'(' after {op}")
        self.advance()
        if self.tok.kind == "{":
            raise self.error(f"{op} aggregates a metric query such as count_over_time(...[5m])")
        self.nest()
        inner = self.metric_query()
        self.depth -= 1
        if self.tok.kind == ",":
            raise self.error(f"{op} takes one argument")
        self.expect(")", f"')' closing {op}")
        second = self.tok
        after = self.grouping()
        if after is not None:
            if grouping is not None:
                raise self.error(
                    "the grouping is given twice, before and after the argument", second
                )
            grouping = after
        return VectorAggregation(op, inner, grouping)

    def grouping(self) -> Grouping | None:
        if not (self.at_word("by") or self.at_word("without")):
            return None
        without = self.advance().text == "without"
        self.expect("(", "'(' and label names")
        labels: list[str] = []
        while self.tok.kind != ")":
            labels.append(self.expect(lexer.IDENT, "a label name").text)
            if self.tok.kind == ",":
                self.advance()
            elif self.tok.kind != ")":
                raise self.unexpected("',' or ')'")
        self.advance()
        return Grouping(without, tuple(labels))

    # --- log queries ------------------------------------------------------------------

    def log_query(self) -> LogQuery:
        selector = self.selector()
        return LogQuery(selector, tuple(self.pipeline()))

    def selector(self) -> tuple[Matcher, ...]:
        start = self.expect("{", "a stream selector {...}")
        matchers = [self.matcher()]
        while self.tok.kind == ",":
            self.advance()
            matchers.append(self.matcher())
        self.expect("}", "',' or '}'")
        if all(_matches_empty(m) for m in matchers):
            raise self.error(
                "queries require at least one regexp or equality matcher that does not have an "
                'empty-compatible value. For instance, app=~".*" does not meet this requirement, '
                'but app=~".+" will',
                start,
            )
        return tuple(matchers)

    def matcher(self) -> Matcher:
        name = self.expect(lexer.IDENT, "a label name").text
        if self.tok.kind not in _MATCH_OPS:
            raise self.unexpected("one of = != =~ !~")
        op = cast(MatchOp, self.advance().kind)
        value = self.string()
        if op in ("=~", "!~"):
            self.check_regex(value, regex_compile)
        return Matcher(name, op, str(value.value))

    def string(self) -> Token:
        if self.tok.kind != lexer.STRING:
            raise self.unexpected('a string in "double quotes" or `backticks`')
        return self.advance()

    def check_regex(self, token: Token, compile_pattern: Callable[[str], object]) -> None:
        try:
            compile_pattern(str(token.value))
        except RegexError as exc:
            raise self.error(f"invalid regular expression {token.text}: {exc}", token) from None

    def pipeline(self) -> list[Stage]:
        stages: list[Stage] = []
        while True:
            kind = self.tok.kind
            if kind in _LINE_FILTER_OPS:
                self.advance()
                value = self.string()
                if kind in ("|~", "!~"):
                    self.check_regex(value, line_regex)
                if self.at_word("or") and self.peek().kind == lexer.STRING:
                    raise self.error(
                        'alternatives in a line filter (|= "a" or "b") are not supported; '
                        'use a regular expression: |~ "a|b"'
                    )
                stages.append(LineFilter(cast(LineFilterOp, kind), str(value.value)))
            elif kind == "|":
                self.advance()
                stages.append(self.pipe_stage())
            else:
                return stages

    def pipe_stage(self) -> Stage:
        token = self.tok
        self.conditions = 0
        if token.kind == "(":
            return LabelFilter(self.label_filter_or())
        if token.kind != lexer.IDENT:
            raise self.unexpected("a parser (json, logfmt) or a label filter")
        # "| json != ..." is the parser and a line filter, as in Loki; with any other operator
        # a parser's name is a label name ("| json = ..."). Line filters take != and !~.
        nxt = self.peek().kind
        if token.text in ("json", "logfmt") and nxt not in ("=", "==", ">", ">=", "<", "<=", "=~"):
            self.advance()
            if token.text == "logfmt":
                if self.tok.kind == "-" or self.at_word_param():
                    raise self.error("logfmt takes no parameters or flags in this subset")
                return LogfmtParser()
            return JsonParser(tuple(self.json_params()))
        if token.text in _UNSUPPORTED_STAGES and nxt not in (*_COMPARE_OPS, "=~", "!~"):
            raise self.error(
                f"pipeline stage {token.text} is not supported (supported: line filters, json, "
                "logfmt and label filters)"
            )
        return LabelFilter(self.label_filter_or())

    def at_word_param(self) -> bool:
        return self.tok.kind == lexer.IDENT and self.peek().kind in ("=", ",")

    def json_params(self) -> list[tuple[str, str]]:
        params: list[tuple[str, str]] = []
        if self.tok.kind != lexer.IDENT or self.peek().kind != "=":
            return params
        while True:
            label = self.expect(lexer.IDENT, "a label name").text
            self.expect("=", "'=' and a JSON path")
            path = self.string()
            try:
                parse_json_path(str(path.value))
            except ValueError as exc:
                raise self.error(f"invalid JSON path {path.text}: {exc}", path) from None
            params.append((label, str(path.value)))
            if self.tok.kind != ",":
                return params
            self.advance()

    # --- label filters: "or" binds loosest, then "and" (or ","); both group left --------

    def label_filter_or(self) -> LabelFilterExpr:
        expr = self.label_filter_and()
        while self.at_word("or"):
            self.advance()
            expr = OrFilter(expr, self.label_filter_and())
        return expr

    def label_filter_and(self) -> LabelFilterExpr:
        expr = self.label_filter_primary()
        while True:
            if self.at_word("and") or self.tok.kind == ",":
                self.advance()
            elif not (self.tok.kind == lexer.IDENT and self.tok.text != "or"):
                return expr
            # A space also means "and", as in Loki: | level="error" status>=500
            expr = AndFilter(expr, self.label_filter_primary())

    def label_filter_primary(self) -> LabelFilterExpr:
        if self.tok.kind == "(":
            return self.parenthesized(self.label_filter_or)
        self.conditions += 1
        if self.conditions > MAX_DEPTH:
            raise self.error(
                f"a label filter joins at most {MAX_DEPTH} conditions; split it with |"
            )
        name = self.expect(lexer.IDENT, "a label name").text
        op_token = self.tok
        if op_token.kind not in (*_COMPARE_OPS, "=~", "!~"):
            raise self.unexpected("one of = != =~ !~ > >= < <= ==")
        self.advance()
        negative = False
        if self.tok.kind == "-":
            negative = True
            self.advance()
        value = self.tok
        if value.kind == lexer.STRING and not negative:
            if op_token.kind not in _MATCH_OPS:
                raise self.error(
                    f"{op_token.kind} compares numbers, durations or sizes, not strings", value
                )
            self.advance()
            if op_token.kind in ("=~", "!~"):
                self.check_regex(value, regex_compile)
            return StringFilter(Matcher(name, cast(MatchOp, op_token.kind), str(value.value)))
        if value.kind not in _NUMBER_KINDS:
            raise self.unexpected(
                "a string, a number, a duration (10s) or a size (5KB)"
                if op_token.kind in ("=", "!=")
                else "a number, a duration (10s) or a size (5KB)"
            )
        if op_token.kind in ("=~", "!~"):
            raise self.error(f"{op_token.kind} takes a string (a regular expression)", value)
        self.advance()
        op = cast(CompareOp, "==" if op_token.kind == "=" else op_token.kind)
        sign = -1 if negative else 1
        literal = ("-" if negative else "") + value.text
        return NumberFilter(name, op, _NUMBER_KINDS[value.kind], sign * float(value.value), literal)


def _matches_empty(matcher: Matcher) -> bool:
    return matcher_function(matcher)("")


def parse(query: str) -> Query:
    """The tree of ``query``; raises LogQLError naming the position of the problem."""
    return _Parser(query).parse()
