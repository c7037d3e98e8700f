"""Decoding and validating what log shippers push, before anything is stored.

Pure functions, no Django and no database: a body and its headers in, typed records out.

Formats
- Loki push API (`POST /loki/api/v1/push`), `decode_loki_push`:
  - `application/json`: `{"streams": [{"stream": {"app": "api"}, "values": [["<ns>", "<line>"],
    ["<ns>", "<line>", {"trace_id": "..."}]]}]}`; timestamps are strings of nanoseconds since
    the epoch, the optional third element is the entry's structured metadata.
  - `application/x-protobuf` (or no Content-Type): `logproto.PushRequest` compressed with
    snappy's block format; each stream's labels are the text `{app="api", env="prod"}`.
  - Content-Encoding `gzip` or `deflate` on either.
- OTLP/HTTP logs (`POST /v1/logs`), `decode_otlp_logs`: `ExportLogsServiceRequest` in
  protobuf or OTLP JSON, optionally gzip. How resources become labels and what is kept as
  structured metadata is described in `apps.logs.wire.otlp`.

Both return `PushedStream`s (labels sorted, empty values dropped) of `PushedEntry`s (timestamp
in ns, line, structured metadata, normalized severity, trace and span ids in hex).

Errors and refusals
- A body that cannot be read raises `DecodeError` (answer 400) naming where
  (`streams[2].values[5][0]: ...`), `BodyTooLarge` (413) when the body or what it
  decompresses to passes the size limit (decompression stops there: a zip bomb costs at most
  the limit), or `UnsupportedMediaType` (415). Nothing from such a body is accepted.
- `validate_push` applies Loki's limits (`Limits`, Loki's defaults) to a decoded push. Its rule
  is Loki's: entries that break a limit are refused with their reason, the rest are accepted,
  and the endpoint answers 400 listing the refusals (`PushValidation.error_text`) when there
  are any, after storing what was accepted. A label rule refuses its whole stream; a time,
  line or metadata rule one entry. Within a push, the same stream, timestamp and line is one
  entry. `stream_fingerprint` is the stable identity (sha256) of a label set for storage.
"""

from .body import DEFAULT_MAX_BODY_BYTES
from .labels import LabelSyntaxError, format_labels, parse_labels
from .limits import Limits, PushValidation, Refusal, validate_push
from .loki import decode_loki_push
from .otlp import decode_otlp_logs
from .types import (
    BodyTooLarge,
    DecodeError,
    PushedEntry,
    PushedStream,
    UnsupportedMediaType,
    stream_fingerprint,
)

__all__ = [
    "DEFAULT_MAX_BODY_BYTES",
    "BodyTooLarge",
    "DecodeError",
    "LabelSyntaxError",
    "Limits",
    "PushValidation",
    "PushedEntry",
    "PushedStream",
    "Refusal",
    "UnsupportedMediaType",
    "decode_loki_push",
    "decode_otlp_logs",
    "format_labels",
    "parse_labels",
    "stream_fingerprint",
    "validate_push",
]
