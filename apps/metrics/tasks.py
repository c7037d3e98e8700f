from __future__ import annotations

from celery import shared_task
from django.conf import settings

from apps.core.locks import cache_lock

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
    ttl = int(settings.METRICS_COLLECT_INTERVAL_S * 3)
    with cache_lock(f"metrics:collect:{shard}/{shards}", ttl_s=ttl) as acquired:
        if acquired:
            metrics_collect_shard(shard=shard, shards=shards)


@shared_task(name="metrics.prune_samples", soft_time_limit=120, time_limit=180)
def prune_samples() -> int:
    return metric_samples_prune()
