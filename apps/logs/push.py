"""The push endpoints log shippers call: Loki's ``POST /loki/api/v1/push`` and OTLP/HTTP's
``POST /v1/logs`` (also at ``/otlp/v1/logs``, where the OpenTelemetry Collector's
``otlphttp`` exporter sends when its endpoint ends in ``/otlp``).

Plain Django views: the body is read raw, bounded by ``LOGS_MAX_BODY_BYTES`` (413 from the
declared Content-Length before anything is read, and never more than the limit read), and
handed to the wire decoders. The team is the ingest token's (``Authorization: Bearer
<token>``, or basic auth with the token as password); ``X-Scope-OrgID`` and labels never
choose it. Answers:

- Loki: 204 once everything is stored; 400 listing the refused entries after storing the
  valid ones (Loki's rule).
- OTLP: 200 with an ``ExportLogsServiceResponse`` in the request's encoding, with
  ``partial_success`` (the refused records and why) when some were refused.
- Both: 401 for a missing or unknown token (and 429 when a client keeps failing), 413, 415,
  400 for a body that cannot be read (nothing stored), 429 with Retry-After past the team's
  rate (nothing stored), 503 when the store failed (retry: nothing is stored twice). Errors
  are JSON ``{"detail": ...}``; OTLP's also carry ``code`` and ``message`` (a
  ``google.rpc.Status`` in OTLP's JSON encoding).
"""

from __future__ import annotations

import time
from collections.abc import Callable

import structlog
from django.conf import settings
from django.contrib.auth.models import AnonymousUser
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST
from google.protobuf import json_format
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceResponse

from apps.accounts.authentication import (
    BearerTokenAuthentication,
    CredentialsRefused,
    TokenKind,
    TokenRefused,
    basic_credentials,
    plain_view_authenticate,
)
from apps.accounts.throttling import FailureLimit

from .models import IngestToken
from .selectors import IngestLimits, ingest_limits, ingest_token_authenticate
from .services import PushNotStored, PushOutcome, PushRateLimited, ingest_token_touch, logs_push
from .wire import DecodeError, PushedStream, decode_loki_push, decode_otlp_logs
from .wire.body import media_type

logger = structlog.get_logger("controlplane.logs")

# google.rpc.Code values of OTLP's error Status, by HTTP status.
_RPC_CODES = {400: 3, 401: 16, 413: 3, 415: 3, 429: 8, 503: 14}


def ingest_token_limit() -> FailureLimit:
    return FailureLimit(
        "ingest-token", settings.API_TOKEN_FAILURE_LIMIT, settings.API_TOKEN_FAILURE_WINDOW_S
    )


def _ingest_token_resolve(scheme: str, credentials: str) -> tuple[AnonymousUser, IngestToken]:
    if scheme == "bearer":
        secret = credentials.strip()
    else:
        # The user name is free (Promtail and Fluent Bit require one): the token decides.
        _, secret = basic_credentials(credentials)
    token = ingest_token_authenticate(token=secret)
    if token is None:
        raise TokenRefused("Unknown or revoked ingest token.", keys=[f"prefix:{secret[:13]}"])
    return AnonymousUser(), token


# Guessing ingest tokens is slowed down like guessing API and receiver tokens.
INGEST_TOKEN = TokenKind(
    name="ingest token",
    realm="logs",
    limit=ingest_token_limit,
    schemes=("bearer", "basic"),
    missing="Authentication credentials were not provided: send the team's ingest token as "
    "'Authorization: Bearer <token>' or as the password of basic auth.",
    resolve=_ingest_token_resolve,
)


class IngestTokenAuthentication(BearerTokenAuthentication):
    """An ingest token as a bearer token or as the password of basic auth."""

    kind = INGEST_TOKEN


class _Refused(Exception):
    def __init__(self, status: int, detail: str, headers: dict[str, str] | None = None) -> None:
        self.status = status
        self.detail = detail
        self.headers = headers or {}
        super().__init__(detail)


def _authenticate(request: HttpRequest) -> IngestToken:
    try:
        token = plain_view_authenticate(request, IngestTokenAuthentication())
    except CredentialsRefused as exc:
        raise _Refused(exc.status, exc.detail, exc.headers) from None
    if not isinstance(token, IngestToken):
        raise _Refused(401, INGEST_TOKEN.missing)
    return token


