from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from apps.accounts.models import Role
from apps.metrics.collection import Observation
from apps.metrics.models import MetricSample
from apps.metrics.services import metrics_store
from tests.assertions import nothing_stored
from tests.factories.accounts import MembershipFactory, UserFactory
from tests.factories.inventory import DeploymentFactory

pytestmark = pytest.mark.django_db


def _ok(value: float) -> Observation:
    return Observation(value, 1000.0, "ok")


@pytest.fixture
def setup(client_for):
    mine = DeploymentFactory()
    theirs = DeploymentFactory()
    user = UserFactory()
    MembershipFactory(user=user, team=mine.team, role=Role.OPERATOR)
    metrics_store(
        observations={
            mine.pk: {"queue_length": _ok(3), "ttft_p95": _ok(0.8)},
            theirs.pk: {
                "queue_length": _ok(50),
                "ttft_p95": Observation(None, None, "stale", "old"),
            },
        }
    )
    return mine, theirs, client_for(user)


def test_latest__own_team_only__other_team_is_404(setup):
    mine, theirs, client = setup
    listing = client.get("/api/v1/metrics/deployments/").json()
    assert [r["deployment"] for r in listing["results"]] == [mine.pk]
    detail = client.get(f"/api/v1/metrics/deployments/{mine.pk}/").json()
    assert detail["observations"]["queue_length"]["value"] == 3
    assert detail["status"] == "ok"
    assert client.get(f"/api/v1/metrics/deployments/{theirs.pk}/").status_code == 404


def test_summary__totals_over_visible_deployments_only(setup):
    mine, _, client = setup
    body = client.get("/api/v1/metrics/summary/").json()
    assert body["deployments"] == 1
    assert body["totals"]["queue_length"] == 3
    assert body["worst_ttft_p95"] == {"deployment": mine.pk, "seconds": 0.8}
    assert client.get("/api/v1/metrics/summary/?team=x").status_code == 400


def test_series__points_in_range__oldest_first(setup):
    mine, theirs, client = setup
    now = timezone.now().replace(second=0, microsecond=0)
    for minutes, value in ((3, 1.0), (2, 2.0), (1, 3.0)):
        MetricSample.objects.get_or_create(
            deployment=mine,
            signal="queue_length",
            ts=now - timedelta(minutes=minutes),
            defaults={"value": value},
        )
    body = client.get(
        f"/api/v1/metrics/deployments/{mine.pk}/series/",
        {"signal": "queue_length", "since": (now - timedelta(minutes=10)).isoformat()},
    ).json()
    # Three stored by hand, then the one metrics_store took for the current step.
    assert [p["value"] for p in body["points"]] == [1.0, 2.0, 3.0, 3.0]
    assert (
        client.get(f"/api/v1/metrics/deployments/{mine.pk}/series/", {"signal": "nope"}).status_code
        == 400
    )
    assert (
        client.get(
            f"/api/v1/metrics/deployments/{theirs.pk}/series/", {"signal": "queue_length"}
        ).status_code
        == 404
    )


@pytest.mark.parametrize(
    ("promql", "fragment"),
    [("sum(rate(x[1m])", "unclosed"), ("", "empty"), ('up{a="b}', "unterminated")],
)
def test_custom_query__malformed_promql__400_on_field(setup, promql, fragment):
    mine, _, client = setup
    with nothing_stored():
        response = client.post(
            "/api/v1/metrics/custom-queries/",
            {"deployment": mine.pk, "signal": "queue_length", "promql": promql},
            format="json",
        )
    assert response.status_code == 400
    assert "promql" in response.json()["errors"]


def test_custom_query__valid__stored_and_audited(setup, settings):
    settings.PROMETHEUS_URL = None
    mine, theirs, client = setup
    response = client.post(
        "/api/v1/metrics/custom-queries/",
        {
            "deployment": mine.pk,
            "signal": "error_ratio",
            "promql": 'sum(rate(http_5xx{app="chat"}[5m])) / sum(rate(http_all{app="chat"}[5m]))',
        },
        format="json",
    )
    assert response.status_code == 201, response.json()
    other = client.post(
        "/api/v1/metrics/custom-queries/",
        {"deployment": theirs.pk, "signal": "error_ratio", "promql": "up"},
        format="json",
    )
    assert other.status_code == 400
    assert "deployment" in other.json()["errors"]


def test_catalogue__lists_vllm_ttft():
    from rest_framework.test import APIClient

    client = APIClient()
    client.force_authenticate(UserFactory())
    rows = client.get("/api/v1/metrics/catalogue/").json()
    assert any(
        r["framework"] == "vllm"
        and r["signal"] == "ttft_p95"
        and "vllm:time_to_first_token_seconds_bucket" in r["promql"]
        for r in rows
    )
