"""Parsing and validating Prometheus label matchers such as
``{namespace="llm", deployment=~"chat-.*"}``.

The grammar follows the PromQL documentation (https://prometheus.io/docs/prometheus/latest/
querying/basics/#time-series-selectors): ``name op "value"`` separated by commas (a trailing
comma is allowed), with the operators ``=``, ``!=``, ``=~`` and ``!~``. As in Prometheus, a
selector must have at least one matcher that does not match the empty string, or it would
select every series.

Values are PromQL string literals (https://prometheus.io/docs/prometheus/latest/querying/
basics/#string-literals), read the way Prometheus's lexer reads them:

- in double- or single-quoted strings a backslash starts a Go escape sequence: ``\\a \\b
  \\f \\n \\r \\t \\v \\\\``, the string's own quote (``\\"`` or ``\\'``), three octal digits
  (``\\101``, at most ``\\377``), ``\\x41``, ``\\u00e9`` or ``\\U0001F600``. Any other
  escape (``"\\d"``, ``"\\'"`` inside double quotes) is refused, as is a raw newline;
  ``\\x`` and octal escapes are bytes, and the string must be valid UTF-8 once they are
  applied. A regex escape is written ``"\\\\d"`` or in a raw string;
- backtick strings are raw: no escapes, newlines allowed, no backtick inside.

Regular expressions are RE2's, fully anchored (``apps.core.regex``). ``render_selector``
writes the canonical form: double quotes, with ``\\``, ``"``, newlines and other control
characters escaped, so ``parse_matchers(render_selector(ms)) == ms`` for any matchers.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from apps.core.regex import RegexError, regex_compile, regex_fullmatch

_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
_OPERATORS = ("=~", "!~", "!=", "=")
_SPACE = " \t\n\r"  # PromQL's isSpace
# Runs of characters that need no attention inside a quoted string, per quote character.
_PLAIN_RUN = {q: re.compile(r"[^\\\n" + q + "]+") for q in "\"'"}
_SIMPLE_ESCAPES = {
    "a": "\a",
    "b": "\b",
    "f": "\f",
    "n": "\n",
    "r": "\r",
    "t": "\t",
    "v": "\v",
    "\\": "\\",
}
_HEX_LENGTH = {"x": 2, "u": 4, "U": 8}
_HEX_EXAMPLE = {"x": "\\x41", "u": "\\u00e9", "U": "\\U0001f600"}
_HEX = frozenset("0123456789abcdefABCDEF")
_OCTAL = frozenset("01234567")


def _render_table() -> dict[int, str]:
    table = {ord(ch): "\\" + name for name, ch in _SIMPLE_ESCAPES.items()}
    table[ord('"')] = '\\"'
    for code in [*range(0x20), 0x7F]:
        table.setdefault(code, f"\\x{code:02x}")
    for code in range(0x80, 0xA0):  # C1 controls: invisible, so spelled out
        table[code] = f"\\u{code:04x}"
    return table


_RENDER = _render_table()


class MatcherError(ValueError):
    """The selector is malformed; the message says where and why."""


def quote_string(value: str) -> str:
    """``value`` as a double-quoted PromQL string literal that reads back as ``value``."""
    return '"' + value.translate(_RENDER) + '"'


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
        try:
            hit = regex_fullmatch(self.value, candidate)
        except RegexError:
            # Only a matcher stored before patterns were checked with RE2 gets here; it
            # matches nothing, whatever its operator, so a silence or inhibition built on it
            # mutes nothing (its matcher set fails as a whole).
            return False
        return hit if self.op == "=~" else not hit

    def render(self) -> str:
        return f"{self.name}{self.op}{quote_string(self.value)}"


def _escape(text: str, i: int, quote: str, where: int) -> tuple[bytes, int]:
    """Decode the escape sequence whose backslash is at ``text[i]``; ``where`` is its
    1-based position in the user's text. Returns the bytes and the index after it."""
    nxt = text[i + 1] if i + 1 < len(text) else ""
    if nxt in _SIMPLE_ESCAPES:
        return _SIMPLE_ESCAPES[nxt].encode(), i + 2
    if nxt == quote:
        return quote.encode(), i + 2
    if nxt in _OCTAL:
        digits = text[i + 1 : i + 4]
        if len(digits) < 3 or not set(digits) <= _OCTAL:
            raise MatcherError(f"an octal escape takes three digits (\\101) at position {where}")
        value = int(digits, 8)
        if value > 0xFF:
            raise MatcherError(f"octal escape \\{digits} above \\377 at position {where}")
        return bytes([value]), i + 4
    if nxt in _HEX_LENGTH:
        size = _HEX_LENGTH[nxt]
        digits = text[i + 2 : i + 2 + size]
        if len(digits) < size or not set(digits) <= _HEX:
            raise MatcherError(
                f"\\{nxt} takes {size} hexadecimal digits at position {where} "
                f"(e.g. {_HEX_EXAMPLE[nxt]})"
            )
        value = int(digits, 16)
        if nxt == "x":
            return bytes([value]), i + 2 + size
        if value > 0x10FFFF or 0xD800 <= value < 0xE000:
            raise MatcherError(
                f"\\{nxt}{digits} at position {where} is not a valid Unicode code point"
            )
        return chr(value).encode(), i + 2 + size
    if not nxt:
        raise MatcherError(f"escape sequence not terminated at position {where}")
    raise MatcherError(
        f"unknown escape sequence \\{nxt} at position {where}: PromQL strings know "
        "\\a \\b \\f \\n \\r \\t \\v \\\\, the string's own quote, octal, \\x, \\u and \\U; "
        "write a regex escape as \\\\d or use a `backtick` string"
    )


