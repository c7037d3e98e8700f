"""Log ingestion over HTTP: the Loki push API and OTLP/HTTP logs, with per-team ingest tokens.

Real clients push into pytest-django's live server (the `python-logging-loki` handler, the
OpenTelemetry SDK's OTLP/HTTP log exporter); the error cases use Django's test client. What
was stored is read back through the log store."""

from __future__ import annotations

import gzip
import json
import logging
import sys
import time
from typing import Any

import logging_loki
import pytest
from django.core.cache import cache
from django.test import Client
from django.utils import timezone
from google.protobuf import json_format
from opentelemetry._logs import SeverityNumber
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import LogRecordExportResult, SimpleLogRecordProcessor
from opentelemetry.sdk.resources import Resource as SdkResource
from opentelemetry.sdk.trace import TracerProvider
from prometheus_client import REGISTRY

from apps.accounts.models import Team
from apps.logs import services as logs_services
from apps.logs.models import IngestToken, LogStream, TeamLogSettings
from apps.logs.selectors import INGEST_TOKEN_CACHE_S, ingest_token_authenticate
from apps.logs.services import ingest_token_create, ingest_token_revoke
from apps.logs.storage.base import LogSelect, StoredEntry
from apps.logs.storage.sql import SqlLogStore
from apps.logs.wire.loki import PushRequest
from tests.factories.inventory import DeploymentFactory
from tests.unit.logs.test_wire_loki import snappy

LOKI = "/loki/api/v1/push"
OTLP = "/v1/logs"
SECOND = 10**9


@pytest.fixture(autouse=True)
def _fresh_buckets() -> None:
    """Rate buckets live in the cache: each test starts with full ones."""
    cache.clear()


@pytest.fixture
def token(roster: Any) -> str:
    return ingest_token_create(team=roster.team, name="shippers", actor=roster.admin)[1]


def stored(store: SqlLogStore, team: Team) -> list[StoredEntry]:
    query = LogSelect(team_id=team.pk, start_ns=0, end_ns=2**62)
    return store.select(query, limit=1000, direction="forward").entries


def loki_json(*streams: tuple[dict[str, str], list[tuple[int, str]]]) -> bytes:
    return json.dumps(
        {
            "streams": [
                {"stream": labels, "values": [[str(ts), line] for ts, line in values]}
                for labels, values in streams
            ]
        }
    ).encode()


def push(client: Client, body: bytes, token: str | None, **headers: Any) -> Any:
    extra = {"HTTP_AUTHORIZATION": f"Bearer {token}"} if token else {}
    headers.setdefault("content_type", "application/json")
    return client.post(LOKI, body, **extra, **headers)


def counted(team: Team, outcome: str, what: str = "lines") -> float:
    value = REGISTRY.get_sample_value(
        f"controlplane_logs_ingested_{what}_total", {"team": team.slug, "outcome": outcome}
    )
    return value or 0.0


# --------------------------------------------------------------------------- real clients


@pytest.mark.django_db(transaction=True)
def test_python_logging_loki_handler__live_server_basic_auth__lines_stored(
    live_server: Any, roster: Any, token: str, sql_log_store: SqlLogStore
) -> None:
    handler = logging_loki.LokiHandler(
        url=f"{live_server.url}{LOKI}",
        tags={"app": "trainer"},
        auth=("anyone", token),
        version="1",
    )
    failures: list[BaseException | None] = []
    handler.handleError = lambda record: failures.append(sys.exc_info()[1])  # type: ignore[method-assign]
    logger = logging.getLogger("ingest-test.loki")
    logger.propagate = False
    logger.addHandler(handler)
    try:
        logger.error("CUDA out of memory on gpu 3", extra={"tags": {"replica": "r-1"}})
        logger.warning("slow step")
    finally:
        logger.removeHandler(handler)

    assert failures == []
    entries = stored(sql_log_store, roster.team)
    assert [(e.line, e.severity) for e in entries] == [
        ("CUDA out of memory on gpu 3", "error"),
        ("slow step", "warn"),
    ]
    assert dict(entries[0].labels)["replica"] == "r-1"
    assert stored(sql_log_store, roster.other_team) == []
    assert IngestToken.objects.get().last_used_at is not None


