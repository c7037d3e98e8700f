"""Token buckets in the shared cache: the pure step, the file cache, and Redis (atomic)."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.cache import cache

from apps.core.ratelimit import Bucket, buckets_take, gcra_take

T0 = 1_800_000_000.0


@pytest.fixture(autouse=True)
def _empty_cache() -> None:
    cache.clear()


def test_gcra__burst_then_refill_at_rate() -> None:
    bucket = Bucket("k", rate=10, burst_s=1, cost=1)
    tats: list[float | None] = [None]
    allowed = 0
    for _ in range(15):
        wait, new = gcra_take(tats, [bucket], T0 * 1e6)
        if wait <= 0:
            tats = list(new)
            allowed += 1
    assert allowed == 10  # a full bucket holds rate * burst_s
    wait, _ = gcra_take(tats, [bucket], (T0 + 0.1) * 1e6)
    assert wait <= 0  # a tenth of a second later, one unit came back


def test_gcra__take_larger_than_bucket__only_when_full() -> None:
    big = Bucket("k", rate=10, burst_s=1, cost=50)
    wait, tats = gcra_take([None], [big], T0 * 1e6)
    assert wait <= 0
    wait, _ = gcra_take(list(tats), [Bucket("k", 10, 1, 1)], (T0 + 1) * 1e6)
    assert wait > 0  # paid for by waiting: 50 units at 10/s


def _sequence() -> list[int]:
    lines = Bucket("lines:1", rate=5, burst_s=2, cost=4)
    size = Bucket("bytes:1", rate=1000, burst_s=2, cost=100)
    return [
        buckets_take([lines, size], now=T0),
        buckets_take([lines, size], now=T0),  # 8 of 10 lines
        buckets_take([lines, size], now=T0),  # 12 > 10: refused, nothing taken
        buckets_take([Bucket("bytes:1", 1000, 2, 1700)], now=T0),  # bytes untouched above
        buckets_take([lines, size], now=T0 + 0.8),  # 4 lines came back
    ]


def test_buckets_take__file_cache__all_or_nothing_and_retry_after() -> None:
    results = _sequence()
    assert results[:2] == [0, 0]
    assert results[2] == 1  # 2 lines short at 5/s: 0.4 s, rounded up
    assert results[3:] == [0, 0]


def test_buckets_take__redis__same_answers(redis_cache: Any) -> None:
    results = _sequence()
    assert results[:2] == [0, 0]
    assert results[2] == 1
    assert results[3:] == [0, 0]


def test_buckets_take__redis_forgot_the_script__sent_again(redis_cache: Any) -> None:
    """Calls name the script by its digest; a Redis that no longer has it (restarted, or
    SCRIPT FLUSH) is sent the script again, and the answers stay the same."""
    import redis

    from apps.core.ratelimit import _SCRIPT

    client = redis.Redis.from_url(redis_cache.url(0))
    lines = Bucket("lines:2", rate=5, burst_s=2, cost=4)
    assert buckets_take([lines], now=T0) == 0
    assert client.script_exists(_SCRIPT.sha1) == [True]  # the digest is the name Redis uses
    client.script_flush()
    assert buckets_take([lines], now=T0) == 0  # 8 of 10
    assert client.script_exists(_SCRIPT.sha1) == [True]
    assert buckets_take([lines], now=T0) == 1  # 12 > 10: refused, so the state was kept


def test_buckets_take__no_rate__never_limited() -> None:
    assert all(buckets_take([Bucket("x", 0, 1, 10**9)], now=T0) == 0 for _ in range(3))


def test_buckets_take__cache_down__allowed(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: Any, **kwargs: Any) -> Any:
        raise ConnectionError("cache down")

    monkeypatch.setattr(cache, "get", broken)
    assert buckets_take([Bucket("x", 1, 1, 100)], now=T0) == 0