def _read_string(text: str, pos: int, offset: int = 0) -> tuple[str, int]:
    """Read the quoted string at ``pos``; ``offset`` maps positions back to the user's text."""
    quote = text[pos]
    if quote not in "\"'`":
        raise MatcherError(f"expected a quoted value at position {offset + pos + 1}")
    unterminated = f"unterminated string starting at position {offset + pos + 1}"
    if quote == "`":
        end = text.find("`", pos + 1)
        if end < 0:
            raise MatcherError(unterminated)
        return text[pos + 1 : end], end + 1
    plain = _PLAIN_RUN[quote]
    out = bytearray()
    i, n = pos + 1, len(text)
    while i < n:
        run = plain.match(text, i)
        if run:
            out += run.group().encode()
            i = run.end()
            continue
        ch = text[i]
        if ch == quote:
            try:
                return out.decode(), i + 1
            except UnicodeDecodeError:
                raise MatcherError(
                    f"the string starting at position {offset + pos + 1} is not valid UTF-8 "
                    "once its \\x and octal escapes are applied"
                ) from None
        if ch == "\n":
            raise MatcherError(f"{unterminated} (write a newline inside quotes as \\n)")
        if i + 1 >= n:
            break
        decoded, i = _escape(text, i, quote, offset + i + 1)
        out += decoded
    raise MatcherError(unterminated)


def _check_regex(name: str, value: str) -> None:
    try:
        regex_compile(value)
    except RegexError as exc:
        raise MatcherError(f"invalid regular expression for '{name}': {exc}") from None


def _skip_space(source: str, pos: int) -> int:
    n = len(source)
    while pos < n and source[pos] in _SPACE:
        pos += 1
    return pos


def parse_matchers(text: str, *, check_regex: bool = True) -> list[Matcher]:
    """Parse a selector, with or without the surrounding braces.

    ``check_regex=False`` skips compiling the regular expressions, for callers that only
    pass a stored selector on to Prometheus (which reports its own errors)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise MatcherError("the selector is not valid UTF-8 (lone surrogate)") from None
    source = text.strip(_SPACE)
    # Error positions count from the start of ``text``, 1-based, as the user typed it.
    offset = len(text) - len(text.lstrip(_SPACE))
    if source.startswith("{"):
        if not source.endswith("}"):
            raise MatcherError("missing closing '}'")
        source = source[1:-1]
        offset += 1
    matchers: list[Matcher] = []
    n = len(source)
    pos = 0
    while True:
        pos = _skip_space(source, pos)
        if pos >= n:
            break
        name_match = _NAME.match(source, pos)
        if not name_match:
            raise MatcherError(f"expected a label name at position {offset + pos + 1}")
        name = name_match.group()
        pos = _skip_space(source, name_match.end())
        op = next((o for o in _OPERATORS if source.startswith(o, pos)), None)
        if op is None:
            raise MatcherError(f"expected one of = != =~ !~ after '{name}'")
        pos = _skip_space(source, pos + len(op))
        if pos >= n:
            raise MatcherError(f"missing value for '{name}'")
        value, pos = _read_string(source, pos, offset)
        if check_regex and op in ("=~", "!~"):
            _check_regex(name, value)
        matchers.append(Matcher(name, op, value))
        pos = _skip_space(source, pos)
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