@pytest.mark.django_db(transaction=True)
def test_otlp_sdk_exporter__live_server_bearer__resource_labels_severity_and_ids_kept(
    live_server: Any, roster: Any, token: str, sql_log_store: SqlLogStore
) -> None:
    exporter = OTLPLogExporter(
        endpoint=f"{live_server.url}/v1/logs", headers={"Authorization": f"Bearer {token}"}
    )
    results: list[LogRecordExportResult] = []
    real_export = exporter.export

    def export(batch: Any) -> LogRecordExportResult:
        results.append(real_export(batch))
        return results[-1]

    exporter.export = export  # type: ignore[method-assign]
    provider = LoggerProvider(
        resource=SdkResource.create(
            {
                "service.name": "vllm",
                "k8s.namespace.name": "llm",
                "k8s.deployment.name": "chat",
                "k8s.pod.name": "chat-0",
            }
        )
    )
    provider.add_log_record_processor(SimpleLogRecordProcessor(exporter))
    logger = provider.get_logger("ingest-test.otlp")
    tracer = TracerProvider().get_tracer("ingest-test")
    try:
        with tracer.start_as_current_span("generate") as span:
            logger.emit(
                severity_number=SeverityNumber.ERROR,
                severity_text="ERROR",
                body="request aborted during drain",
            )
    finally:
        provider.shutdown()

    assert results == [LogRecordExportResult.SUCCESS]
    [entry] = stored(sql_log_store, roster.team)
    assert dict(entry.labels) == {
        "namespace": "llm",
        "deployment": "chat",
        "pod": "chat-0",
        "service_name": "vllm",
    }
    context = span.get_span_context()
    assert (entry.line, entry.severity) == ("request aborted during drain", "error")
    assert entry.trace_id == f"{context.trace_id:032x}"
    assert entry.span_id == f"{context.span_id:016x}"


# --------------------------------------------------------------------------- Loki push


def test_loki_protobuf_snappy__stored_with_metadata(
    roster: Any, token: str, sql_log_store: SqlLogStore
) -> None:
    now = time.time_ns()
    request = PushRequest()
    stream = request.streams.add(labels=b'{app="api", env="prod"}')
    entry = stream.entries.add(line=b"GET /v1/chat 200")
    entry.timestamp.seconds, entry.timestamp.nanos = divmod(now, SECOND)
    entry.structuredMetadata.add(name=b"trace_id", value=b"0af7651916cd43dd8448eb211c80319c")

    response = Client().post(
        LOKI,
        snappy(request.SerializeToString()),
        content_type="application/x-protobuf",
        HTTP_AUTHORIZATION=f"Bearer {token}",
    )

    assert response.status_code == 204, response.content
    [saved] = stored(sql_log_store, roster.team)
    assert (saved.line, saved.timestamp_ns, saved.labels) == (
        "GET /v1/chat 200",
        now,
        (("app", "api"), ("env", "prod")),
    )
    assert saved.trace_id == "0af7651916cd43dd8448eb211c80319c"


def test_loki_json_gzip__stored(roster: Any, token: str, sql_log_store: SqlLogStore) -> None:
    body = gzip.compress(loki_json(({"app": "api"}, [(time.time_ns(), "zipped")])))
    response = push(Client(), body, token, HTTP_CONTENT_ENCODING="gzip")
    assert response.status_code == 204
    assert [e.line for e in stored(sql_log_store, roster.team)] == ["zipped"]


@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer lcpl_not-a-token", "Basic bm90OmEtdG9rZW4=", "Basic %%%", "Token x"],
)
def test_loki_push__missing_or_wrong_token__401_json_nothing_stored(
    roster: Any, token: str, sql_log_store: SqlLogStore, authorization: str | None
) -> None:
    headers = {"HTTP_AUTHORIZATION": authorization} if authorization else {}
    body = loki_json(({"app": "api"}, [(time.time_ns(), "x")]))
    response = Client().post(LOKI, body, content_type="application/json", **headers)
    assert response.status_code == 401
    assert response["Content-Type"] == "application/json"
    assert ("basic credentials" if authorization == "Basic %%%" else "ingest token") in (
        response.json()["detail"]
    )
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert stored(sql_log_store, roster.team) == []
    assert not LogStream.objects.exists()


def test_loki_push__revoked_token__401(roster: Any, sql_log_store: SqlLogStore) -> None:
    issued, secret = ingest_token_create(team=roster.team, name="old", actor=roster.admin)
    ingest_token_revoke(token=issued, actor=roster.admin)
    response = push(Client(), loki_json(({"app": "api"}, [(time.time_ns(), "x")])), secret)
    assert response.status_code == 401
    assert stored(sql_log_store, roster.team) == []


