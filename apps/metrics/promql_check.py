"""Static checks of a user's PromQL before it is stored: it must at least be well formed.

Prometheus itself is the parser of record; when one is reachable the serializer also asks it
to evaluate the expression and reports its error message.
"""

from __future__ import annotations

_PAIRS = {")": "(", "]": "[", "}": "{"}


class PromQLError(ValueError):
    pass


def check_promql(text: str) -> str:
    expr = text.strip()
    if not expr:
        raise PromQLError("the expression is empty")
    if len(expr) > 4000:
        raise PromQLError("the expression is longer than 4000 characters")
    stack: list[str] = []
    quote: str | None = None
    escaped = False
    for pos, ch in enumerate(expr, start=1):
        if quote:
            if escaped:
                escaped = False
            elif ch == "\\" and quote != "`":
                escaped = True
            elif ch == quote:
                quote = None
            continue
        if ch in "\"'`":
            quote = ch
        elif ch in "([{":
            stack.append(ch)
        elif ch in ")]}":
            if not stack or stack[-1] != _PAIRS[ch]:
                raise PromQLError(f"unbalanced '{ch}' at position {pos}")
            stack.pop()
    if quote:
        raise PromQLError("unterminated string")
    if stack:
        raise PromQLError(f"unclosed '{stack[-1]}'")
    return expr
