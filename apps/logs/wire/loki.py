"""Loki's push API bodies: JSON (optionally gzip) and protobuf + snappy.

The protobuf messages are described here, in code, from Loki's public wire layout
(`logproto.PushRequest`), and parsed by the `protobuf` package rather than by hand: its C
parser is fast, checks the wire format fully (truncation, wire types, lengths) and skips
unknown fields as any protobuf reader must. One deliberate difference from Loki's own
`.proto`: the text fields (labels, line, metadata name and value) are declared `bytes`, which
has the same wire encoding as `string`; the parser then leaves UTF-8 to this module, which
refuses invalid text naming the stream, entry and field instead of failing the whole message
without a position.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from operator import attrgetter
from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, timestamp_pb2
from google.protobuf.message import DecodeError as ProtobufDecodeError

from apps.core.digits import ascii_int

from .body import (
    DEFAULT_MAX_BODY_BYTES,
    decode_content_encoding,
    json_type,
    load_json,
    media_type,
    snappy_block_decompress,
)
from .labels import LabelSyntaxError, parse_labels
from .types import (
    MAX_TIMESTAMP_NS,
    DecodeError,
    Pairs,
    PlainEntries,
    PushedEntry,
    PushedStream,
    UnsupportedMediaType,
    level_from_text,
    normalize_labels,
)

_HEX = re.compile(r"[0-9a-fA-F]+")
# Where a Loki client puts a line's level and trace context (Loki's own OTLP conventions
# write them as structured metadata under these names).
LEVEL_KEYS = ("level", "detected_level", "severity", "lvl")


def decode_loki_push(
    body: bytes,
    *,
    content_type: str,
    content_encoding: str = "",
    max_bytes: int = DEFAULT_MAX_BODY_BYTES,
) -> list[PushedStream]:
    """The streams of a `POST /loki/api/v1/push` body. JSON when the media type is
    `application/json`; protobuf + snappy when it is `application/x-protobuf` or absent (as
    Loki reads a push without a Content-Type). Raises DecodeError (400), BodyTooLarge (413) or
    UnsupportedMediaType (415); nothing is returned from a body that has any error."""
    kind = media_type(content_type)
    if kind not in ("application/json", "application/x-protobuf", ""):
        raise UnsupportedMediaType(
            f"Content-Type {content_type!r} is not supported (use application/json or "
            "application/x-protobuf)"
        )
    raw = decode_content_encoding(body, content_encoding, max_bytes=max_bytes)
    if kind == "application/json":
        return decode_loki_json(raw)
    return decode_loki_protobuf(snappy_block_decompress(raw, max_bytes=max_bytes))


# --------------------------------------------------------------------------------- JSON


def decode_loki_json(raw: bytes) -> list[PushedStream]:
    """`{"streams": [{"stream": {"name": "value"}, "values": [["<ns>", "<line>"],
    ["<ns>", "<line>", {"name": "value"}]]}]}`. Timestamps are strings of decimal nanoseconds
    since the epoch, as Loki requires. A name given twice in one object keeps its last value."""
    document = load_json(raw)
    if not isinstance(document, dict):
        raise DecodeError(f"expected an object, got {json_type(document)}")
    streams = document.get("streams")
    if not isinstance(streams, list):
        raise DecodeError(f"expected a list, got {json_type(streams)}", location="streams")
    return [_json_stream(stream, f"streams[{i}]") for i, stream in enumerate(streams)]


def _json_stream(stream: Any, where: str) -> PushedStream:
    if not isinstance(stream, dict):
        raise DecodeError(f"expected an object, got {json_type(stream)}", location=where)
    labels = _json_pairs(stream.get("stream"), f"{where}.stream")
    values = stream.get("values", [])
    if not isinstance(values, list):
        raise DecodeError(f"expected a list, got {json_type(values)}", location=f"{where}.values")
    level = _level(dict(labels))
    entries = tuple(
        _json_entry(value, f"{where}.values[{j}]", level) for j, value in enumerate(values)
    )
    return PushedStream(labels=normalize_labels(labels), entries=entries, origin=where)


def _json_entry(value: Any, where: str, level: str) -> PushedEntry:
    if not isinstance(value, list) or not 2 <= len(value) <= 3:
        raise DecodeError(
            "expected [timestamp, line] or [timestamp, line, {metadata}], got "
            + (f"a list of {len(value)}" if isinstance(value, list) else json_type(value)),
            location=where,
        )
    timestamp = value[0]
    if not isinstance(timestamp, str):
        raise DecodeError(
            f"the timestamp must be a string of nanoseconds, got {json_type(timestamp)}",
            location=f"{where}[0]",
        )
    timestamp_ns = _nanoseconds(timestamp, f"{where}[0]")
    line = value[1]
    if not isinstance(line, str):
        raise DecodeError(
            f"the line must be a string, got {json_type(line)}", location=f"{where}[1]"
        )
    _check_text(line, f"{where}[1]")
    metadata = tuple(_json_pairs(value[2], f"{where}[2]")) if len(value) == 3 else ()
    return _entry(timestamp_ns, line, metadata, level)


def _json_pairs(value: Any, where: str) -> list[tuple[str, str]]:
    if not isinstance(value, dict):
        raise DecodeError(f"expected an object of strings, got {json_type(value)}", location=where)
    for name, item in value.items():
        if not isinstance(item, str):
            raise DecodeError(
                f"the value of {name!r} must be a string, got {json_type(item)}", location=where
            )
        _check_text(name, where)
        _check_text(item, f"{where}.{name}")
    return list(value.items())


def _nanoseconds(text: str, where: str) -> int:
    ns = ascii_int(text, max_digits=19)
    if ns is None or ns > MAX_TIMESTAMP_NS:
        raise DecodeError(
            f"the timestamp {text[:40]!r} is not a count of nanoseconds since the epoch "
            f"(decimal digits, at most {MAX_TIMESTAMP_NS})",
            location=where,
        )
    return ns


def _check_text(text: str, where: str) -> None:
    """JSON escapes can spell lone surrogates (`"\\ud800"`), which are not text in UTF-8."""
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as error:
            raise DecodeError(
                f"not valid Unicode: a lone surrogate at character {error.start}", location=where
            ) from None


# ----------------------------------------------------------------------------- protobuf


def _push_message_classes(*, plain: bool = False) -> tuple[Any, Any, Any, Any]:
    """PushRequest, StreamAdapter, EntryAdapter and LabelPairAdapter, in a private pool.

    With ``plain``, the same wire layout read for the usual push only (package
    ``logproto_plain``): the line is a ``string``, so the parser checks its UTF-8, and each
    ``structuredMetadata`` pair is read as a ``MetadataSent``, a proto2 message whose one
    field is required and is no field of a pair (number 536870911, the largest, a fixed64),
    so any metadata sent leaves the request not initialized: ``IsInitialized()`` tells in C
    whether an entry has metadata, without an object per entry. (A pair carrying that field,
    which no Loki layout has, would pass for no metadata: only a hand-made body can.)"""
    field = descriptor_pb2.FieldDescriptorProto
    optional, repeated = field.LABEL_OPTIONAL, field.LABEL_REPEATED
    pool = descriptor_pool.DescriptorPool()
    pool.Add(descriptor_pb2.FileDescriptorProto.FromString(timestamp_pb2.DESCRIPTOR.serialized_pb))
    dependency = ["google/protobuf/timestamp.proto"]
    if plain:
        marker = descriptor_pb2.FileDescriptorProto(
            name="controlplane/logs/loki_push_plain_marker.proto",
            package="logproto_plain_marker",
            syntax="proto2",
        )
        marker.message_type.add(name="MetadataSent").field.add(
            name="never_sent", number=536870911, label=field.LABEL_REQUIRED, type=field.TYPE_FIXED64
        )
        pool.Add(marker)
        dependency.append(marker.name)
    file = descriptor_pb2.FileDescriptorProto(
        name=f"controlplane/logs/loki_push{'_plain' if plain else ''}.proto",
        package="logproto_plain" if plain else "logproto",
        syntax="proto3",
        dependency=dependency,
    )
    package = file.package

    def message(name: str, *fields: tuple[str, int, int, int, str]) -> None:
        proto = file.message_type.add(name=name)
        for field_name, number, label, kind, type_name in fields:
            added = proto.field.add(name=field_name, number=number, label=label, type=kind)
            if type_name:
                added.type_name = type_name

    message(
        "PushRequest", ("streams", 1, repeated, field.TYPE_MESSAGE, f".{package}.StreamAdapter")
    )
    message(
        "StreamAdapter",
        ("labels", 1, optional, field.TYPE_BYTES, ""),
        ("entries", 2, repeated, field.TYPE_MESSAGE, f".{package}.EntryAdapter"),
        ("hash", 3, optional, field.TYPE_UINT64, ""),
    )
    pair = ".logproto_plain_marker.MetadataSent" if plain else f".{package}.LabelPairAdapter"
    message(
        "EntryAdapter",
        ("timestamp", 1, optional, field.TYPE_MESSAGE, ".google.protobuf.Timestamp"),
        ("line", 2, optional, field.TYPE_STRING if plain else field.TYPE_BYTES, ""),
        ("structuredMetadata", 3, repeated, field.TYPE_MESSAGE, pair),
    )
    message(
        "LabelPairAdapter",
        ("name", 1, optional, field.TYPE_BYTES, ""),
        ("value", 2, optional, field.TYPE_BYTES, ""),
    )
    pool.Add(file)
    return tuple(
        message_factory.GetMessageClass(pool.FindMessageTypeByName(f"{package}.{name}"))
        for name in ("PushRequest", "StreamAdapter", "EntryAdapter", "LabelPairAdapter")
    )


PushRequest, StreamAdapter, EntryAdapter, LabelPairAdapter = _push_message_classes()
_PlainPushRequest = _push_message_classes(plain=True)[0]
_TIMESTAMP = attrgetter("timestamp")
_SECONDS = attrgetter("seconds")
_NANOS = attrgetter("nanos")
_LINE = attrgetter("line")


def decode_loki_protobuf(raw: bytes) -> list[PushedStream]:
    """A serialized `logproto.PushRequest` (already snappy-decompressed)."""
    plain = _plain_protobuf(raw)
    return plain if plain is not None else _full_protobuf(raw)


def _full_protobuf(raw: bytes) -> list[PushedStream]:
    """Any PushRequest, entry by entry (metadata, and every error with its position)."""
    request = PushRequest()
    try:
        request.ParseFromString(raw)
    except ProtobufDecodeError as error:
        raise DecodeError(f"not a valid logproto.PushRequest: {error}") from None
    return [_proto_stream(stream, f"streams[{i}]") for i, stream in enumerate(request.streams)]


def _plain_protobuf(raw: bytes) -> list[PushedStream] | None:
    """The usual push, read a column at a time: every entry with a time after the epoch and a
    UTF-8 line, none with structured metadata. The entries of each stream are then
    :class:`PlainEntries`, made without an object per entry. None for any other push, which
    the full reader then reads (and names its errors). Fields neither layout has are skipped
    by both, as protobuf readers do."""
    request = _PlainPushRequest()
    try:
        request.ParseFromString(raw)
    except ProtobufDecodeError:
        return None  # a line that is not UTF-8, or a body that is not a PushRequest
    if not request.IsInitialized():
        return None  # an entry has structured metadata (see _push_message_classes)
    decoded = []
    for i, stream in enumerate(request.streams):
        # Each entry's wrapper made once, for both columns.
        entries = list(stream.entries)
        stamps = list(map(_TIMESTAMP, entries))
        nanos = list(map(_NANOS, stamps))
        times = [
            seconds * 1_000_000_000 + nano
            for seconds, nano in zip(map(_SECONDS, stamps), nanos, strict=True)
        ]
        # A time of 0 may be a missing timestamp: the full reader tells them apart.
        if times and not (
            0 < min(times)
            and max(times) <= MAX_TIMESTAMP_NS
            and 0 <= min(nanos)
            and max(nanos) < 1_000_000_000
        ):
            return None
        where = f"streams[{i}]"
        text = stream.labels
        known = _known_labels.get(text)
        if known is None:
            labels = _proto_labels(text, where)
            known = normalize_labels(labels), _level(dict(labels))
            if len(_known_labels) >= KNOWN_LABELS_SIZE:
                _known_labels.clear()
            _known_labels[text] = known
        decoded.append(
            PushedStream(
                labels=known[0],
                entries=PlainEntries(times, list(map(_LINE, entries)), known[1]),
                origin=where,
            )
        )
    return decoded


# Label texts read lately, with their labels and level: a shipper sends the same few label
# sets push after push, and reading the text is most of what a stream costs besides its
# entries. Only texts that read without error are kept; emptied when full.
KNOWN_LABELS_SIZE = 10_000
_known_labels: dict[bytes, tuple[Pairs, str]] = {}


def _proto_labels(data: bytes, where: str) -> list[tuple[str, str]]:
    text = _utf8(data, f"{where}.labels")
    try:
        return parse_labels(text)
    except LabelSyntaxError as error:
        raise DecodeError(
            f"invalid label text {text[:200]!r}: {error}", location=f"{where}.labels"
        ) from None


def _proto_stream(stream: Any, where: str) -> PushedStream:
    labels = _proto_labels(stream.labels, where)
    level = _level(dict(labels))
    entries = []
    for j, entry in enumerate(stream.entries):
        # The usual entry (a time and a UTF-8 line, no metadata) is read here; any other,
        # and every error with its position, by _proto_entry.
        if not entry.structuredMetadata and entry.HasField("timestamp"):
            timestamp = entry.timestamp  # each access makes a new wrapper: once
            nanos = timestamp.nanos
            timestamp_ns = timestamp.seconds * 1_000_000_000 + nanos
            if 0 <= nanos < 1_000_000_000 and 0 <= timestamp_ns <= MAX_TIMESTAMP_NS:
                try:
                    line = entry.line.decode("utf-8")
                except UnicodeDecodeError:
                    pass
                else:
                    entries.append(PushedEntry(timestamp_ns, line, (), level))
                    continue
        entries.append(_proto_entry(entry, f"{where}.entries[{j}]", level))
    return PushedStream(labels=normalize_labels(labels), entries=tuple(entries), origin=where)


def _proto_entry(entry: Any, where: str, level: str) -> PushedEntry:
    if not entry.HasField("timestamp"):
        raise DecodeError("the timestamp is missing", location=f"{where}.timestamp")
    seconds, nanos = entry.timestamp.seconds, entry.timestamp.nanos
    timestamp_ns = seconds * 1_000_000_000 + nanos
    if not 0 <= nanos < 1_000_000_000 or not 0 <= timestamp_ns <= MAX_TIMESTAMP_NS:
        raise DecodeError(
            f"seconds={seconds} nanos={nanos} is not a time from 1970 to 2262 "
            "(nanos must be in [0, 1e9))",
            location=f"{where}.timestamp",
        )
    line = _utf8(entry.line, f"{where}.line")
    metadata = tuple(
        (
            _utf8(pair.name, f"{where}.structuredMetadata[{k}].name"),
            _utf8(pair.value, f"{where}.structuredMetadata[{k}].value"),
        )
        for k, pair in enumerate(entry.structuredMetadata)
    )
    return _entry(timestamp_ns, line, metadata, level)


def _utf8(data: bytes, where: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise DecodeError(f"not UTF-8 (byte {error.start})", location=where) from None


# ----------------------------------------------------------------------------- shared


def _entry(
    timestamp_ns: int, line: str, sent: Iterable[tuple[str, str]], stream_level: str
) -> PushedEntry:
    """The entry with its metadata made unique (the last value of a name wins, in the place
    of its first) and the level and trace context read from it; the level falls back to the
    one the stream's labels give."""
    found = dict(sent)
    if not found:
        return PushedEntry(timestamp_ns=timestamp_ns, line=line, severity=stream_level)
    return PushedEntry(
        timestamp_ns=timestamp_ns,
        line=line,
        metadata=tuple(found.items()),
        severity=_level(found) or stream_level,
        trace_id=_hex_id(found.get("trace_id", ""), 32),
        span_id=_hex_id(found.get("span_id", ""), 16),
    )


def _level(names: dict[str, str]) -> str:
    """The normalized level named by the first of LEVEL_KEYS present, or ""."""
    for key in LEVEL_KEYS:
        if key in names:
            return level_from_text(names[key])
    return ""


def _hex_id(value: str, digits: int) -> str:
    """A trace or span id sent as metadata, kept when it is one (hex of the right length)."""
    return value.lower() if len(value) == digits and _HEX.fullmatch(value) else ""