def test_loki_push__token_revoked_after_pushing__next_push_401(
    roster: Any, sql_log_store: SqlLogStore
) -> None:
    issued, secret = ingest_token_create(team=roster.team, name="old", actor=roster.admin)
    body = loki_json(({"app": "api"}, [(time.time_ns(), "x")]))
    assert push(Client(), body, secret).status_code == 204

    ingest_token_revoke(token=issued, actor=roster.admin)

    late = loki_json(({"app": "api"}, [(time.time_ns(), "late")]))
    assert push(Client(), late, secret).status_code == 401
    assert [e.line for e in stored(sql_log_store, roster.team)] == ["x"]


def test_ingest_token_authenticate__revoked_by_another_process__refused_within_cache_seconds(
    roster: Any,
) -> None:
    issued, secret = ingest_token_create(team=roster.team, name="old", actor=roster.admin)
    assert ingest_token_authenticate(token=secret, now=100.0) == issued
    # As another process revokes it: no signal reaches this one's cache.
    IngestToken.objects.filter(pk=issued.pk).update(revoked_at=timezone.now())

    assert ingest_token_authenticate(token=secret, now=100.0 + INGEST_TOKEN_CACHE_S - 0.1)
    assert ingest_token_authenticate(token=secret, now=100.0 + INGEST_TOKEN_CACHE_S) is None


def test_loki_push__team_limits_changed_after_pushing__next_push_uses_them(
    roster: Any, token: str, sql_log_store: SqlLogStore
) -> None:
    now = time.time_ns()
    assert push(Client(), loki_json(({"a": "b"}, [(now, "w" * 90)])), token).status_code == 204

    TeamLogSettings.objects.create(team=roster.team, ingest_bytes_per_s=100, ingest_burst_s=1)

    assert push(Client(), loki_json(({"a": "b"}, [(now + 1, "x" * 90)])), token).status_code == 204
    response = push(Client(), loki_json(({"a": "b"}, [(now + 2, "y" * 90)])), token)
    assert response.status_code == 429


def test_loki_push__repeated_bad_tokens__429_with_retry_after(
    roster: Any, settings: Any, sql_log_store: SqlLogStore
) -> None:
    settings.API_TOKEN_FAILURE_LIMIT = 2
    client = Client()
    body = loki_json(({"app": "api"}, [(time.time_ns(), "x")]))
    statuses = [push(client, body, f"lcpl_guess{i}").status_code for i in range(3)]
    assert statuses == [401, 401, 429]
    response = push(client, body, "lcpl_guess4")
    assert response.status_code == 429
    assert int(response["Retry-After"]) >= 1


def test_loki_push__other_team_named_in_labels_and_scope_header__stored_in_token_team(
    roster: Any, token: str, sql_log_store: SqlLogStore
) -> None:
    secret = ingest_token_create(team=roster.other_team, name="b", actor=roster.outsider)[1]
    body = loki_json(({"team": roster.team.slug, "app": "api"}, [(time.time_ns(), "mine")]))
    response = push(Client(), body, secret, HTTP_X_SCOPE_ORGID=str(roster.team.slug))
    assert response.status_code == 204
    assert stored(sql_log_store, roster.team) == []
    assert [e.line for e in stored(sql_log_store, roster.other_team)] == ["mine"]
    assert set(LogStream.objects.values_list("team_id", flat=True)) == {roster.other_team.pk}


def test_loki_push__same_push_retried__stored_once_counted_duplicate(
    roster: Any, token: str, sql_log_store: SqlLogStore
) -> None:
    now = time.time_ns()
    body = loki_json(({"app": "api"}, [(now, "one"), (now + 1, "two")]))
    accepted, duplicate = counted(roster.team, "accepted"), counted(roster.team, "duplicate")
    assert push(Client(), body, token).status_code == 204
    assert push(Client(), body, token).status_code == 204
    assert [e.line for e in stored(sql_log_store, roster.team)] == ["one", "two"]
    assert counted(roster.team, "accepted") - accepted == 2
    assert counted(roster.team, "duplicate") - duplicate == 2
    exposed = Client().get("/metrics").content.decode()
    assert (
        f'controlplane_logs_ingested_lines_total{{outcome="accepted",team="{roster.team.slug}"}}'
        in exposed
    )


