"""OTLP/HTTP log bodies (protobuf and JSON) read into streams: requests built with the
opentelemetry-proto classes, and the body the OpenTelemetry SDK's OTLP/HTTP log exporter
really sends, captured at its transport."""

from __future__ import annotations

import base64
import gzip
import json
from typing import Any

import pytest
from google.protobuf import json_format
from opentelemetry._logs import SeverityNumber
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import (
    AnyValue,
    ArrayValue,
    InstrumentationScope,
    KeyValue,
    KeyValueList,
)
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord, ResourceLogs, ScopeLogs
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
from opentelemetry.sdk.resources import Resource as SdkResource
from opentelemetry.sdk.trace import TracerProvider

from apps.logs.wire import (
    BodyTooLarge,
    DecodeError,
    PushedEntry,
    PushedStream,
    UnsupportedMediaType,
    decode_otlp_logs,
)
from apps.logs.wire.otlp import render_value
from tests.unit.logs.clients import recording_session

PROTOBUF = "application/x-protobuf"
JSON = "application/json"
NOW = 1_764_400_000_000_000_000
TRACE = bytes.fromhex("5b8efff798038103d269b633813fc60c")
SPAN = bytes.fromhex("eee19b7ec3c1b174")


def attrs(**values: Any) -> list[KeyValue]:
    return [KeyValue(key=key.replace("__", "."), value=any_value(v)) for key, v in values.items()]


def any_value(value: Any) -> AnyValue:
    if isinstance(value, bool):
        return AnyValue(bool_value=value)
    if isinstance(value, int):
        return AnyValue(int_value=value)
    if isinstance(value, float):
        return AnyValue(double_value=value)
    if isinstance(value, bytes):
        return AnyValue(bytes_value=value)
    if isinstance(value, list):
        return AnyValue(array_value=ArrayValue(values=[any_value(v) for v in value]))
    if isinstance(value, dict):
        return AnyValue(kvlist_value=KeyValueList(values=attrs(**value)))
    return AnyValue(string_value=value)


def sample_request() -> ExportLogsServiceRequest:
    resource = Resource(
        attributes=attrs(
            k8s__namespace__name="ml",
            k8s__deployment__name="llama-70b",
            k8s__pod__name="llama-70b-7d9f-abcde",
            service__name="vllm",
            host__name="node-3",
            k8s__container__name="",
        )
    )
    records = [
        LogRecord(
            time_unix_nano=NOW,
            observed_time_unix_nano=NOW + 5,
            severity_number=17,
            severity_text="ERROR",
            body=AnyValue(string_value="CUDA out of memory"),
            attributes=attrs(gpu=3, retry=True, http__route="/v1/chat"),
            trace_id=TRACE,
            span_id=SPAN,
        ),
        LogRecord(
            observed_time_unix_nano=NOW + 7,
            severity_text="Warning",
            body=any_value({"event": "drain", "requests": [1, 2.5, "x"], "raw": b"\x00\xff"}),
        ),
        LogRecord(body=AnyValue(int_value=42)),
    ]
    return ExportLogsServiceRequest(
        resource_logs=[
            ResourceLogs(
                resource=resource,
                scope_logs=[
                    ScopeLogs(
                        scope=InstrumentationScope(
                            name="vllm.engine", version="0.6.1", attributes=attrs(shard="a")
                        ),
                        log_records=records,
                    )
                ],
            )
        ]
    )


EXPECTED_LABELS = (
    ("deployment", "llama-70b"),
    ("namespace", "ml"),
    ("pod", "llama-70b-7d9f-abcde"),
    ("service_name", "vllm"),
)
SHARED = (("scope_name", "vllm.engine"), ("scope_version", "0.6.1"), ("shard", "a"))
EXPECTED_ENTRIES = (
    PushedEntry(
        timestamp_ns=NOW,
        line="CUDA out of memory",
        metadata=(
            ("gpu", "3"),
            ("retry", "true"),
            ("http_route", "/v1/chat"),
            ("severity_text", "ERROR"),
            ("severity_number", "17"),
            *SHARED,
            ("host_name", "node-3"),
        ),
        severity="error",
        trace_id=TRACE.hex(),
        span_id=SPAN.hex(),
    ),
    PushedEntry(
        timestamp_ns=NOW + 7,
        line='{"event":"drain","requests":[1,2.5,"x"],"raw":"AP8="}',
        metadata=(("severity_text", "Warning"), *SHARED, ("host_name", "node-3")),
        severity="warn",
    ),
    PushedEntry(timestamp_ns=NOW, line="42", metadata=(*SHARED, ("host_name", "node-3"))),
)


