"""Scale actions whose worker died while applying them (scale_actions_recover).

The integration test with real worker processes killed with SIGKILL is in
tests/integration/test_faults_worker_killed.py.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.cache import cache
from django.utils import timezone

from apps.autoscaling.actions import deployment_lock, scale_action_execute, scale_actions_recover
from apps.autoscaling.actuators.base import ScaleStatus, ScaleTarget
from apps.autoscaling.models import ActionStatus, AutoscalingPolicy, ScaleAction
from tests.factories.autoscaling import AutoscalingPolicyFactory
from tests.factories.inventory import SimulatedDeploymentFactory

pytestmark = pytest.mark.django_db(transaction=True)


class PlatformActuator:
    """An in-memory replica count that records every write."""

    def __init__(self, spec: int) -> None:
        self.spec = spec
        self.writes: list[tuple[str, int]] = []

    def get_scale(self, target: ScaleTarget) -> ScaleStatus:
        return ScaleStatus(self.spec, self.spec)

    def set_replicas(self, target: ScaleTarget, replicas: int, *, idempotency_key: str):
        self.writes.append((idempotency_key, replicas))
        self.spec = replicas
        return ScaleStatus(self.spec, self.spec)


@pytest.fixture
def deployment(settings):
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    cache.clear()
    dep = SimulatedDeploymentFactory(min_replicas=1, max_replicas=10)
    AutoscalingPolicyFactory(deployment=dep)
    return dep


def _running(deployment, key: str, *, to: int = 3, age: timedelta = timedelta(0)) -> ScaleAction:
    action = ScaleAction.objects.create(
        deployment=deployment,
        from_replicas=1,
        to_replicas=to,
        idempotency_key=key,
        status=ActionStatus.RUNNING,
        started_at=timezone.now() - age,
    )
    ScaleAction.objects.filter(pk=action.pk).update(created_at=timezone.now() - age)
    action.refresh_from_db()
    return action


def test_recover__running_action_whose_lease_ran_out__pending_again_same_key(deployment):
    action = _running(deployment, "dep-key-1to3")
    outcome = scale_actions_recover()
    action.refresh_from_db()
    assert outcome == {"requeued": [action.pk], "superseded": [], "failed": []}
    assert action.status == ActionStatus.PENDING
    assert action.idempotency_key == "dep-key-1to3"
    assert action.started_at is None


def test_recover__worker_still_holds_the_lease__left_running(deployment):
    action = _running(deployment, "dep-key-1to3")
    with deployment_lock(deployment.pk) as acquired:
        assert acquired
        assert scale_actions_recover() == {"requeued": [], "superseded": [], "failed": []}
    action.refresh_from_db()
    assert action.status == ActionStatus.RUNNING


def _recover_and_rerun(action: ScaleAction, platform: PlatformActuator) -> ScaleAction | None:
    """The stuck-action sweep, then the requeued action run against ``platform``."""
    scale_actions_recover()
    return scale_action_execute(
        action_id=action.pk, actuator_factory=lambda d: platform, sleep=lambda s: None
    )


def test_recover__write_landed_before_the_worker_died__rerun_writes_nothing(deployment):
    # The platform already has the 3 replicas the lost run wrote; the row says running.
    platform = PlatformActuator(spec=3)
    action = _running(deployment, "dep-key-1to3")
    done = _recover_and_rerun(action, platform)
    assert done is not None
    assert done.status == ActionStatus.SUCCEEDED
    assert platform.writes == []
    assert platform.spec == 3


def test_recover__write_lost_with_the_worker__rerun_writes_once(deployment):
    platform = PlatformActuator(spec=1)
    action = _running(deployment, "dep-key-1to3")
    done = _recover_and_rerun(action, platform)
    assert done.status == ActionStatus.SUCCEEDED
    assert platform.writes == [("dep-key-1to3", 3)]
    # Recovered again (a second sweep, a redelivered message): nothing more happens.
    assert scale_actions_recover()["requeued"] == []
    assert scale_action_execute(action_id=action.pk, actuator_factory=lambda d: platform) is None
    assert platform.writes == [("dep-key-1to3", 3)]


def test_recover__newer_action_of_the_deployment__superseded_not_applied(deployment):
    stale = _running(deployment, "dep-key-1to3")
    newer = ScaleAction.objects.create(
        deployment=deployment, from_replicas=1, to_replicas=2, idempotency_key="dep-key-1to2"
    )
    outcome = scale_actions_recover()
    stale.refresh_from_db()
    newer.refresh_from_db()
    assert outcome["superseded"] == [stale.pk]
    assert stale.status == ActionStatus.SUPERSEDED
    assert "worker" in stale.error
    assert newer.status == ActionStatus.PENDING


def test_recover__action_older_than_the_limit__failed_visibly(deployment):
    stale = _running(deployment, "dep-key-old", age=timedelta(minutes=10))
    outcome = scale_actions_recover(max_age_s=300)
    stale.refresh_from_db()
    assert outcome["failed"] == [stale.pk]
    assert stale.status == ActionStatus.FAILED
    assert "worker" in stale.error
    assert stale.finished_at is not None


def test_evaluate_all__running_action_lost_its_worker__sent_again(deployment, monkeypatch):
    from apps.autoscaling import tasks

    sent: list[int] = []
    monkeypatch.setattr(tasks.execute_action, "delay", lambda action_id: sent.append(action_id))
    AutoscalingPolicy.objects.filter(deployment=deployment).update(mode="off")
    action = _running(deployment, "dep-key-1to3")
    tasks.evaluate_all()
    action.refresh_from_db()
    assert action.status == ActionStatus.PENDING
    assert sent == [action.pk]