def test_loki_push__declared_body_over_limit__413_before_reading(
    roster: Any, token: str, settings: Any, sql_log_store: SqlLogStore
) -> None:
    settings.LOGS_MAX_BODY_BYTES = 2048
    body = loki_json(({"app": "api"}, [(time.time_ns(), "x" * 4000)]))
    response = push(Client(), body, token)
    assert response.status_code == 413
    assert "2048" in response.json()["detail"]
    assert stored(sql_log_store, roster.team) == []


def test_loki_push__declared_length_over_limit_small_body__413_without_reading(
    roster: Any, token: str, settings: Any, sql_log_store: SqlLogStore
) -> None:
    settings.LOGS_MAX_BODY_BYTES = 2048
    body = loki_json(({"app": "api"}, [(time.time_ns(), "small")]))
    response = push(Client(), body, token, CONTENT_LENGTH="2049")
    assert response.status_code == 413
    assert stored(sql_log_store, roster.team) == []


def test_loki_push__chunked_without_length__411(roster: Any, token: str) -> None:
    response = push(Client(), b"", token, CONTENT_LENGTH="", HTTP_TRANSFER_ENCODING="chunked")
    assert response.status_code == 411
    assert "Content-Length" in response.json()["detail"]


def test_loki_push__gzip_bomb__413(
    roster: Any, token: str, settings: Any, sql_log_store: SqlLogStore
) -> None:
    settings.LOGS_MAX_BODY_BYTES = 64 * 1024
    body = gzip.compress(b" " * (1024 * 1024))
    response = push(Client(), body, token, HTTP_CONTENT_ENCODING="gzip")
    assert response.status_code == 413


def test_loki_push__body_between_form_limit_and_log_limit__accepted(
    roster: Any, token: str, settings: Any, sql_log_store: SqlLogStore
) -> None:
    """The API's form-body limit does not apply to pushes: theirs is LOGS_MAX_BODY_BYTES."""
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 4096
    body = loki_json(({"app": "api"}, [(time.time_ns() + i, "y" * 100) for i in range(100)]))
    assert len(body) > 4096
    assert push(Client(), body, token).status_code == 204
    assert len(stored(sql_log_store, roster.team)) == 100


def test_loki_push__unknown_content_type__415(roster: Any, token: str) -> None:
    response = push(Client(), b"hello", token, content_type="text/plain")
    assert response.status_code == 415
    assert "text/plain" in response.json()["detail"]


def test_loki_push__malformed_json__400_naming_place_nothing_stored(
    roster: Any, token: str, sql_log_store: SqlLogStore
) -> None:
    body = json.dumps({"streams": [{"stream": {"a": "b"}, "values": [["12x", "line"]]}]})
    response = push(Client(), body.encode(), token)
    assert response.status_code == 400
    assert "streams[0].values[0][0]" in response.json()["detail"]
    assert stored(sql_log_store, roster.team) == []


def test_loki_push__some_entries_refused__400_listing_them_valid_ones_stored(
    roster: Any, token: str, settings: Any, sql_log_store: SqlLogStore
) -> None:
    settings.LOGS_MAX_LINE_SIZE = 50
    now = time.time_ns()
    too_old = now - 30 * 86_400 * SECOND
    body = loki_json(
        ({"app": "api"}, [(now, "fine"), (too_old, "ancient"), (now + 1, "z" * 80)]),
        ({"bad-name": "x"}, [(now, "bad stream")]),
    )
    refused_before = counted(roster.team, "refused")
    response = push(Client(), body, token)
    assert response.status_code == 400
    answer = response.json()
    assert [(r["location"], r["reason"]) for r in answer["refused"]] == [
        ("streams[0] entry 1", "greater_than_max_sample_age"),
        ("streams[0] entry 2", "line_too_long"),
        ("streams[1]", "invalid_labels"),
    ]
    assert "streams[0] entry 1" in answer["detail"]
    assert [e.line for e in stored(sql_log_store, roster.team)] == ["fine"]
    assert counted(roster.team, "refused") - refused_before == 3


