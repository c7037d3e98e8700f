"""Loki's HTTP query API (/loki/api/v1/...) against a real store, on each backend: the
response shapes of Loki's documentation field by field, its errors, API-token auth (Bearer
and Basic), and team isolation."""

from __future__ import annotations

import base64

import pytest
from rest_framework.test import APIClient

from apps.accounts.services import api_token_create
from tests.factories.accounts import MembershipFactory, UserFactory
from tests.integration.logs.pushes import MINUTE, SECOND, T0, no_deployment, stream

pytestmark = pytest.mark.django_db

START, END = str(T0 - MINUTE), str(T0 + 10 * MINUTE)


@pytest.fixture
def fleet(served_log_store, readers):
    team, other = readers["team"], readers["other"]
    served_log_store.write(
        team_id=team.pk,
        streams=[
            stream(
                {"app": "api", "pod": "api-0"}, (T0, "GET /a 200"), (T0 + 2 * SECOND, "GET /b 500")
            ),
            stream({"app": "worker"}, (T0 + SECOND, "job done"), (T0 + 90 * SECOND, "job failed")),
        ],
        resolve=no_deployment,
    )
    served_log_store.write(
        team_id=other.pk,
        streams=[stream({"app": "api", "secret": "other"}, (T0, "GET /other 200"))],
        resolve=no_deployment,
    )
    return readers


def test_query_range__log_query__streams_shape(fleet):
    response = fleet["client"].get(
        "/loki/api/v1/query_range",
        {"query": '{app=~"api|worker"}', "start": START, "end": END, "limit": "3"},
    )
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "success"
    assert body["data"]["resultType"] == "streams"
    result = {tuple(sorted(r["stream"].items())): r["values"] for r in body["data"]["result"]}
    # backward, the three newest, each value [<ns string>, <line>], grouped by label set
    assert result == {
        (("app", "worker"),): [
            [str(T0 + 90 * SECOND), "job failed"],
            [str(T0 + SECOND), "job done"],
        ],
        (("app", "api"), ("pod", "api-0")): [[str(T0 + 2 * SECOND), "GET /b 500"]],
    }
    assert all(set(r) == {"stream", "values"} for r in body["data"]["result"])


def test_query_range__log_query_forward_with_filter__values_in_order(fleet):
    response = fleet["client"].get(
        "/loki/api/v1/query_range",
        {"query": '{app="api"} |= "GET"', "start": START, "end": END, "direction": "forward"},
    )
    assert response.status_code == 200
    [only] = response.json()["data"]["result"]
    assert only == {
        "stream": {"app": "api", "pod": "api-0"},
        "values": [[str(T0), "GET /a 200"], [str(T0 + 2 * SECOND), "GET /b 500"]],
    }


