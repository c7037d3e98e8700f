"""Reading a push body: its media type, its Content-Encoding and Loki's snappy, all bounded.

Every decompression is capped at `max_bytes` of output and stops as soon as it would produce
more, so a small body that inflates to gigabytes (a zip bomb) costs at most `max_bytes` of
memory before BodyTooLarge is raised.
"""

from __future__ import annotations

import json
import zlib
from typing import Any

import cramjam

from .types import BodyTooLarge, DecodeError, UnsupportedMediaType

# Promtail and Alloy send batches of about 1 MiB; an OpenTelemetry exporter a few MiB at most.
DEFAULT_MAX_BODY_BYTES = 32 * 1024 * 1024

_GZIP_WBITS = 16 + zlib.MAX_WBITS
_ZLIB_WBITS = zlib.MAX_WBITS
_RAW_DEFLATE_WBITS = -zlib.MAX_WBITS
# The stream identifier chunk of snappy's framing format, which Loki does not read.
_SNAPPY_FRAMED = b"\xff\x06\x00\x00sNaPpY"


def media_type(content_type: str) -> str:
    """`application/json; charset=utf-8` -> `application/json` (lowercase, no parameters)."""
    return content_type.split(";", 1)[0].strip().lower()


def check_body_size(body: bytes, *, max_bytes: int) -> None:
    if len(body) > max_bytes:
        raise BodyTooLarge(f"the body is {len(body)} bytes, more than the limit of {max_bytes}")


def decode_content_encoding(body: bytes, content_encoding: str, *, max_bytes: int) -> bytes:
    """The body with its Content-Encoding (`gzip`, `deflate`, `identity` or none) undone."""
    check_body_size(body, max_bytes=max_bytes)
    encodings = [e.strip().lower() for e in content_encoding.split(",") if e.strip()]
    # Encodings are listed in the order they were applied, so they are undone from the end.
    for encoding in reversed(encodings):
        if encoding == "identity":
            continue
        if encoding in ("gzip", "x-gzip"):
            body = _inflate(body, max_bytes=max_bytes, what="gzip")
        elif encoding == "deflate":
            body = _inflate(body, max_bytes=max_bytes, what="deflate")
        else:
            raise UnsupportedMediaType(
                f"Content-Encoding {encoding!r} is not supported (use gzip, deflate or none)"
            )
    return body


def snappy_block_decompress(body: bytes, *, max_bytes: int) -> bytes:
    """Undoes snappy's block format (what Loki's protobuf push uses). The block starts with its
    uncompressed length, checked against `max_bytes` before anything is allocated."""
    if body.startswith(_SNAPPY_FRAMED):
        raise DecodeError("the body uses snappy's framing format; Loki pushes use the block format")
    length, shift, pos = 0, 0, 0
    while True:
        if pos >= len(body) or pos >= 5:
            raise DecodeError("the snappy block does not start with a valid length")
        byte = body[pos]
        length |= (byte & 0x7F) << shift
        pos += 1
        shift += 7
        if not byte & 0x80:
            break
    if length > max_bytes:
        raise BodyTooLarge(
            f"the snappy body decompresses to {length} bytes, more than the limit of {max_bytes}"
        )
    try:
        return bytes(cramjam.snappy.decompress_raw(body))
    except cramjam.DecompressionError as error:
        raise DecodeError(f"the snappy block is corrupt: {error}") from None


def _inflate(body: bytes, *, max_bytes: int, what: str) -> bytes:
    """gzip (every member of a multi-member body) or deflate (zlib-wrapped as HTTP specifies,
    or raw as some clients send it), stopping past `max_bytes` of output."""
    if not body:
        raise DecodeError(f"the {what} body is empty")
    if what == "gzip":
        wbits = _GZIP_WBITS
    else:
        zlib_header = len(body) >= 2 and body[0] & 0x0F == 8 and (body[0] << 8 | body[1]) % 31 == 0
        wbits = _ZLIB_WBITS if zlib_header else _RAW_DEFLATE_WBITS
    out = bytearray()
    data = body
    while data:
        inflater = zlib.decompressobj(wbits)
        pending = data
        try:
            while not inflater.eof:
                # Never 0: zlib reads a max_length of 0 as "no limit".
                chunk = inflater.decompress(pending, max_bytes + 1 - len(out))
                out += chunk
                if len(out) > max_bytes:
                    raise BodyTooLarge(
                        f"the {what} body decompresses to more than the limit of {max_bytes} bytes"
                    )
                pending = inflater.unconsumed_tail
                if not chunk and not pending:
                    raise DecodeError(f"the {what} body is truncated")
        except zlib.error as error:
            raise DecodeError(f"the {what} body is corrupt: {error}") from None
        data = inflater.unused_data
        if data and what != "gzip":
            raise DecodeError(f"the {what} body has {len(data)} bytes after its end")
    return bytes(out)


def load_json(raw: bytes) -> Any:
    """The JSON document of a body, which must be UTF-8."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise DecodeError(f"the body is not UTF-8 (byte {error.start})") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise DecodeError(
            f"invalid JSON: {error.msg} at line {error.lineno} column {error.colno}"
        ) from None


def json_type(value: Any) -> str:
    if value is None:
        return "null"
    return {
        bool: "a boolean",
        int: "a number",
        float: "a number",
        str: "a string",
        list: "a list",
        dict: "an object",
    }[type(value)]