@pytest.mark.parametrize("shared_cache", ["configured", "redis"])
def test_loki_push__over_team_rate__429_retry_after_nothing_stored(
    roster: Any,
    token: str,
    settings: Any,
    sql_log_store: SqlLogStore,
    shared_cache: str,
    request: pytest.FixtureRequest,
) -> None:
    if shared_cache == "redis":
        request.getfixturevalue("redis_cache")
    settings.LOGS_INGEST_LINES_PER_S = 10
    settings.LOGS_INGEST_BURST_S = 1.0
    now = time.time_ns()
    first = loki_json(({"app": "api"}, [(now + i, f"a{i}") for i in range(10)]))
    second = loki_json(({"app": "api"}, [(now + 100 + i, f"b{i}") for i in range(5)]))
    assert push(Client(), first, token).status_code == 204
    response = push(Client(), second, token)
    assert response.status_code == 429
    assert int(response["Retry-After"]) >= 1
    assert "rate limit" in response.json()["detail"]
    assert len(stored(sql_log_store, roster.team)) == 10
    # Another team has buckets of its own.
    other = ingest_token_create(team=roster.other_team, name="b", actor=roster.outsider)[1]
    assert push(Client(), second, other).status_code == 204


def test_loki_push__team_bytes_override__429_for_that_team_only(
    roster: Any, token: str, sql_log_store: SqlLogStore
) -> None:
    TeamLogSettings.objects.create(team=roster.team, ingest_bytes_per_s=100, ingest_burst_s=1)
    now = time.time_ns()
    assert push(Client(), loki_json(({"a": "b"}, [(now, "x" * 90)])), token).status_code == 204
    response = push(Client(), loki_json(({"a": "b"}, [(now + 1, "y" * 90)])), token)
    assert response.status_code == 429
    other = ingest_token_create(team=roster.other_team, name="b", actor=roster.outsider)[1]
    assert push(Client(), loki_json(({"a": "b"}, [(now, "y" * 90)])), other).status_code == 204


class _BrokenStore:
    vendor = "sqlite"

    def write(self, **kwargs: Any) -> Any:
        raise ConnectionError("the database went away")


def test_loki_push__store_fails__503_then_retry_stores_once(
    roster: Any, token: str, monkeypatch: pytest.MonkeyPatch, sql_log_store: SqlLogStore
) -> None:
    body = loki_json(({"app": "api"}, [(time.time_ns(), "kept")]))
    monkeypatch.setattr(logs_services, "log_store", _BrokenStore)
    response = push(Client(), body, token)
    assert response.status_code == 503
    assert response["Retry-After"] == "1"
    monkeypatch.undo()
    assert push(Client(), body, token).status_code == 204
    assert [e.line for e in stored(sql_log_store, roster.team)] == ["kept"]


def test_loki_push__get__405_json(token: str) -> None:
    response = Client().get(LOKI, HTTP_AUTHORIZATION=f"Bearer {token}")
    assert response.status_code == 405
    assert response["Content-Type"] == "application/json"


# --------------------------------------------------------------------------- deployments


def test_loki_push__stream_labels_match_deployment_selector__linked(
    roster: Any, token: str, sql_log_store: SqlLogStore
) -> None:
    chat = DeploymentFactory(team=roster.team, prometheus_selector='{namespace="llm", app="chat"}')
    DeploymentFactory(team=roster.team, prometheus_selector='{namespace="other"}')
    DeploymentFactory(team=roster.other_team, prometheus_selector='{namespace="llm"}')
    broad = DeploymentFactory(team=roster.team, prometheus_selector='{app=~"emb.*"}')
    now = time.time_ns()
    body = loki_json(
        ({"namespace": "llm", "app": "chat", "pod": "chat-0"}, [(now, "a")]),
        ({"namespace": "llm", "app": "embed"}, [(now, "b")]),
        ({"namespace": "llm", "app": "rerank"}, [(now, "c")]),
    )
    assert push(Client(), body, token).status_code == 204
    linked = {s.labels["app"]: s.deployment_id for s in LogStream.objects.all()}
    assert linked == {"chat": chat.pk, "embed": broad.pk, "rerank": None}
    by_line = {e.line: e.deployment_id for e in stored(sql_log_store, roster.team)}
    assert by_line == {"a": chat.pk, "b": broad.pk, "c": None}