def test_query_range__metric_query__matrix_shape(fleet):
    response = fleet["client"].get(
        "/loki/api/v1/query_range",
        {
            "query": 'sum by (app) (count_over_time({app=~".+"} [1m]))',
            "start": str((T0 + MINUTE) // SECOND),  # unix seconds
            "end": str((T0 + 2 * MINUTE) / SECOND),  # unix seconds, float
            "step": "60",
        },
    )
    assert response.status_code == 200, response.content
    data = response.json()["data"]
    assert data["resultType"] == "matrix"
    by_app = {r["metric"]["app"]: r["values"] for r in data["result"]}
    t1, t2 = (T0 + MINUTE) // SECOND, (T0 + 2 * MINUTE) // SECOND
    # windows are (t - 1m, t]: the line at T0 is outside the first
    assert by_app == {"api": [[t1, "1"]], "worker": [[t1, "1"], [t2, "1"]]}
    assert all(set(r) == {"metric", "values"} for r in data["result"])


def test_query__metric_query__vector_shape(fleet):
    response = fleet["client"].get(
        "/loki/api/v1/query",
        {"query": 'sum(count_over_time({app="worker"} [5m]))', "time": str(T0 + 3 * MINUTE)},
    )
    assert response.status_code == 200
    data = response.json()["data"]
    assert data["resultType"] == "vector"
    assert data["result"] == [{"metric": {}, "value": [(T0 + 3 * MINUTE) // SECOND, "2"]}]


def test_query__log_query__streams_up_to_time(fleet):
    response = fleet["client"].get(
        "/loki/api/v1/query",
        {"query": '{app="worker"}', "time": str(T0 + MINUTE), "limit": "10"},
    )
    assert response.json()["data"]["result"] == [
        {"stream": {"app": "worker"}, "values": [[str(T0 + SECOND), "job done"]]}
    ]


def test_labels_values_series__team_only(fleet):
    client, params = fleet["client"], {"start": START, "end": END}
    labels = client.get("/loki/api/v1/labels", params).json()
    assert labels == {"status": "success", "data": ["app", "pod"]}
    values = client.get("/loki/api/v1/label/app/values", params).json()
    assert values == {"status": "success", "data": ["api", "worker"]}
    series = client.get("/loki/api/v1/series", {**params, "match[]": ['{app="api"}']}).json()
    assert series == {"status": "success", "data": [{"app": "api", "pod": "api-0"}]}
    # The other team sees its own stream only, never these.
    stranger = fleet["stranger"]
    assert stranger.get("/loki/api/v1/labels", params).json()["data"] == ["app", "secret"]
    assert stranger.get("/loki/api/v1/label/app/values", params).json()["data"] == ["api"]
    found = stranger.get("/loki/api/v1/series", {**params, "match[]": '{app=~".+"}'}).json()
    assert found["data"] == [{"app": "api", "secret": "other"}]
    lines = stranger.get(
        "/loki/api/v1/query_range", {"query": '{app=~".+"}', "start": START, "end": END}
    ).json()["data"]["result"]
    assert [v[1] for r in lines for v in r["values"]] == ["GET /other 200"]


def test_team_parameter__another_team__403(fleet):
    response = fleet["client"].get(
        "/loki/api/v1/labels", {"team": fleet["other"].pk, "start": START, "end": END}
    )
    assert response.status_code == 403
    assert response.json()["status"] == "error"


def test_several_teams__must_name_one(fleet):
    MembershipFactory(user=fleet["user"], team=fleet["other"])
    client, params = fleet["client"], {"start": START, "end": END}
    refused = client.get("/loki/api/v1/labels", params)
    assert refused.status_code == 400
    assert "team=" in refused.json()["error"]
    chosen = client.get("/loki/api/v1/labels", {**params, "team": fleet["other"].pk})
    assert chosen.json()["data"] == ["app", "secret"]
    by_header = client.get("/loki/api/v1/labels", params, HTTP_X_SCOPE_ORGID=str(fleet["team"].pk))
    assert by_header.json()["data"] == ["app", "pod"]


def test_invalid_logql__400_bad_data_naming_position(fleet):
    response = fleet["client"].get("/loki/api/v1/query_range", {"query": '{app="api"} |= '})
    assert response.status_code == 400
    body = response.json()
    assert set(body) == {"status", "errorType", "error", "detail"}
    assert body["status"] == "error"
    assert body["errorType"] == "bad_data"
    assert body["error"].startswith("parse error at line 1, col 16")
    assert body["detail"] == body["error"]


def test_basic_auth__token_as_password(fleet, served_log_store):
    user = UserFactory()
    MembershipFactory(user=user, team=fleet["team"])
    secret = api_token_create(user=user, name="grafana").secret
    client = APIClient()
    basic = base64.b64encode(f"grafana:{secret}".encode()).decode()
    client.credentials(HTTP_AUTHORIZATION=f"Basic {basic}")
    response = client.get("/loki/api/v1/labels", {"start": START, "end": END})
    assert response.json()["data"] == ["app", "pod"]
    wrong = base64.b64encode(b"grafana:cp_not-a-token").decode()
    client.credentials(HTTP_AUTHORIZATION=f"Basic {wrong}")
    refused = client.get("/loki/api/v1/labels")
    assert refused.status_code == 401
    assert refused.json()["status"] == "error"
    assert APIClient().get("/loki/api/v1/labels").status_code == 401


def test_index_stats_and_buildinfo(fleet):
    stats = fleet["client"].get(
        "/loki/api/v1/index/stats", {"query": '{app="api"}', "start": START, "end": END}
    )
    assert stats.json() == {"streams": 1, "chunks": 0, "entries": 2, "bytes": 20}
    info = fleet["client"].get("/loki/api/v1/status/buildinfo").json()
    assert set(info) == {"version", "revision", "branch", "buildUser", "buildDate", "goVersion"}
    assert info["version"].count(".") == 2


def test_query__grafana_connection_test__constant_vector(fleet):
    response = fleet["client"].get(
        "/loki/api/v1/query", {"query": "vector(1)+vector(1)", "time": str(T0)}
    )
    assert response.json() == {
        "status": "success",
        "data": {
            "resultType": "vector",
            "result": [{"metric": {}, "value": [T0 // SECOND, "2"]}],
            "stats": {},
        },
    }
    refused = fleet["client"].get("/loki/api/v1/query", {"query": "vector(1)+"})
    assert refused.status_code == 400


def test_loki_reader_core_client__reads_over_http(fleet, live_server):
    """A Loki client from PyPI (loki-reader-core) against a live server, with the API
    token as its Basic-auth password."""
    from loki_reader_core import LokiClient

    user = UserFactory()
    MembershipFactory(user=user, team=fleet["team"])
    secret = api_token_create(user=user, name="client").secret
    with LokiClient(base_url=live_server.url, auth=("reader", secret), timeout=10) as client:
        result = client.query_range('{app="worker"}', start=T0, end=T0 + 10 * MINUTE, limit=10)
        assert result.result_type == "streams"
        [only] = result.streams
        assert only.labels == {"app": "worker"}
        assert [(e.timestamp, e.message) for e in only.entries] == [
            (T0 + 90 * SECOND, "job failed"),
            (T0 + SECOND, "job done"),
        ]
        assert client.get_labels(start=T0, end=T0 + MINUTE) == ["app", "pod"]
        assert client.get_label_values("app", start=T0, end=T0 + MINUTE) == ["api", "worker"]
        metric = client.query('sum(count_over_time({app="api"} [1h]))')
        assert metric.result_type == "vector"
    with LokiClient(base_url=live_server.url, auth=("reader", "cp_wrong")) as refused:
        with pytest.raises(Exception, match="Authentication failed"):
            refused.get_labels(start=T0, end=T0 + MINUTE)
