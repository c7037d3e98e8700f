"""Celery entry points of the go-live checks; the work is in services.py."""

from __future__ import annotations

from celery import shared_task
from django.conf import settings

from apps.core.locks import cache_lock

from .services import checks_run_all, loadtest_execute


@shared_task(name="golive.run_checks_all", soft_time_limit=240, time_limit=270)
def run_checks_all() -> int:
    """Every deployment's checks; a run still going when the next is due is not doubled."""
    with cache_lock("golive:checks-all", ttl_s=270) as acquired:
        return checks_run_all() if acquired else 0


# The engine stops itself at the plan's max_total_s (capped by GOLIVE_LOADTEST_MAX_TOTAL_S);
# the limits only end a run that hangs past it.
@shared_task(
    name="golive.run_loadtest",
    soft_time_limit=int(settings.GOLIVE_LOADTEST_MAX_TOTAL_S) + 60,
    time_limit=int(settings.GOLIVE_LOADTEST_MAX_TOTAL_S) + 90,
)
def run_loadtest(run_id: int) -> None:
    loadtest_execute(run_id=run_id)
