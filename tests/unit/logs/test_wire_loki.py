"""Loki push bodies: JSON (plain, gzip, deflate) and protobuf + snappy, read into streams; and
the refusal of every malformed body with the place it breaks."""

from __future__ import annotations

import gzip
import json
import logging
import zlib
from typing import Any

import cramjam
import logging_loki
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from apps.logs.wire import (
    BodyTooLarge,
    DecodeError,
    LabelSyntaxError,
    PushedEntry,
    PushedStream,
    UnsupportedMediaType,
    decode_loki_push,
    format_labels,
    parse_labels,
)
from apps.logs.wire.loki import PushRequest
from tests.unit.logs.clients import recording_session

JSON = "application/json"
PROTOBUF = "application/x-protobuf"
TS = 1_764_400_000_123_456_789


def json_body(streams: Any) -> bytes:
    return json.dumps({"streams": streams}).encode()


def decode_json(streams: Any) -> list[PushedStream]:
    return decode_loki_push(json_body(streams), content_type=JSON)


def json_error(streams: Any) -> DecodeError:
    with pytest.raises(DecodeError) as caught:
        decode_json(streams)
    return caught.value


# ------------------------------------------------------------------------------- JSON


def test_loki_json__streams_values_metadata__normalized() -> None:
    streams = decode_json(
        [
            {
                "stream": {"pod": "api-0", "app": "api", "level": "WARNING", "empty": ""},
                "values": [
                    [str(TS), "first line"],
                    [
                        str(TS + 1),
                        "second ✓",
                        {
                            "trace_id": "0AF7651916CD43DD8448EB211C80319C",
                            "span_id": "b7ad6b7169203331",
                            "level": "error",
                        },
                    ],
                ],
            },
            {"stream": {"app": "web"}, "values": []},
        ]
    )
    assert streams == [
        PushedStream(
            labels=(("app", "api"), ("level", "WARNING"), ("pod", "api-0")),
            entries=(
                PushedEntry(timestamp_ns=TS, line="first line", severity="warn"),
                PushedEntry(
                    timestamp_ns=TS + 1,
                    line="second ✓",
                    metadata=(
                        ("trace_id", "0AF7651916CD43DD8448EB211C80319C"),
                        ("span_id", "b7ad6b7169203331"),
                        ("level", "error"),
                    ),
                    severity="error",
                    trace_id="0af7651916cd43dd8448eb211c80319c",
                    span_id="b7ad6b7169203331",
                ),
            ),
            origin="streams[0]",
        ),
        PushedStream(labels=(("app", "web"),), entries=(), origin="streams[1]"),
    ]


def test_loki_json__metadata_not_an_id__kept_but_no_trace_id() -> None:
    [stream] = decode_json(
        [
            {
                "stream": {"a": "b"},
                "values": [[str(TS), "x", {"trace_id": "not-hex", "span_id": "1"}]],
            }
        ]
    )
    assert stream.entries[0].trace_id == stream.entries[0].span_id == ""
    assert dict(stream.entries[0].metadata) == {"trace_id": "not-hex", "span_id": "1"}


def test_loki_json__gzip_and_charset__read() -> None:
    body = json_body([{"stream": {"a": "b"}, "values": [[str(TS), "zipped"]]}])
    # Two gzip members, as a client appending to a compressed buffer may send.
    half = len(body) // 2
    compressed = gzip.compress(body[:half]) + gzip.compress(body[half:])
    [stream] = decode_loki_push(
        compressed, content_type="application/json; charset=utf-8", content_encoding="gzip"
    )
    assert stream.entries == (PushedEntry(timestamp_ns=TS, line="zipped"),)


@pytest.mark.parametrize("wbits", [zlib.MAX_WBITS, -zlib.MAX_WBITS])
def test_loki_json__deflate_zlib_or_raw__read(wbits: int) -> None:
    body = json_body([{"stream": {"a": "b"}, "values": [[str(TS), "deflated"]]}])
    packer = zlib.compressobj(wbits=wbits)
    compressed = packer.compress(body) + packer.flush()
    [stream] = decode_loki_push(compressed, content_type=JSON, content_encoding="deflate")
    assert stream.entries[0].line == "deflated"


