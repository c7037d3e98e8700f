from __future__ import annotations

from celery import shared_task
from django.conf import settings
from django.core.cache import cache

from .services import slos_evaluate_all


@shared_task(name="slos.evaluate", soft_time_limit=50, time_limit=60)
def evaluate() -> int:
    lock = "slos:evaluate"
    if not cache.add(lock, "1", timeout=int(settings.SLO_EVALUATION_INTERVAL_S * 3)):
        return 0
    try:
        return len(slos_evaluate_all())
    finally:
        cache.delete(lock)
