"""Parsing and validating Prometheus label matchers such as
``{namespace="llm", deployment=~"chat-.*"}``.

The grammar follows the PromQL documentation (https://prometheus.io/docs/prometheus/latest/
querying/basics/#time-series-selectors): ``name op "value"`` separated by commas, with the
operators ``=``, ``!=``, ``=~`` and ``!~``; values are double-, single- or back-quoted
strings. As in Prometheus, a selector must have at least one matcher that does not match
the empty string, or it would select every series.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
_OPERATORS = ("=~", "!~", "!=", "=")
_ESCAPES = {"n": "\n", "t": "\t", "\\": "\\", '"': '"', "'": "'", "`": "`"}


class MatcherError(ValueError):
    """The selector is malformed; the message says where and why."""


@dataclass(frozen=True)
class Matcher:
    name: str
    op: str
    value: str

    def matches(self, candidate: str) -> bool:
        if self.op == "=":
            return candidate == self.value
        if self.op == "!=":
            return candidate != self.value
        # Prometheus anchors regular expressions at both ends.
        hit = re.fullmatch(self.value, candidate) is not None
        return hit if self.op == "=~" else not hit

    def render(self) -> str:
        escaped = self.value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
        return f'{self.name}{self.op}"{escaped}"'


def _read_string(text: str, pos: int, offset: int = 0) -> tuple[str, int]:
    """Read the quoted string at ``pos``; ``offset`` maps positions back to the user's text."""
    quote = text[pos]
    if quote not in "\"'`":
        raise MatcherError(f"expected a quoted value at position {offset + pos + 1}")
    out: list[str] = []
    i = pos + 1
    while i < len(text):
        ch = text[i]
        if ch == quote:
            return "".join(out), i + 1
        if ch == "\\" and quote != "`":
            if i + 1 >= len(text):
                break
            nxt = text[i + 1]
            out.append(_ESCAPES.get(nxt, "\\" + nxt))
            i += 2
            continue
        out.append(ch)
        i += 1
    raise MatcherError(f"unterminated string starting at position {offset + pos + 1}")


def parse_matchers(text: str) -> list[Matcher]:
    """Parse a selector, with or without the surrounding braces."""
    source = text.strip()
    # Error positions count from the start of ``text``, 1-based, as the user typed it.
    offset = len(text) - len(text.lstrip())
    if source.startswith("{"):
        if not source.endswith("}"):
            raise MatcherError("missing closing '}'")
        source = source[1:-1]
        offset += 1
    matchers: list[Matcher] = []
    pos = 0
    n = len(source)
    while True:
        while pos < n and source[pos].isspace():
            pos += 1
        if pos >= n:
            break
        name_match = _NAME.match(source, pos)
        if not name_match:
            raise MatcherError(f"expected a label name at position {offset + pos + 1}")
        name = name_match.group()
        pos = name_match.end()
        while pos < n and source[pos].isspace():
            pos += 1
        op = next((o for o in _OPERATORS if source.startswith(o, pos)), None)
        if op is None:
            raise MatcherError(f"expected one of = != =~ !~ after '{name}'")
        pos += len(op)
        while pos < n and source[pos].isspace():
            pos += 1
        if pos >= n:
            raise MatcherError(f"missing value for '{name}'")
        value, pos = _read_string(source, pos, offset)
        if op in ("=~", "!~"):
            try:
                re.compile(value)
            except re.error as exc:
                raise MatcherError(f"invalid regular expression for '{name}': {exc}") from None
        matchers.append(Matcher(name, op, value))
        while pos < n and source[pos].isspace():
            pos += 1
        if pos < n:
            if source[pos] != ",":
                raise MatcherError(f"expected ',' at position {offset + pos + 1}")
            pos += 1
    return matchers


def validate_selector(text: str) -> list[Matcher]:
    """Parse and apply Prometheus's rule that a selector must not match everything."""
    matchers = parse_matchers(text)
    if not matchers:
        raise MatcherError("at least one label matcher is required")
    if all(m.matches("") for m in matchers):
        raise MatcherError(
            "at least one matcher must not match the empty string "
            '(e.g. deployment="chat"), or the selector would select every series'
        )
    names = [m.name for m in matchers if m.op == "="]
    duplicates = {n for n in names if names.count(n) > 1}
    if duplicates:
        raise MatcherError(f"label {sorted(duplicates)[0]!r} has two equality matchers")
    return matchers


def render_selector(matchers: list[Matcher]) -> str:
    return "{" + ", ".join(m.render() for m in matchers) + "}"