def test_loki_json__python_logging_loki_handler__body_read() -> None:
    """The body the `python-logging-loki` handler really sends, captured at its transport."""
    session, adapter = recording_session(204)
    handler = logging_loki.LokiHandler(
        url="http://127.0.0.1:9/loki/api/v1/push", tags={"app": "trainer"}, version="1"
    )
    handler.emitter.session_class = lambda: session  # type: ignore[method-assign]
    logger = logging.getLogger("wire-test.loki")
    logger.propagate = False
    logger.addHandler(handler)
    try:
        logger.error('CUDA out of memory on "gpu" 3', extra={"tags": {"replica": "r-1"}})
    finally:
        logger.removeHandler(handler)
    [request] = adapter.requests
    assert isinstance(request.body, bytes)
    [stream] = decode_loki_push(request.body, content_type=request.headers["Content-Type"])
    assert dict(stream.labels) == {
        "app": "trainer",
        "replica": "r-1",
        "severity": "error",
        "logger": "wire-test.loki",
    }
    [entry] = stream.entries
    assert entry.line == 'CUDA out of memory on "gpu" 3'
    assert entry.severity == "error"  # from the `severity` label the handler adds
    assert entry.timestamp_ns > 1_700_000_000 * 10**9


@pytest.mark.parametrize(
    ("streams", "location", "says"),
    [
        ({"a": 1}, "streams", "expected a list, got an object"),
        (["x"], "streams[0]", "expected an object, got a string"),
        ([{"values": []}], "streams[0].stream", "expected an object of strings, got null"),
        ([{"stream": {"a": 1}}], "streams[0].stream", "the value of 'a' must be a string"),
        ([{"stream": {"a": "b"}, "values": {}}], "streams[0].values", "expected a list"),
        ([{"stream": {"a": "b"}, "values": ["x"]}], "streams[0].values[0]", "got a string"),
        ([{"stream": {"a": "b"}, "values": [[str(TS)]]}], "streams[0].values[0]", "list of 1"),
        (
            [{"stream": {"a": "b"}, "values": [[str(TS), "x", {}, 1]]}],
            "streams[0].values[0]",
            "list of 4",
        ),
        ([{"stream": {"a": "b"}, "values": [[TS, "x"]]}], "streams[0].values[0][0]", "a number"),
        ([{"stream": {"a": "b"}, "values": [[str(TS), 5]]}], "streams[0].values[0][1]", "a number"),
        (
            [{"stream": {"a": "b"}, "values": [[str(TS), "x", ["m"]]]}],
            "streams[0].values[0][2]",
            "expected an object of strings, got a list",
        ),
        (
            [{"stream": {"a": "b"}, "values": [[str(TS), "x", {"k": None}]]}],
            "streams[0].values[0][2]",
            "the value of 'k' must be a string, got null",
        ),
    ],
)
def test_loki_json__wrong_types__refused_at_their_place(
    streams: Any, location: str, says: str
) -> None:
    error = json_error(streams)
    assert error.location == location
    assert says in error.reason


@pytest.mark.parametrize(
    "timestamp", ["", "abc", "-1", "+5", "1.5", "1e18", " 1", "99999999999999999999", str(2**63)]
)
def test_loki_json__bad_timestamp_string__refused(timestamp: str) -> None:
    error = json_error(
        [
            {"stream": {"a": "b"}, "values": [[str(TS), "fine"]]},
            {"stream": {"a": "b"}, "values": [[str(TS), "fine"], [timestamp, "x"]]},
        ]
    )
    assert error.location == "streams[1].values[1][0]"
    assert "nanoseconds since the epoch" in error.reason


def test_loki_json__largest_timestamp__read() -> None:
    [stream] = decode_json([{"stream": {"a": "b"}, "values": [[str(2**63 - 1), "x"]]}])
    assert stream.entries[0].timestamp_ns == 2**63 - 1


def test_loki_json__not_json__refused_with_line_and_column() -> None:
    with pytest.raises(DecodeError) as caught:
        decode_loki_push(b'{"streams": [\n  {"stream": }]}', content_type=JSON)
    assert "invalid JSON" in str(caught.value)
    assert "line 2 column 14" in str(caught.value)


def test_loki_json__not_utf8__refused_with_byte() -> None:
    body = b'{"streams": [{"stream": {"a": "b"}, "values": [["1", "caf\xe9"]]}]}'
    with pytest.raises(DecodeError) as caught:
        decode_loki_push(body, content_type=JSON)
    position = body.index(b"\xe9")
    assert caught.value.reason == f"the body is not UTF-8 (byte {position})"


