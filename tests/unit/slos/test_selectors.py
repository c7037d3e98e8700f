"""Burn rates of a deployment's SLOs as the autoscaler's SLO boost reads them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

from apps.slos.models import SloState, SloStatus, SloStatusSample
from apps.slos.selectors import deployment_burn_rate, deployment_burn_rate_history
from tests.factories.inventory import DeploymentFactory
from tests.factories.slos import SloFactory

pytestmark = pytest.mark.django_db


def _status(slo, burn_rates: dict) -> None:
    SloStatus.objects.create(
        slo=slo, state=SloState.OK, burn_rates=burn_rates, evaluated_at=timezone.now()
    )


def test_deployment_burn_rate__highest_short_window_over_enabled_slos():
    dep = DeploymentFactory()
    # Long windows (1h, 6h) burn harder but are not what "burning now" means.
    _status(SloFactory(deployment=dep), {"5m": 2.0, "30m": 3.5, "1h": 50.0, "6h": 9.0})
    _status(SloFactory(deployment=dep), {"5m": 4.0, "30m": None})
    _status(SloFactory(deployment=dep), {"30m": 1.0})
    _status(SloFactory(deployment=dep, enabled=False), {"5m": 99.0})

    assert deployment_burn_rate(deployment_ids=[dep.pk]) == {dep.pk: 4.0}


def test_deployment_burn_rate__no_short_window_or_no_slo__absent():
    long_only, without, other = DeploymentFactory(), DeploymentFactory(), DeploymentFactory()
    _status(SloFactory(deployment=long_only), {"1h": 20.0, "5m": None})
    _status(SloFactory(deployment=other), {"30m": 1.5})

    got = deployment_burn_rate(deployment_ids=[long_only.pk, without.pk])

    assert got == {}
    assert deployment_burn_rate(deployment_ids=[other.pk]) == {other.pk: 1.5}


def test_deployment_burn_rate_history__per_evaluation_max_in_range_oldest_first():
    dep = DeploymentFactory()
    first, second = SloFactory(deployment=dep), SloFactory(deployment=dep)
    disabled = SloFactory(deployment=dep, enabled=False)
    t0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
    rows = [
        (first, t0, {"5m": 1.0, "30m": 4.0}),
        (second, t0, {"5m": 3.0, "6h": 40.0}),
        (first, t0 + timedelta(minutes=1), {"1h": 8.0}),  # no short window: skipped
        (first, t0 + timedelta(minutes=2), {"30m": 0.5}),
        (disabled, t0 + timedelta(minutes=2), {"5m": 70.0}),
        (first, t0 + timedelta(minutes=9), {"5m": 5.0}),  # after the range
        (first, t0 - timedelta(minutes=1), {"5m": 6.0}),  # before the range
    ]
    for slo, ts, burn_rates in rows:
        SloStatusSample.objects.create(slo=slo, ts=ts, state=SloState.OK, burn_rates=burn_rates)

    got = deployment_burn_rate_history(
        deployment_id=dep.pk, start=t0, end=t0 + timedelta(minutes=5)
    )

    assert got == [(t0.timestamp(), 4.0), ((t0 + timedelta(minutes=2)).timestamp(), 0.5)]
