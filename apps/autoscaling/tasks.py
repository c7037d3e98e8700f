"""Celery entry points of the autoscaler; the work is in evaluation.py and actions.py."""

from __future__ import annotations

from celery import shared_task
from django.conf import settings

from apps.core.locks import cache_lock
from apps.inventory.models import Deployment

from .actions import scale_action_execute, scale_actions_resume
from .actuators.factory import actuator_for
from .actuators.warm import warm_capacity_sync_all
from .evaluation import deployment_evaluate
from .selectors import autoscaled_deployment_ids


@shared_task(name="autoscaling.evaluate_all", soft_time_limit=20, time_limit=30)
def evaluate_all() -> int:
    """Fan out one evaluation per deployment with an active policy, and send the pending
    actions (including those of workers that died) to a worker again."""
    ids = autoscaled_deployment_ids()
    for pk in ids:
        evaluate.delay(pk)
    scale_actions_resume(enqueue=execute_action.delay)
    return len(ids)


@shared_task(name="autoscaling.evaluate", soft_time_limit=20, time_limit=30)
def evaluate(deployment_id: int) -> None:
    # One evaluation per deployment at a time; a slow one is skipped, not stacked.
    with cache_lock(f"autoscaling:evaluate:{deployment_id}", ttl_s=30) as acquired:
        if not acquired:
            return
        deployment = (
            Deployment.objects.select_related("cluster")
            # Decrypted by the actuator factory, where a failure becomes a recorded hold.
            .defer("cluster__credentials")
            .filter(pk=deployment_id)
            .first()
        )
        if deployment is not None:
            deployment_evaluate(
                deployment=deployment, actuator_factory=actuator_for, enqueue=execute_action.delay
            )


@shared_task(name="autoscaling.warm_capacity_sync", soft_time_limit=50, time_limit=60)
def warm_capacity_sync() -> dict[str, list[int]]:
    """Warm pools and standby replicas as the deployments' labels ask (idempotent)."""
    with cache_lock("autoscaling:warm-capacity-sync", ttl_s=60) as acquired:
        if not acquired:
            return {}
        return warm_capacity_sync_all()


# Long enough for a drain before a scale-down and the apply after it; the deployment's
# lease (AUTOSCALING_ACTION_LEASE_S) outlasts it.
@shared_task(
    name="autoscaling.execute_action",
    soft_time_limit=settings.AUTOSCALING_ACTION_TIME_LIMIT_S - 30,
    time_limit=settings.AUTOSCALING_ACTION_TIME_LIMIT_S,
)
def execute_action(action_id: int) -> None:
    scale_action_execute(action_id=action_id, actuator_factory=actuator_for)
