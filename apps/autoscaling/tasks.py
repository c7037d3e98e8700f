from __future__ import annotations

from celery import shared_task

from apps.core.locks import cache_lock
from apps.inventory.models import Deployment

from .actuators.factory import actuator_for
from .evaluation import deployment_evaluate, scale_action_execute, scale_actions_recover
from .models import ActionStatus, Mode, ScaleAction


@shared_task(name="autoscaling.evaluate_all", soft_time_limit=20, time_limit=30)
def evaluate_all() -> int:
    """Fan out one evaluation per deployment with an active policy."""
    ids = list(
        Deployment.objects.filter(autoscaling_policy__isnull=False)
        .exclude(autoscaling_policy__mode=Mode.OFF)
        .exclude(status="retired")
        .values_list("pk", flat=True)
    )
    for pk in ids:
        evaluate.delay(pk)
    # An action claimed by a worker that died goes back to pending (or is closed).
    scale_actions_recover()
    # Actions left pending (a lost enqueue, a busy lock) are picked up again here.
    for action_id in ScaleAction.objects.filter(status=ActionStatus.PENDING).values_list(
        "pk", flat=True
    ):
        execute_action.delay(action_id)
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
            deployment_evaluate(deployment=deployment, actuator_factory=actuator_for)


@shared_task(name="autoscaling.execute_action", soft_time_limit=60, time_limit=90)
def execute_action(action_id: int) -> None:
    scale_action_execute(action_id=action_id, actuator_factory=actuator_for)
