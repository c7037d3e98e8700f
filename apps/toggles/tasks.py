"""Celery entry points of automatic degradation; the work is in services.degradation_evaluate."""

from __future__ import annotations

from celery import shared_task
from django.conf import settings

from apps.alerts.tasks import deliver_channel
from apps.core.locks import cache_lock

from .models import DegradationPolicy
from .selectors import degradation_policy_ids
from .services import degradation_evaluate


@shared_task(name="toggles.evaluate_degradation_all", soft_time_limit=20, time_limit=30)
def evaluate_degradation_all() -> int:
    """Fan out one evaluation per enabled degradation policy."""
    ids = degradation_policy_ids()
    for pk in ids:
        evaluate_degradation.delay(pk)
    return len(ids)


@shared_task(name="toggles.evaluate_degradation", soft_time_limit=20, time_limit=30)
def evaluate_degradation(policy_id: int) -> None:
    # One evaluation per policy at a time: two workers never act on one policy; a slow
    # evaluation makes the next one skip rather than stack.
    ttl = max(30, int(settings.DEGRADATION_INTERVAL_S * 2))
    with cache_lock(f"toggles:degradation:{policy_id}", ttl_s=ttl) as acquired:
        if not acquired:
            return
        policy = (
            DegradationPolicy.objects.select_related("team", "deployment")
            .filter(pk=policy_id)
            .first()
        )
        if policy is not None:
            degradation_evaluate(policy=policy, enqueue=deliver_channel.delay)
