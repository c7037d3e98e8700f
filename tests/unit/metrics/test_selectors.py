"""Typed reads of the stored observations (latest_observations, Observation.from_dict)."""

from __future__ import annotations

import pytest
from django.utils import timezone

from apps.metrics.models import DeploymentMetrics
from apps.metrics.selectors import Observation, latest_observations
from apps.metrics.services import metrics_store
from tests.factories.inventory import DeploymentFactory

pytestmark = pytest.mark.django_db


def _stored(deployment, observations: dict) -> None:
    """A row as an older collector (or a hand edit) may have left it."""
    DeploymentMetrics.objects.create(
        deployment=deployment,
        status="partial",
        observations=observations,
        collected_at=timezone.now(),
    )


def test_latest_observations__collected__typed_as_stored():
    dep = DeploymentFactory()
    metrics_store(
        observations={
            dep.pk: {
                "queue_length": Observation(7.0, 1000.0, "ok"),
                "ttft_p95": Observation(None, 990.0, "stale", "last scrape 400s ago"),
            }
        }
    )

    got = latest_observations(deployment_ids=[dep.pk])

    assert got == {
        dep.pk: {
            "queue_length": Observation(7.0, 1000.0, "ok", ""),
            "ttft_p95": Observation(None, 990.0, "stale", "last scrape 400s ago"),
        }
    }


def test_latest_observations__partial_item__missing_keys_read_as_unknown():
    dep = DeploymentFactory()
    _stored(
        dep,
        {
            "queue_length": {"value": 3, "ts": 100},  # no status, no reason
            "kv_cache_usage": {"status": "unavailable", "reason": "Prometheus down"},
            "ttft_p95": {},
        },
    )

    got = latest_observations(deployment_ids=[dep.pk])[dep.pk]

    assert got["queue_length"] == Observation(3.0, 100.0, "missing", "")
    assert isinstance(got["queue_length"].value, float)
    assert isinstance(got["queue_length"].timestamp, float)
    assert got["kv_cache_usage"] == Observation(None, None, "unavailable", "Prometheus down")
    assert got["ttft_p95"] == Observation(None, None, "missing", "")
    # Only an ok observation has a usable value.
    assert got["queue_length"].ok_value is None


def test_latest_observations__only_the_deployments_asked_for_and_never_collected_absent():
    asked, other, never = DeploymentFactory(), DeploymentFactory(), DeploymentFactory()
    metrics_store(
        observations={
            asked.pk: {"queue_length": Observation(1.0, 10.0, "ok")},
            other.pk: {"queue_length": Observation(2.0, 10.0, "ok")},
        }
    )

    assert set(latest_observations(deployment_ids=[asked.pk, never.pk])) == {asked.pk}
    assert set(latest_observations(deployment_ids=None)) == {asked.pk, other.pk}
    assert latest_observations(deployment_ids=[]) == {}


def test_observation__age_and_ok_value():
    fresh = Observation(4.0, 1000.0, "ok")
    assert fresh.age_s(1030.0) == 30.0
    # A scrape stamped after `now` (clock skew) is not negative in age.
    assert fresh.age_s(990.0) == 0.0
    assert Observation(None, None, "missing").age_s(1000.0) is None
    assert fresh.ok_value == 4.0
    assert Observation(4.0, 1000.0, "stale").ok_value is None
