"""The ``| json`` and ``| logfmt`` parsers: labels from a log line, as Loki extracts them.

- ``json``: every field of the top-level object; nested objects are flattened with ``_``
  (``{"a":{"b":1}}`` gives ``a_b="1"``); arrays and nulls are skipped; numbers keep their
  text (``1.50`` stays ``1.50``); booleans are ``true``/``false``. With parameters
  (``| json code="response.status", first="items[0]"``) only those paths are extracted, and
  an object or array found at a path is kept as compact JSON.
- ``logfmt``: ``key=value`` pairs separated by spaces; a value may be double-quoted with JSON
  escapes; a key alone gets ``""``.

Keys become label names: characters other than ``[a-zA-Z0-9_]`` turn into ``_``, and a
leading digit gets a ``_`` in front. A line the parser cannot read raises ``ExtractError``;
the pipeline then sets ``__error__`` to ``JSONParserErr`` or ``LogfmtParserErr``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

from apps.core.digits import ascii_int

_JSON_FIELD = re.compile(r"[^.\[\]\s\"']+")
_INVALID_NAME_CHARS = re.compile(r"[^a-zA-Z0-9_]")
_JSON_STRING_ESCAPES = {'"': '"', "\\": "\\", "/": "/", "b": "\b", "f": "\f", "n": "\n"}
_JSON_STRING_ESCAPES.update({"r": "\r", "t": "\t"})


class ExtractError(ValueError):
    """The line is not in the parser's format; the message says where."""


class _Number(str):
    """A JSON number, kept as written."""


def _refuse_constant(name: str) -> Any:
    raise ExtractError(f"{name} is not a JSON value")


def sanitize_label_name(key: str, *, first: bool = True) -> str:
    key = key.strip()
    if first and key[:1].isdigit():
        key = "_" + key
    return _INVALID_NAME_CHARS.sub("_", key)


def _load_object(line: str) -> dict[str, Any]:
    try:
        value = json.loads(
            line, parse_int=_Number, parse_float=_Number, parse_constant=_refuse_constant
        )
    except json.JSONDecodeError as exc:
        raise ExtractError(f"{exc.msg} at offset {exc.pos}") from None
    except RecursionError:
        raise ExtractError("the JSON is nested too deeply") from None
    if not isinstance(value, dict):
        raise ExtractError(f"expecting a JSON object, found {type(value).__name__}")
    return value


def _scalar(value: Any) -> str | None:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):  # strings, and numbers as written
        return value
    return None  # null, objects and arrays


def _flatten(obj: dict[str, Any], prefix: str) -> Iterator[tuple[str, str]]:
    for key, value in obj.items():
        part = sanitize_label_name(key, first=not prefix)
        name = f"{prefix}_{part}" if prefix and part else (prefix or part)
        if isinstance(value, dict):
            yield from _flatten(value, name)
            continue
        text = _scalar(value)
        if text is not None and name:
            yield name, text


def json_fields(line: str) -> list[tuple[str, str]]:
    """Every field of the JSON object ``line``, flattened into label names and values."""
    return list(_flatten(_load_object(line), ""))


def _compact(value: Any) -> str:
    if isinstance(value, dict):
        items = ",".join(f"{json.dumps(k)}:{_compact(v)}" for k, v in value.items())
        return "{" + items + "}"
    if isinstance(value, list):
        return "[" + ",".join(_compact(v) for v in value) + "]"
    if value is None:
        return "null"
    if isinstance(value, _Number):
        return str(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    return "true" if value else "false"


def parse_json_path(path: str) -> tuple[str | int, ...]:
    """``a.b[0]["c d"]`` -> ``("a", "b", 0, "c d")``; raises ValueError."""
    parts: list[str | int] = []
    i, n = 0, len(path)
    expect_name = True
    while i < n:
        ch = path[i]
        if ch == "[":
            end = path.find("]", i)
            if end < 0:
                raise ValueError("unclosed '['")
            inner = path[i + 1 : end]
            index = ascii_int(inner)
            if index is not None:
                parts.append(index)
            elif len(inner) >= 2 and inner[0] == inner[-1] and inner[0] in "\"'":
                parts.append(inner[1:-1])
            else:
                raise ValueError(f"'[{inner}]' is neither an index nor a quoted key")
            i = end + 1
            expect_name = False
        elif ch == ".":
            if expect_name:
                raise ValueError("a '.' must follow a field name")
            i += 1
            expect_name = True
        else:
            match = _JSON_FIELD.match(path, i)
            if match is None or not expect_name:
                raise ValueError(f"unexpected {ch!r}")
            parts.append(match.group())
            i = match.end()
            expect_name = False
    if not parts or expect_name:
        raise ValueError("the path is empty or ends with '.'")
    return tuple(parts)


def json_paths(
    line: str, params: tuple[tuple[str, tuple[str | int, ...]], ...]
) -> list[tuple[str, str]]:
    """The values at ``params``' paths; a path that is not in the object gives no label."""
    obj = _load_object(line)
    found = []
    for label, path in params:
        value: Any = obj
        for step in path:
            if isinstance(step, int) and isinstance(value, list) and step < len(value):
                value = value[step]
            elif isinstance(step, str) and isinstance(value, dict) and step in value:
                value = value[step]
            else:
                break
        else:
            text = _scalar(value)
            found.append((label, _compact(value) if text is None else text))
    return found


def _quoted_value(line: str, start: int) -> tuple[str, int]:
    """The double-quoted logfmt value at ``line[start]`` and the index after it."""
    out: list[str] = []
    i = start + 1
    n = len(line)
    while i < n:
        ch = line[i]
        if ch == '"':
            return "".join(out), i + 1
        if ch != "\\":
            out.append(ch)
            i += 1
            continue
        nxt = line[i + 1 : i + 2]
        if nxt in _JSON_STRING_ESCAPES:
            out.append(_JSON_STRING_ESCAPES[nxt])
            i += 2
        elif nxt == "u" and re.fullmatch(r"[0-9a-fA-F]{4}", line[i + 2 : i + 6]):
            out.append(chr(int(line[i + 2 : i + 6], 16)))
            i += 6
        else:
            raise ExtractError(f"logfmt syntax error at pos {i + 1}: invalid escape")
    raise ExtractError(f"logfmt syntax error at pos {start + 1}: unterminated quoted value")


def logfmt_fields(line: str) -> list[tuple[str, str]]:
    """The ``key=value`` pairs of ``line``, keys made into label names."""
    fields: list[tuple[str, str]] = []
    i, n = 0, len(line)
    while i < n:
        if line[i] <= " ":
            i += 1
            continue
        start = i
        while i < n and line[i] > " " and line[i] not in '="':
            i += 1
        if i == start or (i < n and line[i] == '"'):
            raise ExtractError(f"logfmt syntax error at pos {i + 1}: unexpected {line[i]!r}")
        key = line[start:i]
        value = ""
        if i < n and line[i] == "=":
            i += 1
            if i < n and line[i] == '"':
                value, i = _quoted_value(line, i)
            else:
                value_start = i
                while i < n and line[i] > " ":
                    if line[i] in '="':
                        raise ExtractError(
                            f"logfmt syntax error at pos {i + 1}: unexpected {line[i]!r}"
                        )
                    i += 1
                value = line[value_start:i]
        name = sanitize_label_name(key)
        if name:
            fields.append((name, value))
    return fields
