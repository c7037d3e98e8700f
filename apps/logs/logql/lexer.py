"""Tokens of the LogQL subset, read the way Loki's lexer reads them.

String literals are Go's, as Loki unquotes them with ``strconv.Unquote``:

- ``"..."``: a backslash starts ``\\a \\b \\f \\n \\r \\t \\v \\\\ \\"``, three octal digits
  (``\\101``, at most ``\\377``), ``\\x41``, ``\\u00e9`` or ``\\U0001F600``; any other escape and
  a raw newline are refused. A regex escape is written ``"\\\\d"`` or in a backtick string;
- ```...```: raw, no escapes, newlines allowed.

Numbers may carry a unit, which makes them durations (``250ms``, ``1h30m``, ``1.5s``,
``2d``) or sizes (``10KB``, ``1.5MiB``), and ``#`` starts a comment to the end of the line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

from .errors import LogQLError
from .units import parse_bytes, parse_duration_ns

# Kinds of token; punctuation kinds are their own text.
IDENT: Final = "identifier"
STRING: Final = "string"
NUMBER: Final = "number"
DURATION: Final = "duration"
BYTES: Final = "size"
EOF: Final = "end of input"

_PUNCTUATION = (
    "|=", "|~", "!=", "!~", "=~", "==", ">=", "<=",
    "{", "}", "(", ")", "[", "]", ",", "|", "=", ">", "<", "-", "+", "*", "/", "%", "^",
)  # fmt: skip
_SPACE = re.compile(r"(?:[ \t\r\n]+|#[^\n]*)+")
_IDENT = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
_NUMBER = re.compile(r"(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?[a-zA-Zµμ0-9.]*")
_PLAIN_NUMBER = re.compile(r"(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_ESCAPE = re.compile(r'\\(?:[0-7]{3}|x[0-9a-fA-F]{2}|u[0-9a-fA-F]{4}|U[0-9a-fA-F]{8}|[abfnrtv\\"])')
_SIMPLE = {"a": 7, "b": 8, "f": 12, "n": 10, "r": 13, "t": 9, "v": 11, "\\": 92, '"': 34}


@dataclass(frozen=True)
class Token:
    kind: str
    text: str  # as written
    offset: int  # 0-based, in characters
    value: str | float = ""  # decoded string, or the number in its base unit

    def describe(self) -> str:
        if self.kind == EOF:
            return EOF
        shown = self.text if len(self.text) <= 40 else self.text[:37] + "..."
        if self.kind in (IDENT, STRING, NUMBER, DURATION, BYTES):
            return f"{self.kind} {shown}"
        return f'"{shown}"'


def _unquote(text: str, start: int, source: str) -> tuple[str, int]:
    """Decode the double-quoted string at ``text[start]``; returns it and the end index."""
    out = bytearray()
    i = start + 1
    n = len(text)
    while i < n:
        ch = text[i]
        if ch == '"':
            try:
                return out.decode("utf-8"), i + 1
            except UnicodeDecodeError:
                raise LogQLError(
                    "invalid string: not valid UTF-8 once its \\x and octal escapes are applied",
                    text=source,
                    offset=start,
                ) from None
        if ch == "\n":
            raise LogQLError(
                "unterminated string (write a newline inside quotes as \\n)",
                text=source,
                offset=start,
            )
        if ch != "\\":
            out += ch.encode("utf-8")
            i += 1
            continue
        escape = _ESCAPE.match(text, i)
        if escape is None:
            if i + 1 >= n:
                break
            raise LogQLError(
                f"invalid string: unknown escape sequence \\{text[i + 1]} (strings know \\a \\b "
                '\\f \\n \\r \\t \\v \\\\ \\" and octal, \\x, \\u, \\U escapes; write a regex '
                "escape as \\\\d or use a `backtick` string)",
                text=source,
                offset=i,
            )
        body = escape.group()[1:]
        if body[0] in _SIMPLE:
            out.append(_SIMPLE[body[0]])
        elif body[0] == "x":
            out.append(int(body[1:], 16))
        elif body[0] in "uU":
            code = int(body[1:], 16)
            if code > 0x10FFFF or 0xD800 <= code < 0xE000:
                raise LogQLError(
                    f"invalid string: \\{body} is not a valid Unicode code point",
                    text=source,
                    offset=i,
                )
            out += chr(code).encode("utf-8")
        else:
            code = int(body, 8)
            if code > 0xFF:
                raise LogQLError(
                    f"invalid string: octal escape \\{body} is above \\377", text=source, offset=i
                )
            out.append(code)
        i = escape.end()
    raise LogQLError("unterminated string", text=source, offset=start)


def _number(text: str, offset: int, source: str) -> Token:
    if _PLAIN_NUMBER.fullmatch(text):
        return Token(NUMBER, text, offset, float(text))
    duration = parse_duration_ns(text)
    if duration is not None:
        return Token(DURATION, text, offset, float(duration))
    size = parse_bytes(text)
    if size is not None:
        return Token(BYTES, text, offset, size)
    raise LogQLError(
        f"syntax error: invalid number, duration or size {text!r} "
        "(durations: 250ms, 5m, 1h30m; sizes: 512B, 10KB, 1.5MiB)",
        text=source,
        offset=offset,
    )


def tokenize(source: str) -> list[Token]:
    """The tokens of ``source``, ending with an EOF token; raises LogQLError."""
    try:
        source.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise LogQLError(
            "the query is not valid UTF-8 (lone surrogate)", text=source, offset=exc.start
        ) from None
    tokens: list[Token] = []
    i, n = 0, len(source)
    while True:
        space = _SPACE.match(source, i)
        if space:
            i = space.end()
        if i >= n:
            tokens.append(Token(EOF, "", n))
            return tokens
        ch = source[i]
        if ch == '"':
            value, end = _unquote(source, i, source)
            tokens.append(Token(STRING, source[i:end], i, value))
        elif ch == "`":
            end = source.find("`", i + 1)
            if end < 0:
                raise LogQLError("unterminated raw string", text=source, offset=i)
            tokens.append(Token(STRING, source[i : end + 1], i, source[i + 1 : end]))
            end += 1
        elif match := _IDENT.match(source, i):
            end = match.end()
            tokens.append(Token(IDENT, match.group(), i))
        elif match := _NUMBER.match(source, i):
            end = match.end()
            tokens.append(_number(match.group(), i, source))
        else:
            punct = next((p for p in _PUNCTUATION if source.startswith(p, i)), None)
            if punct is None:
                raise LogQLError(
                    f"syntax error: unexpected character {ch!r}", text=source, offset=i
                )
            end = i + len(punct)
            tokens.append(Token(punct, punct, i))
        i = end
