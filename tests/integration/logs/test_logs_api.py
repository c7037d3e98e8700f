"""The REST API's log reads (/api/v1/logs/...) against a real store, on each backend:
cursor paging without gaps or repeats, the histogram equal to counting the search, context
lines, live tail over server-sent events, team isolation; and the ``logs`` link of alerts,
decisions and SLO events."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
from django.utils import timezone

from apps.accounts.services import api_token_create
from apps.logs.params import ParamError, decode_cursor, parse_duration_param, parse_time_ns
from apps.logs.wire.types import PushedEntry
from apps.slos.models import SloEvent, SloState
from tests.factories.accounts import MembershipFactory, UserFactory
from tests.factories.alerts import AlertFactory
from tests.factories.autoscaling import DecisionRecordFactory
from tests.factories.inventory import DeploymentFactory
from tests.factories.slos import SloFactory
from tests.integration.logs.pushes import MINUTE, SECOND, T0, no_deployment, stream

pytestmark = pytest.mark.django_db

RANGE = {"start": str(T0 - MINUTE), "end": str(T0 + 30 * MINUTE)}
WORDS = ("ready", "error: CUDA out of memory", "GET /v1/chat 200", "aborted")


def _lines(pod: int, count: int) -> list[PushedEntry]:
    # Several lines per timestamp, and the same timestamps in every stream: the pages must
    # be cut inside runs of equal times.
    return [
        PushedEntry(T0 + (i // 3) * 7 * SECOND, f"{WORDS[(i + pod) % 4]} #{i}")
        for i in range(count)
    ]


@pytest.fixture
def fleet(served_log_store, readers):
    team, other = readers["team"], readers["other"]
    chat = DeploymentFactory(team=team, name="chat")
    streams = [stream({"app": "chat", "pod": f"chat-{pod}"}, *_lines(pod, 40)) for pod in range(3)]
    # A stream carrying the labels of chat-0 and one more: never part of chat-0's context.
    streams.append(stream({"app": "chat", "pod": "chat-0", "sidecar": "yes"}, *_lines(9, 10)))
    served_log_store.write(
        team_id=team.pk,
        streams=streams,
        resolve=lambda labels: chat.pk if labels.get("pod") == "chat-1" else None,
    )
    served_log_store.write(
        team_id=other.pk,
        streams=[stream({"app": "chat", "pod": "chat-0"}, (T0, "error: other team"))],
        resolve=no_deployment,
    )
    return {**readers, "chat": chat}


def _search(client, **params):
    response = client.get("/api/v1/logs/search", {**RANGE, **params})
    assert response.status_code == 200, response.content
    return response.json()


def _all_pages(client, **params):
    seen, pages, cursor = [], 0, None
    while True:
        body = _search(client, **params, **({"cursor": cursor} if cursor else {}))
        seen += body["results"]
        pages += 1
        cursor = body["next"]
        if cursor is None:
            return seen, pages
        assert pages < 100


@pytest.mark.parametrize("direction", ["backward", "forward"])
def test_search__cursor_pages__no_gap_no_repeat(fleet, direction):
    query = '{app="chat"} != "aborted"'
    everything = _search(fleet["client"], query=query, direction=direction, limit=5000)
    assert everything["next"] is None
    assert len(everything["results"]) > 50
    paged, pages = _all_pages(fleet["client"], query=query, direction=direction, limit=7)
    assert [(e["timestamp"], e["stream"], e["line"]) for e in paged] == [
        (e["timestamp"], e["stream"], e["line"]) for e in everything["results"]
    ]
    # A full last page cannot know it is the last: one empty page follows it.
    assert pages == len(paged) // 7 + 1
    assert all("aborted" not in e["line"] for e in paged)
    times = [int(e["timestamp"]) for e in paged]
    assert times == sorted(times, reverse=direction == "backward")


def test_search__entry_fields(fleet):
    [entry] = _search(
        fleet["client"], query='{pod="chat-1"} |= "#0"', limit=1, direction="forward"
    )["results"]
    assert entry["timestamp"] == str(T0)
    assert (
        entry["time"]
        == datetime.fromtimestamp(T0 // SECOND, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S")
        + ".000000000Z"
    )
    assert entry["labels"] == {"app": "chat", "pod": "chat-1"}
    assert entry["line"] == "error: CUDA out of memory #0"
    assert entry["deployment"] == fleet["chat"].pk
    assert set(entry) >= {"stream", "line_hash", "metadata", "cursor"}


def test_search__deployment_filter__team_only(fleet):
    found = _search(fleet["client"], query='{app="chat"}', deployment=fleet["chat"].pk, limit=500)
    assert {e["labels"]["pod"] for e in found["results"]} == {"chat-1"}
    foreign = DeploymentFactory(team=fleet["other"])
    response = fleet["client"].get(
        "/api/v1/logs/search", {**RANGE, "query": '{app="chat"}', "deployment": foreign.pk}
    )
    assert response.status_code == 400
    assert "deployment" in response.json()["errors"]


def test_search__other_team__never_sees_the_lines(fleet):
    found = _search(fleet["stranger"], query='{app="chat"}', limit=500)
    assert [e["line"] for e in found["results"]] == ["error: other team"]
    denied = fleet["client"].get(
        "/api/v1/logs/search", {**RANGE, "query": '{app="chat"}', "team": fleet["other"].pk}
    )
    assert denied.status_code == 403


def test_search__invalid_logql__400_naming_position(fleet):
    response = fleet["client"].get("/api/v1/logs/search", {"query": '{app="chat" |= "x"'})
    assert response.status_code == 400
    [message] = response.json()["errors"]["query"]
    assert message.startswith("parse error at line 1, col 13")
    metric = fleet["client"].get("/api/v1/logs/search", {"query": 'rate({app="chat"} [1m])'})
    assert metric.status_code == 400
    assert "metric query" in metric.json()["errors"]["query"][0]


def test_search__bad_params__400(fleet):
    response = fleet["client"].get(
        "/api/v1/logs/search", {"query": '{app="chat"}', "start": "yesterday", "limit": 0}
    )
    errors = response.json()["errors"]
    assert response.status_code == 400
    assert set(errors) == {"start", "limit"}
    forged = fleet["client"].get(
        "/api/v1/logs/search", {"query": '{app="chat"}', "cursor": "bm9wZQ"}
    )
    assert forged.status_code == 400


@pytest.mark.parametrize(
    "query",
    ['{app="chat"}', '{app="chat"} |= "error"', '{app="chat"} |~ "GET|abort"'],
)
def test_histogram__equals_counting_the_search(fleet, query):
    params = {
        "query": query,
        "start": str(T0 - 5 * SECOND),
        "end": str(T0 + 90 * SECOND),
        "step": "20s",
    }
    response = fleet["client"].get("/api/v1/logs/histogram", params)
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["step"] == str(20 * SECOND)
    # 95 s of range in 20 s steps: extended to five whole buckets, which the answer says
    assert body["end"] == str(T0 + 95 * SECOND)
    assert len(body["buckets"]) == 5
    found = _search(
        fleet["client"], query=query, start=params["start"], end=body["end"], limit=5000
    )
    times = [int(e["timestamp"]) for e in found["results"]]
    assert body["total"] == len(times) > 0
    for bucket in body["buckets"]:
        start = int(bucket["start"])
        assert bucket["count"] == sum(start <= t < start + 20 * SECOND for t in times)


def test_histogram__default_step_and_team_scope(fleet):
    body = (
        fleet["stranger"].get("/api/v1/logs/histogram", {**RANGE, "query": '{app="chat"}'}).json()
    )
    assert body["total"] == 1
    assert len(body["buckets"]) == 60


def test_context__lines_of_the_same_stream_around_an_entry(fleet):
    # At a time the stream {app="chat", pod="chat-0", sidecar="yes"} has lines too.
    [entry] = _search(fleet["client"], query='{pod="chat-0", sidecar=""} |= "#5"', limit=1)[
        "results"
    ]
    assert entry["labels"] == {"app": "chat", "pod": "chat-0"}
    stream_lines = [
        e["line"]
        for e in _search(
            fleet["client"], query='{pod="chat-0", sidecar=""}', direction="forward", limit=500
        )["results"]
    ]
    at = stream_lines.index(entry["line"])
    body = (
        fleet["client"]
        .get("/api/v1/logs/context", {"cursor": entry["cursor"], "before": 3, "after": 2})
        .json()
    )
    assert body["entry"]["line"] == entry["line"]
    assert [e["line"] for e in body["before"]] == stream_lines[at - 3 : at]
    assert [e["line"] for e in body["after"]] == stream_lines[at + 1 : at + 3]
    assert {e["stream"] for e in body["before"] + body["after"]} == {entry["stream"]}
    by_name = (
        fleet["client"]
        .get(
            "/api/v1/logs/context",
            {
                "stream": entry["stream"],
                "timestamp": entry["timestamp"],
                "line_hash": entry["line_hash"],
                "before": 1,
                "after": 0,
            },
        )
        .json()
    )
    assert [e["line"] for e in by_name["before"]] == [body["before"][-1]["line"]]
    assert by_name["after"] == []
    # The other team cannot name this entry.
    hidden = fleet["stranger"].get("/api/v1/logs/context", {"cursor": entry["cursor"]})
    assert hidden.status_code == 400


def test_labels__names_and_values(fleet):
    names = fleet["client"].get("/api/v1/logs/labels", RANGE).json()
    assert names == {"values": ["app", "pod", "sidecar"]}
    values = fleet["client"].get("/api/v1/logs/labels", {**RANGE, "name": "pod"}).json()
    assert values == {"values": ["chat-0", "chat-1", "chat-2"]}
    assert fleet["stranger"].get("/api/v1/logs/labels", {**RANGE, "name": "pod"}).json() == {
        "values": ["chat-0"]
    }


def _events(response, *, until, timeout_s=20.0):
    """Parsed server-sent events read from a streaming response until ``until(event)``."""
    deadline = time.monotonic() + timeout_s
    buffer, events = "", []
    for chunk in response.streaming_content:
        buffer += chunk.decode() if isinstance(chunk, bytes) else chunk
        while "\n\n" in buffer:
            block, buffer = buffer.split("\n\n", 1)
            fields = dict(
                line.split(": ", 1)
                for line in block.splitlines()
                if ": " in line and not line.startswith(":")
            )
            event = {
                "event": fields.get("event"),
                "data": json.loads(fields.get("data", "null")),
                "raw": block,
            }
            events.append(event)
            if until(event):
                return events
        assert time.monotonic() < deadline, "no matching event in time"
    return events


def test_tail__sends_a_line_written_after_it_started(fleet, served_log_store, settings):
    settings.LOGS_TAIL_POLL_S = 0.05
    settings.LOGS_TAIL_HEARTBEAT_S = 1.0
    settings.LOGS_TAIL_MAX_S = 15.0
    start = T0 + 10 * MINUTE
    response = fleet["client"].get(
        "/api/v1/logs/tail", {"query": '{app="tail"} |= "needle"', "start": str(start)}
    )
    assert response.status_code == 200
    assert response["Content-Type"] == "text/event-stream"
    opened = _events(response, until=lambda e: e["event"] == "open")
    assert opened[-1]["data"] == {"start": str(start)}
    served_log_store.write(
        team_id=fleet["team"].pk,
        streams=[
            stream({"app": "tail"}, (start + SECOND, "hay"), (start + 2 * SECOND, "a needle"))
        ],
        resolve=no_deployment,
    )
    served_log_store.write(
        team_id=fleet["other"].pk,
        streams=[stream({"app": "tail"}, (start + SECOND, "other needle"))],
        resolve=no_deployment,
    )
    # Read on until a heartbeat: the line once, and nothing else matching.
    events = _events(response, until=lambda e: e["raw"].startswith(": heartbeat"))
    lines = [e["data"]["line"] for e in events if e["event"] == "line"]
    assert lines == ["a needle"]
    assert events[-1]["event"] is None


def test_tail__heartbeat_then_end(fleet, settings):
    settings.LOGS_TAIL_POLL_S = 0.05
    settings.LOGS_TAIL_HEARTBEAT_S = 1.0
    settings.LOGS_TAIL_MAX_S = 1.5
    response = fleet["client"].get("/api/v1/logs/tail", {"query": '{app="none"}'})
    events = _events(response, until=lambda e: e["event"] == "end")
    assert any(e["raw"].startswith(": heartbeat") for e in events)
    assert events[-1]["event"] == "end"


def test_tail__invalid_query__400(fleet):
    response = fleet["client"].get("/api/v1/logs/tail", {"query": "{app}"})
    assert response.status_code == 400
    assert response.json()["errors"]["query"][0].startswith("parse error at line 1, col 5")


def _link_checks(link, deployment, start, end):
    assert link["query"] == f'{{namespace="llm", deployment="{deployment.name}"}}'
    assert datetime.fromisoformat(link["start"]) == start
    assert datetime.fromisoformat(link["end"]) == end
    url = urlsplit(link["url"])
    assert url.path == "/api/v1/logs/search"
    params = {k: v[0] for k, v in parse_qs(url.query).items()}
    assert params["deployment"] == str(deployment.pk)
    assert params["query"] == link["query"]


def test_logs_link__on_alert_decision_and_slo_event(fleet, client_for):
    chat, user = fleet["chat"], fleet["user"]
    at = timezone.now().replace(microsecond=0) - timedelta(hours=1)
    margin = timedelta(minutes=15)
    client = client_for(user)
    alert = AlertFactory(
        team=fleet["team"], deployment=chat, starts_at=at, ends_at=at + timedelta(minutes=5)
    )
    body = client.get(f"/api/v1/alerts/{alert.pk}/").json()
    _link_checks(body["logs"], chat, at - margin, at + timedelta(minutes=5) + margin)
    unlinked = AlertFactory(team=fleet["team"])
    assert client.get(f"/api/v1/alerts/{unlinked.pk}/").json()["logs"] is None

    decision = DecisionRecordFactory(deployment=chat, at=at)
    body = client.get(f"/api/v1/autoscaling/decisions/{decision.pk}/").json()
    _link_checks(body["logs"], chat, at - margin, at + margin)

    slo = SloFactory(deployment=chat)
    event = SloEvent.objects.create(slo=slo, at=at, to_state=SloState.PAGE, reason="burning")
    body = client.get(f"/api/v1/slo-events/{event.pk}/").json()
    _link_checks(body["logs"], chat, at - margin, at + margin)

    # The link runs.
    assert client.get(body["logs"]["url"]).status_code == 200


def test_params__times_and_durations():
    assert parse_time_ns("1768046400", name="t") == 1_768_046_400 * SECOND
    assert parse_time_ns("1768046400000000123", name="t") == 1_768_046_400_000_000_123
    assert parse_time_ns("1768046400.5", name="t") == 1_768_046_400_500_000_000
    assert parse_time_ns("2026-01-10T12:00:00.25Z", name="t") == 1_768_046_400_250_000_000
    with pytest.raises(ParamError):
        parse_time_ns("2026-01-10T12:00:00", name="t")
    assert parse_time_ns("-5", name="t") == -5 * SECOND


@pytest.mark.parametrize(
    "odd",
    [
        "³",  # a digit to str.isdigit(), not to int(): it answered 500
        "1²",
        "9" * 20,  # past 64-bit nanoseconds
        "-" + "9" * 19,
        "9" * 5000,
        "1e300",  # a finite float, 10**309 nanoseconds
        "9999-12-31T00:00:00Z",
        "-",
    ],
)
def test_params__time_not_readable_or_out_of_range__param_error(odd):
    with pytest.raises(ParamError):
        parse_time_ns(odd, name="t")


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("/api/v1/logs/histogram", {"start": "³"}),
        ("/api/v1/logs/histogram", {"end": "9" * 25}),
        ("/api/v1/logs/search", {"start": "1²"}),
        ("/api/v1/logs/search", {"team": "²"}),
        ("/loki/api/v1/query_range", {"limit": "²"}),
        ("/loki/api/v1/query_range", {"start": "³"}),
    ],
)
def test_read_apis__odd_digits__400_not_500(fleet, path, params):
    response = fleet["client"].get(path, {"query": '{app="chat"}', **params})
    assert response.status_code == 400, response.content
    assert parse_duration_param("1m30s", name="d") == 90 * SECOND
    assert parse_duration_param("15", name="d") == 15 * SECOND
    with pytest.raises(ParamError):
        parse_duration_param("0", name="d")
    with pytest.raises(ParamError):
        decode_cursor("not-a-cursor")


def test_tail__over_http__client_with_timeout(fleet, served_log_store, settings, live_server):
    """The same over a real connection: an HTTP client reading the event stream with a
    read timeout, the line written by another connection while it waits."""
    import requests

    settings.LOGS_TAIL_POLL_S = 0.05
    settings.LOGS_TAIL_MAX_S = 30.0
    user = UserFactory()
    MembershipFactory(user=user, team=fleet["team"])
    secret = api_token_create(user=user, name="tail").secret
    start = T0 + 20 * MINUTE
    with requests.get(
        f"{live_server.url}/api/v1/logs/tail",
        params={"query": '{app="http-tail"}', "start": str(start)},
        headers={"Authorization": f"Bearer {secret}"},
        stream=True,
        timeout=(5, 10),
    ) as response:
        assert response.status_code == 200
        assert response.headers["Content-Type"] == "text/event-stream"
        # Byte by byte: a larger read would wait for that many bytes to arrive.
        lines = response.iter_lines(chunk_size=1, decode_unicode=True)
        assert next(lines) == "retry: 1000"
        assert next(lines) == "event: open"
        served_log_store.write(
            team_id=fleet["team"].pk,
            streams=[stream({"app": "http-tail"}, (start + SECOND, "over the wire"))],
            resolve=no_deployment,
        )
        for line in lines:
            if line.startswith("event: line"):
                data = json.loads(next(lines).removeprefix("data: "))
                break
    assert data["line"] == "over the wire"
    assert data["labels"] == {"app": "http-tail"}
