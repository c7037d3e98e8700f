from __future__ import annotations

from celery import shared_task
from django.conf import settings

from apps.core.locks import cache_lock

from .services import slos_evaluate_all


@shared_task(name="slos.evaluate", soft_time_limit=50, time_limit=60)
def evaluate() -> int:
    ttl = int(settings.SLO_EVALUATION_INTERVAL_S * 3)
    with cache_lock("slos:evaluate", ttl_s=ttl) as acquired:
        return len(slos_evaluate_all()) if acquired else 0
