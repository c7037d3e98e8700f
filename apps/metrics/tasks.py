from __future__ import annotations

from celery import shared_task
from django.conf import settings
from django.core.cache import cache

from .services import metric_samples_prune, metrics_collect_shard


@shared_task(name="metrics.collect_all", soft_time_limit=10, time_limit=20)
def collect_all() -> int:
    """Fan out one collection task per shard, so several workers share a large fleet."""
    shards = settings.METRICS_SHARDS
    for shard in range(shards):
        collect_shard.delay(shard, shards)
    return shards


@shared_task(name="metrics.collect_shard", soft_time_limit=30, time_limit=45)
def collect_shard(shard: int, shards: int) -> None:
    # A cycle that overruns its interval must not stack up behind itself: skip instead.
    lock = f"metrics:collect:{shard}/{shards}"
    if not cache.add(lock, "1", timeout=int(settings.METRICS_COLLECT_INTERVAL_S * 3)):
        return
    try:
        metrics_collect_shard(shard=shard, shards=shards)
    finally:
        cache.delete(lock)


@shared_task(name="metrics.prune_samples", soft_time_limit=120, time_limit=180)
def prune_samples() -> int:
    return metric_samples_prune()