def test_otlp_protobuf__sample_request__labels_metadata_severity_ids() -> None:
    body = sample_request().SerializeToString()
    streams = decode_otlp_logs(body, content_type=PROTOBUF, now_ns=NOW)
    assert streams == [
        PushedStream(
            labels=EXPECTED_LABELS,
            entries=EXPECTED_ENTRIES,
            origin="resource_logs[0].scope_logs[0]",
        )
    ]


def otlp_json(request: ExportLogsServiceRequest) -> dict[str, Any]:
    """OTLP's JSON encoding of a request: protobuf's JSON mapping (camelCase, 64-bit integers
    as strings) with trace and span ids in hex instead of base64, as the OTLP spec requires."""
    document = json_format.MessageToDict(request)
    for resource_logs in document.get("resourceLogs", []):
        for scope_logs in resource_logs.get("scopeLogs", []):
            for record in scope_logs.get("logRecords", []):
                for key in ("traceId", "spanId"):
                    if key in record:
                        record[key] = base64.b64decode(record[key]).hex()
    return document


def test_otlp_json__same_request__same_streams_as_protobuf() -> None:
    document = otlp_json(sample_request())
    record = document["resourceLogs"][0]["scopeLogs"][0]["logRecords"][0]
    assert record["traceId"] == TRACE.hex()
    assert record["timeUnixNano"] == str(NOW)
    [stream] = decode_otlp_logs(json.dumps(document).encode(), content_type=JSON, now_ns=NOW)
    assert stream.labels == EXPECTED_LABELS
    assert stream.entries == EXPECTED_ENTRIES
    assert stream.origin == "resourceLogs[0].scopeLogs[0]"


def test_otlp_json__hand_written_spec_example__read() -> None:
    """Written as the OTLP spec's example shows it: numbers for int64, snake_case accepted,
    severity by enum name, unknown fields ignored, gzip."""
    document = {
        "resourceLogs": [
            {
                "resource": {
                    "attributes": [
                        {"key": "service.name", "value": {"stringValue": "router"}},
                        {"key": "k8s.namespace.name", "value": {"stringValue": "edge"}},
                    ]
                },
                "scope_logs": [
                    {
                        "scope": {"name": "router"},
                        "logRecords": [
                            {
                                "timeUnixNano": 1544712660300000000,
                                "severityNumber": "SEVERITY_NUMBER_DEBUG",
                                "body": {"stringValue": "upstream picked"},
                                "traceId": "5B8EFFF798038103D269B633813FC60C",
                                "span_id": "EEE19B7EC3C1B174",
                                "somethingNew": {"x": 1},
                                "attributes": [{"key": "n", "value": {"intValue": "7"}}],
                            }
                        ],
                    }
                ],
            }
        ]
    }
    body = gzip.compress(json.dumps(document).encode())
    [stream] = decode_otlp_logs(body, content_type=JSON, content_encoding="gzip", now_ns=NOW)
    assert stream.labels == (("namespace", "edge"), ("service_name", "router"))
    assert stream.entries == (
        PushedEntry(
            timestamp_ns=1544712660300000000,
            line="upstream picked",
            metadata=(("n", "7"), ("severity_number", "5"), ("scope_name", "router")),
            severity="debug",
            trace_id=TRACE.hex(),
            span_id=SPAN.hex(),
        ),
    )


