"""Request body parsing with limits: JSON nested deeper than ``API_JSON_MAX_DEPTH`` or
longer than ``DATA_UPLOAD_MAX_MEMORY_SIZE`` is refused with a 400 / 413 before Python's
recursive JSON decoder (and everything that walks the result afterwards) sees it.

Django applies ``DATA_UPLOAD_MAX_MEMORY_SIZE`` only to ``request.body`` and form data; DRF
reads JSON straight from the WSGI stream, so without this parser a JSON body had no size
limit at all, and ``[[[[...]]]]`` a thousand deep raised ``RecursionError`` (a 500).
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Mapping
from typing import IO, Any

from django.conf import settings
from rest_framework import status
from rest_framework.exceptions import APIException, ParseError
from rest_framework.parsers import JSONParser
from rest_framework.settings import api_settings
from rest_framework.utils import json

from apps.core.errors import body_limit_bytes, too_large_detail

# A JSON string: quote, then any run of non-quote non-backslash bytes or escape pairs. The
# alternatives cannot both match at one position, so matching is linear in the input.
_JSON_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_NOT_A_BRACKET = re.compile(rb"[^\[\]{}]+")
_OPEN = frozenset(b"[{")


class PayloadTooLarge(APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = "The request body is too large."
    default_code = "payload_too_large"


def json_depth_exceeds(raw: bytes, *, max_depth: int) -> bool:
    """Whether arrays and objects in ``raw`` nest deeper than ``max_depth``.

    Brackets inside strings do not count. Invalid JSON may be over-counted; it fails to
    parse anyway, only with a different message.
    """
    if raw.count(b"[") + raw.count(b"{") <= max_depth:
        return False
    brackets = _NOT_A_BRACKET.sub(b"", _JSON_STRING.sub(b"", raw))
    depth = 0
    for byte in brackets:
        if byte in _OPEN:
            depth += 1
            if depth > max_depth:
                return True
        else:
            depth -= 1
    return False


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def json_loads_bounded(raw: bytes, *, encoding: str = "utf-8") -> Any:
    """Parse a JSON document held in memory, under the size and depth limits.

    For views that read ``request.body`` themselves; raises DRF's ``ParseError`` (400) or
    :class:`PayloadTooLarge` (413), which the API's exception handler renders as JSON.
    """
    limit = body_limit_bytes()
    if len(raw) > limit:
        raise PayloadTooLarge(too_large_detail(limit))
    max_depth = int(settings.API_JSON_MAX_DEPTH)
    if json_depth_exceeds(raw, max_depth=max_depth):
        raise ParseError(f"JSON parse error - nested deeper than {max_depth} levels.")
    try:
        text = codecs.decode(raw, encoding)
        if api_settings.STRICT_JSON:
            return json.loads(text, parse_constant=_reject_constant)
        return json.loads(text)
    except (ValueError, LookupError) as exc:
        raise ParseError(f"JSON parse error - {exc}") from None


class BoundedJSONParser(JSONParser):
    """DRF's JSON parser with a size limit and a nesting limit."""

    def parse(
        self,
        stream: IO[Any],
        media_type: str | None = None,
        parser_context: Mapping[str, Any] | None = None,
    ) -> Any:
        encoding = (parser_context or {}).get("encoding", settings.DEFAULT_CHARSET)
        limit = body_limit_bytes()
        raw = stream.read(limit + 1)
        if len(raw) > limit:
            raise PayloadTooLarge(too_large_detail(limit))
        return json_loads_bounded(raw, encoding=encoding)