def _read_body(request: HttpRequest, limit: int) -> bytes:
    if not request.META.get("CONTENT_LENGTH") and request.META.get("HTTP_TRANSFER_ENCODING"):
        # WSGI reads a body by its length: a chunked one would read as empty.
        raise _Refused(411, "Send the body with a Content-Length (chunked bodies are not read).")
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        raise _Refused(400, "Content-Length is not a number.") from None
    too_large = f"The request body is too large: at most {limit} bytes are accepted."
    if declared > limit:
        raise _Refused(413, too_large)
    body = request.read(limit + 1)
    if len(body) > limit:
        raise _Refused(413, too_large)
    return body


def _push(
    request: HttpRequest, decode: Callable[[bytes, IngestLimits, int], list[PushedStream]]
) -> PushOutcome:
    token = _authenticate(request)
    # Read with the token (None when the team has no settings of its own).
    limits = ingest_limits(own=getattr(token.team, "log_settings", None))
    body = _read_body(request, limits.max_body_bytes)
    now_ns = time.time_ns()
    try:
        streams = decode(body, limits, now_ns)
    except DecodeError as exc:
        raise _Refused(exc.http_status, str(exc)) from None
    try:
        outcome = logs_push(team=token.team, streams=streams, limits=limits, now_ns=now_ns)
    except PushRateLimited as exc:
        raise _Refused(
            429,
            f"Ingestion rate limit exceeded for team {token.team.slug}: nothing was stored; "
            f"retry in {exc.wait_s} s.",
            {"Retry-After": str(exc.wait_s)},
        ) from None
    except PushNotStored:
        raise _Refused(
            503, "The log store is unavailable: nothing was stored; retry.", {"Retry-After": "1"}
        ) from None
    ingest_token_touch(token=token)
    return outcome


def _refusals(outcome: PushOutcome) -> list[dict[str, object]]:
    return [
        {"location": r.location, "reason": r.reason, "message": r.message, "entries": r.entries}
        for r in outcome.validation.refused
    ]


def _error(exc: _Refused, *, otlp: bool = False) -> JsonResponse:
    body: dict[str, object] = {"detail": exc.detail}
    if otlp:
        body.update(code=_RPC_CODES.get(exc.status, 2), message=exc.detail)
    response = JsonResponse(body, status=exc.status)
    for name, value in exc.headers.items():
        response[name] = value
    return response


@csrf_exempt
@require_POST
def loki_push(request: HttpRequest) -> HttpResponse:
    """Loki's push API: JSON (optionally gzip) or protobuf + snappy."""

    def decode(body: bytes, limits: IngestLimits, now_ns: int) -> list[PushedStream]:
        return decode_loki_push(
            body,
            content_type=request.META.get("CONTENT_TYPE", ""),
            content_encoding=request.META.get("HTTP_CONTENT_ENCODING", ""),
            max_bytes=limits.max_body_bytes,
        )

    try:
        outcome = _push(request, decode)
    except _Refused as exc:
        return _error(exc)
    if outcome.validation.refused:
        return JsonResponse(
            {"detail": outcome.validation.error_text(), "refused": _refusals(outcome)},
            status=400,
        )
    return HttpResponse(status=204)


@csrf_exempt
@require_POST
def otlp_logs(request: HttpRequest) -> HttpResponse:
    """OTLP/HTTP logs: an ExportLogsServiceRequest in protobuf or JSON (optionally gzip)."""
    content_type = request.META.get("CONTENT_TYPE", "")

    def decode(body: bytes, limits: IngestLimits, now_ns: int) -> list[PushedStream]:
        return decode_otlp_logs(
            body,
            content_type=content_type,
            now_ns=now_ns,
            content_encoding=request.META.get("HTTP_CONTENT_ENCODING", ""),
            max_bytes=limits.max_body_bytes,
        )

    try:
        outcome = _push(request, decode)
    except _Refused as exc:
        return _error(exc, otlp=True)
    answer = ExportLogsServiceResponse()
    if outcome.validation.refused:
        answer.partial_success.rejected_log_records = outcome.validation.refused_lines
        answer.partial_success.error_message = outcome.validation.error_text()
    if media_type(content_type) == "application/json":
        return JsonResponse(json_format.MessageToDict(answer), status=200)
    return HttpResponse(
        answer.SerializeToString(), status=200, content_type="application/x-protobuf"
    )