def test_otlp_sdk_exporter__real_body__decoded() -> None:
    """The OpenTelemetry SDK's OTLP/HTTP log exporter (gzip), emitting through the SDK's logger
    inside a span; its request is captured at the requests transport instead of sent."""
    session, adapter = recording_session(200)
    exporter = OTLPLogExporter(
        endpoint="http://127.0.0.1:9/v1/logs", session=session, compression=Compression.Gzip
    )
    provider = LoggerProvider(
        resource=SdkResource.create(
            {"service.name": "trainer", "k8s.namespace.name": "ml", "k8s.pod.name": "t-0"}
        )
    )
    provider.add_log_record_processor(SimpleLogRecordProcessor(exporter))
    logger = provider.get_logger("wire-test.otlp", "1.2")
    tracer = TracerProvider().get_tracer("wire-test")
    try:
        with tracer.start_as_current_span("step") as span:
            logger.emit(
                severity_number=SeverityNumber.WARN,
                severity_text="WARN",
                body="loss is nan",
                attributes={"step": 1200, "run.id": "r7"},
            )
        logger.emit(
            severity_number=SeverityNumber.INFO,
            body={"checkpoint": "saved", "step": 1300},
            event_name="checkpoint",
        )
    finally:
        provider.shutdown()
    assert len(adapter.requests) == 2
    context = span.get_span_context()
    decoded = []
    for request in adapter.requests:
        assert request.headers["Content-Encoding"] == "gzip"
        assert isinstance(request.body, bytes)
        decoded += decode_otlp_logs(
            request.body,
            content_type=request.headers["Content-Type"],
            content_encoding=request.headers["Content-Encoding"],
            now_ns=NOW,
        )
    warning, info = (stream.entries[0] for stream in decoded)
    assert {stream.labels for stream in decoded} == {
        (("namespace", "ml"), ("pod", "t-0"), ("service_name", "trainer"))
    }
    assert (warning.line, warning.severity) == ("loss is nan", "warn")
    assert warning.trace_id == f"{context.trace_id:032x}"
    assert warning.span_id == f"{context.span_id:016x}"
    metadata = dict(warning.metadata)
    assert metadata["step"] == "1200"
    assert metadata["run_id"] == "r7"
    assert metadata["scope_name"] == "wire-test.otlp"
    assert metadata["scope_version"] == "1.2"
    assert metadata["telemetry_sdk_language"] == "python"
    assert info.line == '{"checkpoint":"saved","step":1300}'
    assert (info.severity, info.trace_id) == ("info", "")
    assert dict(info.metadata)["event_name"] == "checkpoint"
    # The SDK stamps the observed time; the decoder falls back to it.
    assert warning.timestamp_ns > 1_700_000_000 * 10**9


def test_otlp__no_service_name__unknown_service_label() -> None:
    request = ExportLogsServiceRequest(
        resource_logs=[
            ResourceLogs(
                resource=Resource(
                    attributes=attrs(k8s__pod__name="p", deployment__environment="x")
                ),
                scope_logs=[ScopeLogs(log_records=[LogRecord(time_unix_nano=1)])],
            ),
            ResourceLogs(scope_logs=[ScopeLogs(log_records=[LogRecord(time_unix_nano=2)])]),
        ]
    )
    first, second = decode_otlp_logs(request.SerializeToString(), content_type=PROTOBUF, now_ns=NOW)
    assert first.labels == (
        ("deployment_environment", "x"),
        ("pod", "p"),
        ("service_name", "unknown_service"),
    )
    assert second.labels == (("service_name", "unknown_service"),)


