"""Alerts the control plane raises: threshold rules with `for`, SLO burn, control-loop
conditions; and resolution when the condition clears, but not when data goes missing."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from django.utils import timezone

from apps.alerts.models import Alert, AlertRule, AlertStatus
from apps.alerts.sources import alert_sources_evaluate
from apps.autoscaling.models import (
    ActionStatus,
    DecisionRecord,
    ScaleAction,
)
from apps.metrics.collection import Observation
from apps.metrics.services import metrics_store
from apps.slos.models import SloState, SloStatus
from tests.factories.autoscaling import AutoscalingPolicyFactory
from tests.factories.inventory import DeploymentFactory
from tests.factories.slos import SloFactory

pytestmark = pytest.mark.django_db


def _observe(dep, value, status="ok"):
    metrics_store(
        observations={dep.pk: {"queue_length": Observation(value, time.time(), status, "gone")}}
    )


def test_rule__condition_must_hold_for_duration__then_fires_then_resolves():
    dep = DeploymentFactory(name="chat", target_namespace="llm")
    rule = AlertRule.objects.create(
        team=dep.team,
        name="QueueTooLong",
        deployment=dep,
        signal="queue_length",
        comparison=">",
        threshold=10,
        for_s=60,
        severity="critical",
        summary="{value} waiting (limit {threshold})",
    )
    t0 = timezone.now()
    _observe(dep, 50)
    alert_sources_evaluate(now=t0)
    assert not Alert.objects.exists()  # pending, not firing
    alert_sources_evaluate(now=t0 + timedelta(seconds=61))
    alert = Alert.objects.get()
    assert alert.status == AlertStatus.FIRING
    assert alert.labels["alertname"] == "QueueTooLong"
    assert alert.labels["deployment"] == "chat"
    assert alert.deployment == dep
    assert alert.annotations["summary"] == "50 waiting (limit 10)"
    # Metrics go missing: neither fires anew nor resolves.
    _observe(dep, None, status="missing")
    alert_sources_evaluate(now=t0 + timedelta(seconds=120))
    assert Alert.objects.get().status == AlertStatus.FIRING
    _observe(dep, 2)
    alert_sources_evaluate(now=t0 + timedelta(seconds=180))
    assert Alert.objects.get().status == AlertStatus.RESOLVED
    rule.refresh_from_db()
    assert rule.state == {}


def test_rule__condition_flaps_before_for__never_fires():
    dep = DeploymentFactory()
    AlertRule.objects.create(
        team=dep.team, name="Q", deployment=dep, signal="queue_length", threshold=10, for_s=60
    )
    t0 = timezone.now()
    for i, value in enumerate([50, 1, 50, 1, 50]):
        _observe(dep, value)
        alert_sources_evaluate(now=t0 + timedelta(seconds=40 * i))
    assert not Alert.objects.exists()


def test_slo_paging__fires_critical__and_resolves_when_ok():
    slo = SloFactory()
    SloStatus.objects.create(
        slo=slo, state=SloState.PAGE, reason="burning 20x", evaluated_at=timezone.now()
    )
    alert_sources_evaluate()
    alert = Alert.objects.get()
    assert (alert.name, alert.severity, alert.source) == ("SLOErrorBudgetBurn", "critical", "slo")
    assert alert.team == slo.team
    SloStatus.objects.filter(slo=slo).update(state=SloState.OK)
    alert_sources_evaluate()
    assert Alert.objects.get().status == AlertStatus.RESOLVED


def _at_max_while_slo_pages(**decision):
    """A deployment held at its maximum of 4 replicas by its last decision while its SLO
    pages."""
    dep = DeploymentFactory(max_replicas=4)
    AutoscalingPolicyFactory(deployment=dep)
    slo = SloFactory(team=dep.team, deployment=dep)
    SloStatus.objects.create(slo=slo, state=SloState.PAGE, reason="x", evaluated_at=timezone.now())
    DecisionRecord.objects.create(
        deployment=dep,
        at=timezone.now(),
        current_replicas=4,
        desired_replicas=4,
        dry_run=False,
        **decision,
    )
    return dep


def test_control_loop__missing_metrics_drift_failed_action_and_max_while_burning():
    dep = _at_max_while_slo_pages(
        rule="hold:missing_metrics",
        reason="metrics missing",
        inputs={"replicas": {"spec": 4, "ready": 4}},
        events=[
            {"kind": "metrics_missing", "message": "queue_length: stale"},
            {"kind": "drift_detected", "message": "someone set 4"},
        ],
    )
    ScaleAction.objects.create(
        deployment=dep,
        from_replicas=3,
        to_replicas=4,
        idempotency_key="k",
        status=ActionStatus.FAILED,
        error="forbidden",
    )
    alert_sources_evaluate()
    names = set(Alert.objects.filter(source="autoscaling").values_list("name", flat=True))
    assert names == {
        "AutoscalerMetricsMissing",
        "AutoscalerDrift",
        "ScaleActionFailed",
        "AtMaxReplicasWhileSloBurns",
    }
    # The next decision is healthy and an action succeeds: all of them resolve.
    DecisionRecord.objects.create(
        deployment=dep,
        at=timezone.now(),
        current_replicas=3,
        desired_replicas=3,
        rule="target:queue_length",
        reason="ok",
        dry_run=False,
    )
    ScaleAction.objects.create(
        deployment=dep,
        from_replicas=4,
        to_replicas=3,
        idempotency_key="k2",
        status=ActionStatus.SUCCEEDED,
    )
    alert_sources_evaluate()
    assert not Alert.objects.filter(source="autoscaling", status=AlertStatus.FIRING).exists()


class _Prometheus:
    """The outermost edge: answers instant queries from a list, or fails."""

    def __init__(self):
        self.samples = []
        self.down = False

    def query(self, promql, at=None):
        from apps.integrations.prometheus import PrometheusError

        if self.down:
            raise PrometheusError("connection refused", retryable=True, unreachable=True)
        return self.samples


def test_promql_rule__each_series_its_own_alert__prometheus_down_holds(settings):
    from apps.integrations.prometheus.types import InstantSample
    from tests.factories.accounts import TeamFactory

    settings.PROMETHEUS_URL = "http://127.0.0.1:9"
    team = TeamFactory()
    AlertRule.objects.create(
        team=team, name="GpuHot", promql="DCGM_FI_DEV_GPU_TEMP", threshold=85, for_s=0
    )
    prom = _Prometheus()
    prom.samples = [
        InstantSample({"__name__": "DCGM_FI_DEV_GPU_TEMP", "gpu": "0"}, 90.0, 0.0),
        InstantSample({"__name__": "DCGM_FI_DEV_GPU_TEMP", "gpu": "1"}, 60.0, 0.0),
    ]
    alert_sources_evaluate(client_factory=lambda url: prom)
    (alert,) = Alert.objects.all()
    assert alert.labels["gpu"] == "0"
    assert alert.labels["alertname"] == "GpuHot"
    prom.down = True
    alert_sources_evaluate(client_factory=lambda url: prom)
    assert Alert.objects.get().status == AlertStatus.FIRING
    prom.down = False
    prom.samples = prom.samples[1:]
    alert_sources_evaluate(client_factory=lambda url: prom)
    assert Alert.objects.get().status == AlertStatus.RESOLVED


def test_at_max_while_burning__replicas_still_starting__not_raised():
    _at_max_while_slo_pages(
        rule="target:queue_length",
        reason="scaling up",
        inputs={"replicas": {"spec": 4, "ready": 1}},
    )
    alert_sources_evaluate()
    assert not Alert.objects.filter(name="AtMaxReplicasWhileSloBurns").exists()
    assert Alert.objects.filter(name="SLOErrorBudgetBurn").exists()
