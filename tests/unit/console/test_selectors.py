"""The console's reads: a query count that does not grow with the fleet, downsampling,
chart data shape and team scoping."""

from __future__ import annotations

import time
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from apps.accounts.models import Role
from apps.autoscaling.actuators.base import ScaleStatus
from apps.autoscaling.evaluation import deployment_evaluate
from apps.console import selectors
from apps.metrics.selectors import Observation
from apps.metrics.services import metrics_store
from tests.factories.accounts import MembershipFactory, TeamFactory
from tests.factories.autoscaling import AutoscalingPolicyFactory
from tests.factories.console import deployment_history
from tests.factories.inventory import DeploymentFactory

pytestmark = pytest.mark.django_db


def _overview_queries(user) -> tuple[int, int]:
    with CaptureQueriesContext(connection) as ctx:
        rows = selectors.overview_rows(deployments=selectors.deployments_visible(user=user))
    return len(ctx.captured_queries), len(rows)


def test_overview_rows__5_vs_50_deployments__same_query_count():
    team = TeamFactory()
    user = MembershipFactory(team=team, role=Role.VIEWER).user
    for _ in range(5):
        deployment_history(DeploymentFactory(team=team), minutes=10)
    small, n_small = _overview_queries(user)
    for _ in range(45):
        deployment_history(DeploymentFactory(team=team), minutes=10)
    user = type(user).objects.get(pk=user.pk)  # a new request: roles not cached
    large, n_large = _overview_queries(user)
    assert (n_small, n_large) == (5, 50)
    assert small == large


def test_overview_rows__figures_from_stored_state():
    deployment = DeploymentFactory()
    deployment_history(deployment, minutes=30)
    (row,) = selectors.overview_rows(deployments=selectors.Deployment.objects.all())
    assert (row.ready, row.starting, row.desired) == (2, 0, 2)
    assert row.ttft_objective == 0.5
    assert row.budget_left == 0.6
    assert row.firing_alerts == 1
    assert row.sparkline["labels"] == ["replicas", "requests/s"]
    # Replicas as a step line from the scale action: 1, up to 2, held until now.
    assert [v for v in row.sparkline["y"][0] if v is not None] == [1.0, 1.0, 2.0, 2.0]
    assert sum(v is not None for v in row.sparkline["y"][1]) >= 29  # the first may be older


def test_deployments_visible__other_team__excluded_and_get_404():
    mine = DeploymentFactory()
    other = DeploymentFactory()
    user = MembershipFactory(team=mine.team, role=Role.VIEWER).user
    assert list(selectors.deployments_visible(user=user)) == [mine]
    with pytest.raises(selectors.Http404):
        selectors.deployment_get(user=user, deployment_id=other.pk)


def test_deployment_can_operate__viewer_no_operator_yes():
    deployment = DeploymentFactory()
    viewer = MembershipFactory(team=deployment.team, role=Role.VIEWER).user
    operator = MembershipFactory(team=deployment.team, role=Role.OPERATOR).user
    assert not selectors.deployment_can_operate(user=viewer, deployment=deployment)
    assert selectors.deployment_can_operate(user=operator, deployment=deployment)


def test_downsample__long_series__at_most_max_points_and_means():
    points = [(float(t), float(t % 2)) for t in range(2000)]
    out = selectors.downsample(points, max_points=500)
    assert len(out) == 500
    assert out[0] == (0.0, 0.5)  # the mean of its bucket of four


def test_downsample__short_series__unchanged():
    points = [(1.0, 2.0), (2.0, 3.0)]
    assert selectors.downsample(points, max_points=500) == points


def test_chart_data__series_on_one_axis_with_gaps():
    data = selectors.chart_data(
        series={"a": [(1.0, 1.0), (2.0, 2.0)], "b": [(2.0, 5.0)]},
        markers=[2.0],
        lines={"SLO": 0.5, "none": None},
    )
    assert data["x"] == [1.0, 2.0]
    assert data["y"] == [[1.0, 2.0], [None, 5.0]]
    assert data["markers"] == [2.0]
    assert data["lines"] == [{"label": "SLO", "value": 0.5}]


def test_deployment_charts__24h_of_samples__each_series_at_most_500_points():
    deployment = DeploymentFactory()
    deployment_history(deployment, minutes=24 * 60 - 1)
    charts = selectors.deployment_charts(deployment=deployment, range_key="24h")
    for chart in charts.values():
        for column in chart["y"]:
            assert sum(v is not None for v in column) <= selectors.MAX_POINTS
    assert charts["latency"]["lines"] == [{"label": "TTFT SLO", "value": 0.5}]
    assert charts["demand"]["markers"]  # the scale-up is marked


class _StartingActuator:
    """A platform with 3 replicas wanted and 1 ready: two are starting."""

    def get_scale(self, target: Any) -> ScaleStatus:
        return ScaleStatus(3, 1)

    def set_replicas(self, target: Any, replicas: int, *, idempotency_key: str) -> ScaleStatus:
        return ScaleStatus(replicas, 1)


def test_overview_rows__decision_from_the_real_evaluation__replica_state_read(settings):
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    policy = AutoscalingPolicyFactory(deployment__min_replicas=1, deployment__max_replicas=10)
    deployment = policy.deployment
    metrics_store(
        observations={deployment.pk: {"queue_length": Observation(30.0, time.time(), "ok")}}
    )
    record = deployment_evaluate(deployment=deployment, actuator=_StartingActuator())
    assert record is not None
    (row,) = selectors.overview_rows(deployments=selectors.Deployment.objects.all())
    assert (row.ready, row.starting, row.desired) == (1, 2, record.desired_replicas)
    assert row.queue == 30.0
