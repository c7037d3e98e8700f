"""Loki's stream label text: `{name="value", other="v2"}` as Prometheus prints a label set.

The protobuf push carries each stream's labels as this text. The parser reads what Loki's
selector syntax allows with `=` matchers only: names `[a-zA-Z_][a-zA-Z0-9_]*`, values in double
quotes with Go's escapes (`\\a \\b \\f \\n \\r \\t \\v \\\\ \\"`, `\\xHH` and `\\OOO` bytes,
`\\uHHHH`, `\\UHHHHHHHH`) or in backquotes (raw, carriage returns dropped as Go does), pairs
separated by commas, white space around tokens. The bytes a value spells must be UTF-8.
"""

from __future__ import annotations

import re

_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
_SPACE = re.compile(r"[ \t\r\n]*")
_PLAIN = re.compile(r'[^"\\\n]+')
_SIMPLE = {"a": 7, "b": 8, "f": 12, "n": 10, "r": 13, "t": 9, "v": 11, "\\": 92, '"': 34}
_HEX = frozenset("0123456789abcdefABCDEF")
# What the printer escapes: the quote and backslash, and every character that is not printable.
_PRINT_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t"}


class LabelSyntaxError(ValueError):
    def __init__(self, reason: str, offset: int) -> None:
        self.reason = reason
        self.offset = offset
        super().__init__(f"{reason} at offset {offset}")


def parse_labels(text: str) -> list[tuple[str, str]]:
    """The (name, value) pairs of `text` in the order written. Raises LabelSyntaxError naming
    the offset (in characters) of the first problem, including a name given twice."""
    pairs: list[tuple[str, str]] = []
    seen: set[str] = set()
    pos = _skip(text, 0)
    if not text.startswith("{", pos):
        raise LabelSyntaxError("expected '{'", pos)
    pos = _skip(text, pos + 1)
    if text.startswith("}", pos):
        pos += 1
    else:
        while True:
            match = _NAME.match(text, pos)
            if match is None:
                raise LabelSyntaxError("expected a label name", pos)
            name = match.group()
            if name in seen:
                raise LabelSyntaxError(f"label name {name!r} given twice", pos)
            seen.add(name)
            pos = _skip(text, match.end())
            if not text.startswith("=", pos) or text.startswith("=~", pos):
                raise LabelSyntaxError(f"expected '=' after {name!r} (only = is allowed)", pos)
            pos = _skip(text, pos + 1)
            value, pos = _string(text, pos)
            pairs.append((name, value))
            pos = _skip(text, pos)
            if text.startswith(",", pos):
                pos = _skip(text, pos + 1)
                continue
            if text.startswith("}", pos):
                pos += 1
                break
            raise LabelSyntaxError("expected ',' or '}'", pos)
    pos = _skip(text, pos)
    if pos != len(text):
        raise LabelSyntaxError("unexpected text after '}'", pos)
    return pairs


def format_labels(pairs: tuple[tuple[str, str], ...] | list[tuple[str, str]]) -> str:
    """The canonical text of a label set: sorted by name, `, ` between pairs, values in
    double quotes with `\\\\`, `\\"`, `\\n`, `\\r`, `\\t` and `\\u`/`\\U` escapes for every other
    character that is not printable. `parse_labels` reads it back to the same pairs."""
    inner = ", ".join(f'{name}="{_quote(value)}"' for name, value in sorted(pairs))
    return "{" + inner + "}"


def _quote(value: str) -> str:
    if value.isprintable() and '"' not in value and "\\" not in value:
        return value
    out = []
    for char in value:
        if char in _PRINT_ESCAPES:
            out.append(_PRINT_ESCAPES[char])
        elif char.isprintable():
            out.append(char)
        elif ord(char) <= 0xFFFF:
            out.append(f"\\u{ord(char):04x}")
        else:
            out.append(f"\\U{ord(char):08x}")
    return "".join(out)


def _skip(text: str, pos: int) -> int:
    match = _SPACE.match(text, pos)
    return match.end() if match else pos


def _string(text: str, pos: int) -> tuple[str, int]:
    if text.startswith("`", pos):
        end = text.find("`", pos + 1)
        if end < 0:
            raise LabelSyntaxError("unterminated `string`", pos)
        return text[pos + 1 : end].replace("\r", ""), end + 1
    if not text.startswith('"', pos):
        raise LabelSyntaxError("expected a quoted value", pos)
    start = pos
    pos += 1
    out = bytearray()
    while True:
        if pos >= len(text):
            raise LabelSyntaxError('unterminated "string"', start)
        char = text[pos]
        if char == '"':
            pos += 1
            break
        if char == "\n":
            raise LabelSyntaxError("newline in a quoted value (write \\n)", pos)
        if char != "\\":
            run = _PLAIN.match(text, pos)
            assert run is not None  # `char` itself is plain
            out += run.group().encode("utf-8", "surrogatepass")
            pos = run.end()
            continue
        pos = _escape(text, pos, out)
    try:
        return out.decode("utf-8"), pos
    except UnicodeDecodeError as error:
        raise LabelSyntaxError(
            f"the value's escapes spell bytes that are not UTF-8 (byte {error.start})", start
        ) from None


def _escape(text: str, pos: int, out: bytearray) -> int:
    """Appends the escape at `pos` (a backslash) to `out`; returns the position after it."""
    kind = text[pos + 1 : pos + 2]
    if kind in _SIMPLE:
        out.append(_SIMPLE[kind])
        return pos + 2
    if kind in ("x", "u", "U"):
        digits = {"x": 2, "u": 4, "U": 8}[kind]
        hex_text = text[pos + 2 : pos + 2 + digits]
        if len(hex_text) != digits or not set(hex_text) <= _HEX:
            raise LabelSyntaxError(f"\\{kind} takes {digits} hex digits", pos)
        number = int(hex_text, 16)
        if kind == "x":
            out.append(number)
        elif number > 0x10FFFF or 0xD800 <= number <= 0xDFFF:
            raise LabelSyntaxError(f"\\{kind}{hex_text} is not a valid code point", pos)
        else:
            out += chr(number).encode("utf-8")
        return pos + 2 + digits
    octal = text[pos + 1 : pos + 4]
    if len(octal) == 3 and set(octal) <= set("01234567"):
        number = int(octal, 8)
        if number > 0xFF:
            raise LabelSyntaxError(f"\\{octal} is larger than a byte", pos)
        out.append(number)
        return pos + 4
    raise LabelSyntaxError(f"unknown escape \\{kind}", pos)