def test_loki_json__lone_surrogate_escape__refused_at_line() -> None:
    body = b'{"streams": [{"stream": {"a": "b"}, "values": [["1", "x\\ud800y"]]}]}'
    with pytest.raises(DecodeError) as caught:
        decode_loki_push(body, content_type=JSON)
    assert caught.value.location == "streams[0].values[0][1]"
    assert "lone surrogate at character 1" in caught.value.reason


@pytest.mark.parametrize("document", [b"[]", b'"streams"', b"null", b"{}"])
def test_loki_json__not_a_push_object__refused(document: bytes) -> None:
    with pytest.raises(DecodeError):
        decode_loki_push(document, content_type=JSON)


def test_loki_json__empty_push__no_streams() -> None:
    assert decode_loki_push(b'{"streams": []}', content_type=JSON) == []


# --------------------------------------------------------------------------- protobuf


def varint(number: int) -> bytes:
    out = bytearray()
    while True:
        byte = number & 0x7F
        number >>= 7
        out.append(byte | (0x80 if number else 0))
        if not number:
            return bytes(out)


def length_delimited(field: int, payload: bytes) -> bytes:
    return varint(field << 3 | 2) + varint(len(payload)) + payload


def varint_field(field: int, number: int) -> bytes:
    return varint(field << 3 | 0) + varint(number)


def hand_entry(seconds: int, nanos: int, line: bytes, metadata: list[tuple[bytes, bytes]]) -> bytes:
    timestamp = varint_field(1, seconds) + varint_field(2, nanos)
    pairs = b"".join(
        length_delimited(3, length_delimited(1, name) + length_delimited(2, value))
        for name, value in metadata
    )
    return length_delimited(1, timestamp) + length_delimited(2, line) + pairs


def hand_push(streams: list[tuple[bytes, list[bytes], int]]) -> bytes:
    """A logproto.PushRequest written from the public wire layout, byte by byte."""
    return b"".join(
        length_delimited(
            1,
            length_delimited(1, labels)
            + b"".join(length_delimited(2, entry) for entry in entries)
            + (varint_field(3, stream_hash) if stream_hash else b""),
        )
        for labels, entries, stream_hash in streams
    )


def snappy(raw: bytes) -> bytes:
    return bytes(cramjam.snappy.compress_raw(raw))


def decode_proto(raw: bytes) -> list[PushedStream]:
    return decode_loki_push(snappy(raw), content_type=PROTOBUF)


def proto_error(raw: bytes) -> DecodeError:
    with pytest.raises(DecodeError) as caught:
        decode_proto(raw)
    return caught.value


LABELS = b'{app="api", msg="say \\"hi\\"\\n\\u00e9\\x41", raw=`a\\b`}'


def test_loki_protobuf__descriptor_encoding__same_bytes_as_wire_layout() -> None:
    request = PushRequest()
    stream = request.streams.add(labels=LABELS, hash=42)
    entry = stream.entries.add(line="héllo".encode())
    entry.timestamp.seconds, entry.timestamp.nanos = 1_764_400_000, 123_456_789
    entry.structuredMetadata.add(name=b"trace_id", value=b"0af7651916cd43dd8448eb211c80319c")
    second = stream.entries.add(line=b"")
    second.timestamp.seconds = 1_764_400_001
    by_hand = hand_push(
        [
            (
                LABELS,
                [
                    hand_entry(
                        1_764_400_000,
                        123_456_789,
                        "héllo".encode(),
                        [(b"trace_id", b"0af7651916cd43dd8448eb211c80319c")],
                    ),
                    length_delimited(1, varint_field(1, 1_764_400_001)),
                ],
                42,
            )
        ]
    )
    assert request.SerializeToString() == by_hand
    assert decode_proto(by_hand) == decode_proto(request.SerializeToString())
    [decoded] = decode_proto(by_hand)
    assert decoded == PushedStream(
        labels=(("app", "api"), ("msg", 'say "hi"\néA'), ("raw", "a\\b")),
        entries=(
            PushedEntry(
                timestamp_ns=TS,
                line="héllo",
                metadata=(("trace_id", "0af7651916cd43dd8448eb211c80319c"),),
                trace_id="0af7651916cd43dd8448eb211c80319c",
            ),
            PushedEntry(timestamp_ns=1_764_400_001 * 10**9, line=""),
        ),
        origin="streams[0]",
    )


