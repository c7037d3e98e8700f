from __future__ import annotations

from celery import shared_task

from apps.core.locks import cache_lock

from .services import log_storage_maintain


@shared_task(name="logs.maintain_storage", soft_time_limit=1800, time_limit=1860)
def maintain_storage() -> int | None:
    """Partitions ahead and retention; a run still going when the next is due is not doubled."""
    with cache_lock("logs:maintain-storage", ttl_s=1900) as acquired:
        if not acquired:
            return None
        return log_storage_maintain()