def test_loki_push__two_selectors_match__most_specific_wins(
    roster: Any, token: str, sql_log_store: SqlLogStore
) -> None:
    DeploymentFactory(team=roster.team, prometheus_selector='{namespace="llm"}')
    exact = DeploymentFactory(
        team=roster.team, prometheus_selector='{namespace="llm", deployment="chat"}'
    )
    body = loki_json(({"namespace": "llm", "deployment": "chat"}, [(time.time_ns(), "a")]))
    assert push(Client(), body, token).status_code == 204
    assert LogStream.objects.get().deployment_id == exact.pk


# --------------------------------------------------------------------------- OTLP


def otlp_request(*lines: tuple[str, int]) -> ExportLogsServiceRequest:
    request = ExportLogsServiceRequest()
    resource_logs = request.resource_logs.add()
    attribute = resource_logs.resource.attributes.add(key="service.name")
    attribute.value.string_value = "vllm"
    scope = resource_logs.scope_logs.add()
    for line, ts in lines:
        record = scope.log_records.add(time_unix_nano=ts, severity_number=9)
        record.body.string_value = line
    return request


def test_otlp_protobuf__accepted__200_empty_response_in_protobuf(
    roster: Any, token: str, sql_log_store: SqlLogStore
) -> None:
    response = Client().post(
        "/otlp/v1/logs",
        otlp_request(("ready", time.time_ns())).SerializeToString(),
        content_type="application/x-protobuf",
        HTTP_AUTHORIZATION=f"Bearer {token}",
    )
    assert response.status_code == 200
    assert response["Content-Type"] == "application/x-protobuf"
    answer = ExportLogsServiceResponse()
    answer.ParseFromString(response.content)
    assert not answer.HasField("partial_success")
    [entry] = stored(sql_log_store, roster.team)
    assert (entry.line, entry.severity, entry.labels) == (
        "ready",
        "info",
        (("service_name", "vllm"),),
    )


def test_otlp_json__some_refused__200_partial_success_in_json(
    roster: Any, token: str, sql_log_store: SqlLogStore
) -> None:
    now = time.time_ns()
    request = otlp_request(("kept", now), ("old", now - 30 * 86_400 * SECOND))
    body = json_format.MessageToJson(request).encode()
    response = Client().post(
        OTLP, body, content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {token}"
    )
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    partial = response.json()["partialSuccess"]
    assert int(partial["rejectedLogRecords"]) == 1
    assert "too old" in partial["errorMessage"]
    assert [e.line for e in stored(sql_log_store, roster.team)] == ["kept"]


def test_otlp__wrong_token__401_status_json(roster: Any, sql_log_store: SqlLogStore) -> None:
    response = Client().post(
        OTLP,
        otlp_request(("x", time.time_ns())).SerializeToString(),
        content_type="application/x-protobuf",
        HTTP_AUTHORIZATION="Bearer nope",
    )
    assert response.status_code == 401
    assert response.json()["code"] == 16  # UNAUTHENTICATED
    assert stored(sql_log_store, roster.team) == []


def test_otlp__garbage__400_nothing_stored(
    roster: Any, token: str, sql_log_store: SqlLogStore
) -> None:
    response = Client().post(
        OTLP,
        b"\xff\xff\xff garbage",
        content_type="application/x-protobuf",
        HTTP_AUTHORIZATION=f"Bearer {token}",
    )
    assert response.status_code == 400
    assert response.json()["code"] == 3  # INVALID_ARGUMENT
    assert stored(sql_log_store, roster.team) == []


@pytest.mark.django_db(transaction=True)
def test_loki_push__served_without_browser_middleware__no_cookie_nosniff_host_checked(
    roster: Any, token: str, sql_log_store: SqlLogStore, settings: Any
) -> None:
    client = Client()
    client.cookies["sessionid"] = "not-a-session"  # would make SessionMiddleware vary/read
    body = loki_json(({"app": "api"}, [(time.time_ns(), "lean")]))
    response = push(client, body, token)
    assert response.status_code == 204
    assert response["X-Content-Type-Options"] == "nosniff"
    # The page-serving middleware never ran: it would have added these.
    assert "X-Frame-Options" not in response
    assert "Vary" not in response
    assert not response.cookies
    assert [e.line for e in stored(sql_log_store, roster.team)] == ["lean"]
    settings.ALLOWED_HOSTS = ["controlplane.example"]
    refused = push(Client(), body, token)  # the test client's host is "testserver"
    assert refused.status_code == 400
    assert refused["Content-Type"].startswith("application/json")