def test_loki_protobuf__unknown_fields__skipped() -> None:
    extra = varint_field(15, 7) + length_delimited(16, b"future")
    raw = hand_push([(b'{a="b"}', [hand_entry(1, 0, b"x", []) + extra], 0)]) + extra
    [stream] = decode_proto(raw)
    assert stream.entries == (PushedEntry(timestamp_ns=10**9, line="x"),)


def test_loki_protobuf__no_content_type__read_as_protobuf() -> None:
    raw = hand_push([(b'{a="b"}', [hand_entry(1, 0, b"x", [])], 0)])
    [stream] = decode_loki_push(snappy(raw), content_type="")
    assert stream.labels == (("a", "b"),)


def test_loki_protobuf__gzip_around_snappy__read() -> None:
    raw = hand_push([(b'{a="b"}', [hand_entry(1, 0, b"x", [])], 0)])
    body = gzip.compress(snappy(raw))
    [stream] = decode_loki_push(body, content_type=PROTOBUF, content_encoding="gzip")
    assert stream.entries[0].line == "x"


def test_loki_protobuf__line_not_utf8__refused_at_entry() -> None:
    raw = hand_push(
        [
            (b'{a="b"}', [hand_entry(1, 0, b"ok", [])], 0),
            (b'{a="c"}', [hand_entry(1, 0, b"ok", []), hand_entry(2, 0, b"caf\xe9", [])], 0),
        ]
    )
    error = proto_error(raw)
    assert error.location == "streams[1].entries[1].line"
    assert error.reason == "not UTF-8 (byte 3)"


def test_loki_protobuf__metadata_not_utf8__refused_at_pair() -> None:
    raw = hand_push([(b'{a="b"}', [hand_entry(1, 0, b"x", [(b"k", b"ok"), (b"\xff", b"v")])], 0)])
    assert proto_error(raw).location == "streams[0].entries[0].structuredMetadata[1].name"


@pytest.mark.parametrize(
    ("labels", "says"),
    [
        (b"app=x", "expected '{' at offset 0"),
        (b'{app="x"', "expected ',' or '}' at offset 8"),
        (b'{app!="x"}', "expected '=' after 'app'"),
        (b'{app=~"x"}', "expected '=' after 'app'"),
        (b'{1app="x"}', "expected a label name at offset 1"),
        (b'{app="x", app="y"}', "label name 'app' given twice"),
        (b'{app="x\\q"}', "unknown escape \\q"),
        (b'{app="\\xff"}', "not UTF-8"),
        (b'{app="x}', "unterminated"),
        (b"{app=x}", "expected a quoted value"),
        (b'{app="x"} y', "unexpected text after '}'"),
        (b'{app="x",}', "expected a label name at offset 9"),
    ],
)
def test_loki_protobuf__bad_label_text__refused_at_stream(labels: bytes, says: str) -> None:
    raw = hand_push([(b'{a="b"}', [], 0), (labels, [hand_entry(1, 0, b"x", [])], 0)])
    error = proto_error(raw)
    assert error.location == "streams[1].labels"
    assert says in error.reason


def test_loki_protobuf__labels_not_utf8__refused_at_stream() -> None:
    assert proto_error(hand_push([(b'{a="\xc3"}', [], 0)])).location == "streams[0].labels"


@pytest.mark.parametrize(
    ("entry", "says"),
    [
        (length_delimited(2, b"no time"), "the timestamp is missing"),
        (length_delimited(1, varint_field(1, 1) + varint_field(2, 10**9)), "nanos=1000000000"),
        (length_delimited(1, varint_field(1, 2**64 - 1)), "seconds=-1"),  # int64 -1
        (length_delimited(1, varint_field(1, 9_300_000_000)), "seconds=9300000000"),
    ],
)
def test_loki_protobuf__bad_timestamp__refused_at_entry(entry: bytes, says: str) -> None:
    error = proto_error(hand_push([(b'{a="b"}', [hand_entry(1, 0, b"x", []), entry], 0)]))
    assert error.location.startswith("streams[0].entries[1]")
    assert says in error.reason


def test_loki_protobuf__truncated__refused() -> None:
    raw = hand_push([(b'{a="b"}', [hand_entry(1, 0, b"a line", [])], 0)])
    for cut in (1, 5, len(raw) - 1):
        with pytest.raises(DecodeError, match=r"not a valid logproto\.PushRequest"):
            decode_proto(raw[:cut])


