"""The Redis cache backend keeps one redis-py client per pool, and still recovers from a
Redis restart (the client takes fresh connections from its pool)."""

from __future__ import annotations

from typing import Any

from django.core.cache import cache

from apps.core.cache import PooledRedisCacheClient


def test_redis_cache__client_built_once_per_pool__values_round_trip(redis_cache: Any) -> None:
    backend = cache._cache  # type: ignore[attr-defined]
    assert isinstance(backend, PooledRedisCacheClient)
    assert backend.get_client("a", write=True) is backend.get_client("b", write=True)
    cache.set("k", {"v": 1}, timeout=30)
    assert cache.get("k") == {"v": 1}
    assert cache.get_many(["k", "missing"]) == {"k": {"v": 1}}


def test_redis_cache__redis_restarted__shared_client_reconnects(redis_cache: Any) -> None:
    cache.set("k", 1, timeout=30)
    redis_cache.restart()  # everything in memory is gone, connections are dead
    assert cache.get("k") is None
    cache.set("k", 2, timeout=30)
    assert cache.get("k") == 2