def test_otlp__record_attribute_shadows_resource_one__record_wins() -> None:
    request = ExportLogsServiceRequest(
        resource_logs=[
            ResourceLogs(
                resource=Resource(attributes=attrs(host__name="resource", zone="z1")),
                scope_logs=[
                    ScopeLogs(
                        scope=InstrumentationScope(attributes=attrs(zone="scope")),
                        log_records=[
                            LogRecord(time_unix_nano=1, attributes=attrs(host_name="rec"))
                        ],
                    )
                ],
            )
        ]
    )
    [stream] = decode_otlp_logs(request.SerializeToString(), content_type=PROTOBUF, now_ns=NOW)
    assert stream.entries[0].metadata == (("host_name", "rec"), ("zone", "scope"))


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (AnyValue(), ""),
        (AnyValue(string_value='a "quoted" ✓'), 'a "quoted" ✓'),
        (AnyValue(bool_value=False), "false"),
        (AnyValue(int_value=-(2**63)), str(-(2**63))),
        (AnyValue(double_value=0.1), "0.1"),
        (AnyValue(double_value=float("nan")), "nan"),
        (AnyValue(double_value=float("-inf")), "-inf"),
        (AnyValue(bytes_value=b"\x01\x02"), "AQI="),
        (any_value({"a": {"b": [True, None]}}), '{"a":{"b":[true,null]}}'),
        (any_value(["é", 1]), '["é",1]'),
    ],
)
def test_render_value__each_kind__text(value: AnyValue, text: str) -> None:
    assert render_value(value) == text


def test_otlp__severity_number_bands__levels() -> None:
    numbers = [1, 4, 5, 9, 13, 16, 17, 21, 24, 0, 25]
    request = ExportLogsServiceRequest(
        resource_logs=[
            ResourceLogs(
                scope_logs=[
                    ScopeLogs(
                        log_records=[
                            LogRecord(time_unix_nano=1, severity_number=n, severity_text="fatal")
                            for n in numbers
                        ]
                    )
                ]
            )
        ]
    )
    [stream] = decode_otlp_logs(request.SerializeToString(), content_type=PROTOBUF, now_ns=NOW)
    # 0 and an out-of-range number fall back to the text.
    assert [e.severity for e in stream.entries] == [
        "trace", "trace", "debug", "info", "warn", "warn", "error", "fatal", "fatal", "fatal",
        "fatal",
    ]  # fmt: skip


# -------------------------------------------------------------------------- malformed


def one_record_json(record: dict[str, Any]) -> bytes:
    return json.dumps(
        {"resourceLogs": [{"scopeLogs": [{"logRecords": [{"timeUnixNano": "1"}, record]}]}]}
    ).encode()


RECORD_AT = "resourceLogs[0].scopeLogs[0].logRecords[1]"


@pytest.mark.parametrize(
    ("record", "location", "says"),
    [
        ({"traceId": "abc"}, f"{RECORD_AT}.traceId", "expected 32 hex digits"),
        ({"traceId": "z" * 32}, f"{RECORD_AT}.traceId", "expected 32 hex digits"),
        ({"trace_id": TRACE.hex() + "00"}, f"{RECORD_AT}.trace_id", "expected 32 hex"),
        ({"spanId": 5}, f"{RECORD_AT}.spanId", "expected a hex string, got a number"),
        ({"spanId": base64.b64encode(SPAN).decode()}, f"{RECORD_AT}.spanId", "16 hex digits"),
        ({"timeUnixNano": "soon"}, RECORD_AT, "timeUnixNano"),
        ({"body": {"stringValue": 5}}, RECORD_AT, "stringValue"),
        ({"attributes": {"k": "v"}}, RECORD_AT, "attributes"),
        ({"timeUnixNano": str(2**63)}, f"{RECORD_AT}.timeUnixNano", "after the year 2262"),
    ],
)
def test_otlp_json__bad_record__refused_at_its_place(
    record: dict[str, Any], location: str, says: str
) -> None:
    with pytest.raises(DecodeError) as caught:
        decode_otlp_logs(one_record_json(record), content_type=JSON, now_ns=NOW)
    assert caught.value.location == location
    assert says in caught.value.reason