def test_loki_protobuf__not_snappy__refused() -> None:
    raw = hand_push([(b'{a="b"}', [hand_entry(1, 0, b"a line", [])], 0)])
    with pytest.raises(DecodeError, match="snappy block is corrupt"):
        decode_loki_push(raw, content_type=PROTOBUF)  # sent without snappy
    with pytest.raises(DecodeError, match="snappy block is corrupt"):
        decode_loki_push(snappy(raw)[:-2], content_type=PROTOBUF)


def test_loki_protobuf__snappy_framing_format__refused_with_reason() -> None:
    raw = hand_push([(b'{a="b"}', [hand_entry(1, 0, b"a line", [])], 0)])
    framed = bytes(cramjam.snappy.compress(raw))
    with pytest.raises(DecodeError, match="framing format"):
        decode_loki_push(framed, content_type=PROTOBUF)


def test_loki_protobuf__snappy_claims_more_than_limit__too_large_before_decompressing() -> None:
    # A 5-byte block claiming 4 GiB: refused from its header alone.
    with pytest.raises(BodyTooLarge, match="decompresses to 4294967295 bytes"):
        decode_loki_push(varint(2**32 - 1) + b"\x00", content_type=PROTOBUF)
    body = snappy(b"\x00" * 2048)
    with pytest.raises(BodyTooLarge):
        decode_loki_push(body, content_type=PROTOBUF, max_bytes=1024)


def test_loki_push__unsupported_type_or_encoding__unsupported_media_type() -> None:
    body = json_body([])
    with pytest.raises(UnsupportedMediaType, match="text/plain") as caught:
        decode_loki_push(body, content_type="text/plain")
    assert caught.value.http_status == 415
    with pytest.raises(UnsupportedMediaType, match="'br'"):
        decode_loki_push(body, content_type=JSON, content_encoding="br")


def test_decode_errors__http_status__400_413_415() -> None:
    assert json_error([1]).http_status == 400
    with pytest.raises(BodyTooLarge) as caught:
        decode_loki_push(body := json_body([]), content_type=JSON, max_bytes=len(body) - 1)
    assert caught.value.http_status == 413
    assert isinstance(caught.value, DecodeError)  # one except clause catches every refusal


# ------------------------------------------------------------------------ label text


label_values = st.text(st.characters(exclude_categories=["Cs"]), max_size=30)
label_sets = st.dictionaries(
    st.from_regex(r"[a-zA-Z_][a-zA-Z0-9_]{0,12}", fullmatch=True), label_values, max_size=6
)


@settings(max_examples=300, deadline=None)
@given(labels=label_sets)
def test_labels__printed_text__parses_back(labels: dict[str, str]) -> None:
    pairs = tuple(sorted(labels.items()))
    text = format_labels(pairs)
    assert parse_labels(text) == list(pairs)
    # The printed text carries no raw control character: it is one line whatever the values.
    assert "\n" not in text


@settings(max_examples=100, deadline=None)
@given(value=st.text(st.sampled_from('"\\\n\r\t`{}=, é😀\x00\x7f'), max_size=20))
def test_labels__quotes_backslashes_newlines__parse_back(value: str) -> None:
    assert parse_labels(format_labels((("v", value),))) == [("v", value)]


def test_labels__go_escapes_and_raw_strings__read() -> None:
    text = '{ a = "\\a\\b\\f\\v\\101\\x42\\u00e9\\U0001F600" ,b=`x\r\n"y"` }'
    assert parse_labels(text) == [("a", "\a\b\f\vAB\u00e9\U0001f600"), ("b", 'x\n"y"')]
    assert parse_labels("{}") == []
    assert parse_labels(" { } ") == []


@pytest.mark.parametrize(
    "text",
    ['{a="\\ud800"}', '{a="\\U00110000"}', '{a="\\400"}', '{a="\\x4"}', '{a="x\ny"}', "{a=`x}"],
)
def test_labels__invalid_escapes_and_strings__refused(text: str) -> None:
    with pytest.raises(LabelSyntaxError):
        parse_labels(text)


def test_labels__printer__canonical_text() -> None:
    assert format_labels((("b", "2"), ("a", 'q"\\\n\x01'))) == '{a="q\\"\\\\\\n\\u0001", b="2"}'
