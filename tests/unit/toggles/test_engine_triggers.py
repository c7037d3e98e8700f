"""Trigger observations read from what the other apps stored: SLO statuses, firing alerts,
autoscaler decisions, collected signals; missing or stale data is unknown."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from apps.alerts.models import AlertStatus
from apps.slos.models import SloStatus
from apps.toggles.engine import Outcome
from apps.toggles.policy_spec import triggers_parse
from apps.toggles.triggers import triggers_observe
from tests.factories.alerts import AlertFactory
from tests.factories.autoscaling import DecisionRecordFactory
from tests.factories.inventory import DeploymentFactory
from tests.factories.metrics import DeploymentMetricsFactory
from tests.factories.slos import SloFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def deployment():
    return DeploymentFactory(max_replicas=4)


def observe(deployment, *raw, now=None):
    now = now or timezone.now()
    return [
        (o.outcome, o.detail)
        for o in triggers_observe(
            deployment=deployment, triggers=triggers_parse(list(raw)), now=now
        )
    ]


def slo_status(slo, state, *, age_s=0.0):
    SloStatus.objects.update_or_create(
        slo=slo,
        defaults={"state": state, "evaluated_at": timezone.now() - timedelta(seconds=age_s)},
    )


@pytest.mark.parametrize(
    ("state", "outcome"),
    [
        ("page", Outcome.HELD),
        ("ticket", Outcome.HELD),
        ("ok", Outcome.CLEAR),
        ("low_traffic", Outcome.CLEAR),
        ("no_data", Outcome.UNKNOWN),
        ("unavailable", Outcome.UNKNOWN),
    ],
)
def test_triggers_observe__slo_state__from_status(deployment, state, outcome):
    slo = SloFactory(deployment=deployment)
    slo_status(slo, state)
    [(got, detail)] = observe(deployment, {"kind": "slo_state", "slo": slo.pk})
    assert got is outcome
    assert state in detail


def test_triggers_observe__slo_state_only_page__ticket_is_clear(deployment):
    slo = SloFactory(deployment=deployment)
    slo_status(slo, "ticket")
    trigger = {"kind": "slo_state", "slo": slo.pk, "states": ["page"]}
    assert observe(deployment, trigger)[0][0] is Outcome.CLEAR


def test_triggers_observe__slo_never_evaluated_or_stale__unknown(deployment, settings):
    settings.SLO_EVALUATION_INTERVAL_S = 30
    settings.DEGRADATION_STALE_INTERVALS = 3
    slo = SloFactory(deployment=deployment)
    trigger = {"kind": "slo_state", "slo": slo.pk}
    assert observe(deployment, trigger) == [(Outcome.UNKNOWN, "never evaluated")]
    slo_status(slo, "page", age_s=80)
    assert observe(deployment, trigger)[0][0] is Outcome.HELD
    slo_status(slo, "page", age_s=100)
    outcome, detail = observe(deployment, trigger)[0]
    assert outcome is Outcome.UNKNOWN
    assert "stale" in detail


def test_triggers_observe__alert__firing_match_of_the_team_only(deployment):
    trigger = {"kind": "alert", "matchers": '{alertname="KVCacheFull", severity=~"page|crit.*"}'}
    assert observe(deployment, trigger) == [(Outcome.CLEAR, "none firing")]
    AlertFactory(labels={"alertname": "KVCacheFull", "severity": "critical"})  # another team
    AlertFactory(team=deployment.team, labels={"alertname": "KVCacheFull", "severity": "info"})
    AlertFactory(
        team=deployment.team,
        labels={"alertname": "KVCacheFull", "severity": "critical"},
        status=AlertStatus.RESOLVED,
    )
    assert observe(deployment, trigger)[0][0] is Outcome.CLEAR
    AlertFactory(team=deployment.team, labels={"alertname": "KVCacheFull", "severity": "page"})
    assert observe(deployment, trigger) == [(Outcome.HELD, "firing: KVCacheFull")]


def test_triggers_observe__autoscaler_at_max__needs_max_and_a_burning_slo(deployment):
    slo = SloFactory(deployment=deployment)
    trigger = {"kind": "autoscaler_at_max"}
    assert observe(deployment, trigger)[0][0] is Outcome.UNKNOWN  # no decision yet
    DecisionRecordFactory(deployment=deployment, current_replicas=3, desired_replicas=3)
    assert observe(deployment, trigger)[0][0] is Outcome.CLEAR  # below max: SLO irrelevant
    DecisionRecordFactory(deployment=deployment, current_replicas=3, desired_replicas=4)
    outcome, detail = observe(deployment, trigger)[0]
    assert outcome is Outcome.UNKNOWN  # at max, SLO never evaluated
    assert "3 -> 4 replicas of max 4" in detail
    slo_status(slo, "ok")
    assert observe(deployment, trigger)[0][0] is Outcome.CLEAR
    slo_status(slo, "page")
    assert observe(deployment, trigger)[0][0] is Outcome.HELD
    other = SloFactory(deployment=deployment)
    slo_status(other, "ok")
    named = {"kind": "autoscaler_at_max", "slo": other.pk}
    assert observe(deployment, named)[0][0] is Outcome.CLEAR


def test_triggers_observe__autoscaler_decision_stale__unknown(deployment, settings):
    settings.AUTOSCALING_INTERVAL_S = 10
    settings.DEGRADATION_STALE_INTERVALS = 3
    slo_status(SloFactory(deployment=deployment), "page")
    DecisionRecordFactory(
        deployment=deployment,
        current_replicas=4,
        desired_replicas=4,
        at=timezone.now() - timedelta(seconds=31),
    )
    outcome, detail = observe(deployment, {"kind": "autoscaler_at_max"})[0]
    assert outcome is Outcome.UNKNOWN
    assert "stale" in detail


def _metrics(deployment, value, *, status="ok", age_s=0.0):
    return DeploymentMetricsFactory(
        deployment=deployment,
        observations={"queue_length": {"value": value, "ts": 0, "status": status, "reason": "r"}},
        collected_at=timezone.now() - timedelta(seconds=age_s),
    )


def test_triggers_observe__signal__compared_with_threshold(deployment):
    trigger = {"kind": "signal", "signal": "queue_length", "op": "gt", "threshold": 50}
    assert observe(deployment, trigger) == [(Outcome.UNKNOWN, "never collected")]
    metrics = _metrics(deployment, 50.0)
    assert observe(deployment, trigger) == [(Outcome.CLEAR, "queue_length = 50")]
    metrics.observations["queue_length"]["value"] = 51.0
    metrics.save()
    assert observe(deployment, trigger) == [(Outcome.HELD, "queue_length = 51")]
    ge = {**trigger, "op": "ge"}
    metrics.observations["queue_length"]["value"] = 50.0
    metrics.save()
    assert observe(deployment, ge)[0][0] is Outcome.HELD
    other = {"kind": "signal", "signal": "kv_cache_usage", "op": "gt", "threshold": 0.9}
    assert observe(deployment, other) == [(Outcome.UNKNOWN, "not collected")]


def test_triggers_observe__signal_stale_or_not_ok__unknown(deployment, settings):
    settings.METRICS_COLLECT_INTERVAL_S = 10
    settings.DEGRADATION_STALE_INTERVALS = 2
    trigger = {"kind": "signal", "signal": "queue_length", "op": "gt", "threshold": 5}
    _metrics(deployment, 99.0, age_s=25)
    outcome, detail = observe(deployment, trigger)[0]
    assert (outcome, "stale" in detail) == (Outcome.UNKNOWN, True)
    deployment.metrics_state.delete()
    _metrics(deployment, 99.0, status="stale")
    assert observe(deployment, trigger) == [(Outcome.UNKNOWN, "stale: r")]