@pytest.mark.parametrize(
    ("document", "location"),
    [
        ([], ""),
        ({"resourceLogs": {}}, "resourceLogs"),
        ({"resourceLogs": [1]}, "resourceLogs[0]"),
        ({"resourceLogs": [{"resource": []}]}, "resourceLogs[0].resource"),
        ({"resourceLogs": [{"scopeLogs": "x"}]}, "resourceLogs[0].scopeLogs"),
        ({"resourceLogs": [{"scopeLogs": [{"scope": 1}]}]}, "resourceLogs[0].scopeLogs[0].scope"),
        (
            {"resourceLogs": [{"scopeLogs": [{"logRecords": [[]]}]}]},
            "resourceLogs[0].scopeLogs[0].logRecords[0]",
        ),
    ],
)
def test_otlp_json__wrong_structure__refused_at_its_place(document: Any, location: str) -> None:
    with pytest.raises(DecodeError) as caught:
        decode_otlp_logs(json.dumps(document).encode(), content_type=JSON, now_ns=NOW)
    assert caught.value.location == location


def test_otlp_json__not_json__refused() -> None:
    with pytest.raises(DecodeError, match="invalid JSON"):
        decode_otlp_logs(b'{"resourceLogs": [', content_type=JSON, now_ns=NOW)


@pytest.mark.parametrize(("field", "size"), [("trace_id", 16), ("span_id", 8)])
def test_otlp_protobuf__id_of_wrong_size__refused(field: str, size: int) -> None:
    record = LogRecord(time_unix_nano=1, **{field: b"\x01" * (size - 1)})
    request = ExportLogsServiceRequest(
        resource_logs=[ResourceLogs(scope_logs=[ScopeLogs(log_records=[LogRecord(), record])])]
    )
    with pytest.raises(DecodeError) as caught:
        decode_otlp_logs(request.SerializeToString(), content_type=PROTOBUF, now_ns=NOW)
    assert caught.value.location == f"resource_logs[0].scope_logs[0].log_records[1].{field}"
    assert caught.value.reason == f"must be {size} bytes, got {size - 1}"


def test_otlp_protobuf__all_zero_ids__treated_as_absent() -> None:
    record = LogRecord(time_unix_nano=1, trace_id=bytes(16), span_id=bytes(8))
    request = ExportLogsServiceRequest(
        resource_logs=[ResourceLogs(scope_logs=[ScopeLogs(log_records=[record])])]
    )
    [stream] = decode_otlp_logs(request.SerializeToString(), content_type=PROTOBUF, now_ns=NOW)
    assert (stream.entries[0].trace_id, stream.entries[0].span_id) == ("", "")


def test_otlp_protobuf__truncated_or_garbage__refused() -> None:
    body = sample_request().SerializeToString()
    for broken in (body[: len(body) // 2], body[:-1], b"\xff\xff\xff"):
        with pytest.raises(DecodeError, match="not a valid ExportLogsServiceRequest"):
            decode_otlp_logs(broken, content_type=PROTOBUF, now_ns=NOW)


def test_otlp_protobuf__timestamp_past_int64__refused() -> None:
    request = ExportLogsServiceRequest(
        resource_logs=[
            ResourceLogs(scope_logs=[ScopeLogs(log_records=[LogRecord(time_unix_nano=2**64 - 1)])])
        ]
    )
    with pytest.raises(DecodeError) as caught:
        decode_otlp_logs(request.SerializeToString(), content_type=PROTOBUF, now_ns=NOW)
    assert caught.value.location == "resource_logs[0].scope_logs[0].log_records[0].time_unix_nano"


def test_otlp__media_type_and_size__refused() -> None:
    body = sample_request().SerializeToString()
    with pytest.raises(UnsupportedMediaType):
        decode_otlp_logs(body, content_type="application/grpc", now_ns=NOW)
    with pytest.raises(UnsupportedMediaType):
        decode_otlp_logs(body, content_type=PROTOBUF, content_encoding="zstd", now_ns=NOW)
    with pytest.raises(BodyTooLarge):
        decode_otlp_logs(body, content_type=PROTOBUF, now_ns=NOW, max_bytes=len(body) - 1)
    with pytest.raises(BodyTooLarge):
        decode_otlp_logs(
            gzip.compress(b"\x00" * 4096),
            content_type=PROTOBUF,
            content_encoding="gzip",
            now_ns=NOW,
            max_bytes=4095,
        )
