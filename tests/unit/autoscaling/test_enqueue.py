"""How scale actions reach a worker: the evaluation sends a new one once its decision is
committed, and scale_actions_resume sends the ones left pending or lost with a worker."""

from __future__ import annotations

import time

import pytest
from django.core.cache import cache
from django.db import transaction
from django.utils import timezone

from apps.autoscaling.actions import deployment_lock, scale_actions_resume
from apps.autoscaling.actuators.base import ScaleStatus, ScaleTarget
from apps.autoscaling.evaluation import deployment_evaluate
from apps.autoscaling.models import ActionStatus, AutoscalingPolicy, ScaleAction
from apps.metrics.collection import Observation
from apps.metrics.services import metrics_store
from tests.factories.inventory import SimulatedDeploymentFactory

pytestmark = pytest.mark.django_db(transaction=True)


class FixedActuator:
    def __init__(self, spec: int) -> None:
        self.spec = spec

    def get_scale(self, target: ScaleTarget) -> ScaleStatus:
        return ScaleStatus(self.spec, self.spec)

    def set_replicas(self, target: ScaleTarget, replicas: int, *, idempotency_key: str):
        raise AssertionError("nothing is applied here")


@pytest.fixture
def deployment():
    # The configured cache (Redis, or the shared files) holds the deployment locks, as in
    # production; nothing of another test's may be left in it.
    cache.clear()
    dep = SimulatedDeploymentFactory(min_replicas=1, max_replicas=10)
    AutoscalingPolicy.objects.create(
        deployment=dep, mode="enforce", targets=[{"signal": "queue_length", "value": 5}]
    )
    return dep


def _action(deployment, key: str, status: str) -> ScaleAction:
    return ScaleAction.objects.create(
        deployment=deployment,
        from_replicas=1,
        to_replicas=3,
        idempotency_key=key,
        status=status,
        started_at=timezone.now() if status == ActionStatus.RUNNING else None,
    )


def test_evaluate__change_in_enforce__new_action_enqueued_once_committed(deployment):
    metrics_store(
        observations={deployment.pk: {"queue_length": Observation(40.0, time.time(), "ok")}}
    )
    sent: list[int] = []

    with transaction.atomic():  # as if the evaluation ran inside a caller's transaction
        deployment_evaluate(
            deployment=deployment, actuator=FixedActuator(spec=2), enqueue=sent.append
        )
        # Not before the commit: a worker must be able to read the action it is sent.
        assert sent == []

    action = ScaleAction.objects.get()
    assert action.status == ActionStatus.PENDING
    assert sent == [action.pk]


def test_evaluate__no_change__nothing_enqueued(deployment):
    metrics_store(
        observations={deployment.pk: {"queue_length": Observation(10.0, time.time(), "ok")}}
    )
    sent: list[int] = []
    deployment_evaluate(deployment=deployment, actuator=FixedActuator(spec=2), enqueue=sent.append)
    assert not ScaleAction.objects.exists()
    assert sent == []


def test_resume__pending_and_lost_running_sent__done_and_held_ones_not(deployment):
    other = SimulatedDeploymentFactory()
    pending = _action(deployment, "pending", ActionStatus.PENDING)
    lost = _action(other, "lost", ActionStatus.RUNNING)
    _action(deployment, "done", ActionStatus.SUCCEEDED)
    held_deployment = SimulatedDeploymentFactory()
    held = _action(held_deployment, "held", ActionStatus.RUNNING)
    sent: list[int] = []

    with deployment_lock(held_deployment.pk) as acquired:  # its worker is still on it
        assert acquired
        returned = scale_actions_resume(enqueue=sent.append)

    assert sorted(sent) == sorted([pending.pk, lost.pk])
    assert returned == sent
    lost.refresh_from_db()
    held.refresh_from_db()
    assert lost.status == ActionStatus.PENDING
    assert held.status == ActionStatus.RUNNING
