"""Token buckets in the shared cache (Redis in production), so that every web worker and pod
draws from the same buckets.

A bucket is kept as one number, its "theoretical arrival time" (the generic cell rate
algorithm): the time at which it would be full again. Taking ``cost`` units moves it
``cost / rate`` seconds later; a take is allowed while that stays within ``burst_s`` seconds of
now, so a full bucket holds ``rate * burst_s`` units and refills at ``rate`` per second. A take
larger than a whole bucket is allowed only when the bucket is full, and leaves it empty for as
long as it would take to refill that much: the average rate holds, and a large batch is not
refused for ever.

Several buckets are taken at once or not at all (lines/s and bytes/s of one push). On Redis
that is one Lua script, atomic across workers; on another cache (the file cache of
``make run``) it is a read and a write, exact for one process and close enough for a few.
A cache outage never blocks anyone: the take is then allowed.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass

import structlog
from django.core.cache import cache

from .cache import RedisScript, default_redis

logger = structlog.get_logger("controlplane.ratelimit")

_US = 1_000_000


@dataclass(frozen=True)
class Bucket:
    key: str  # unique per bucket, e.g. "logs-lines:42"
    rate: float  # units per second; 0 or less: no limit
    burst_s: float  # seconds of the rate a full bucket holds
    cost: float  # units this take needs


# KEYS: the buckets; ARGV: now (µs), then interval (µs per unit), burst (µs) and cost of
# each bucket. Returns the µs to wait as a string ("0": taken).
_LUA = """
local now = tonumber(ARGV[1])
local wait = 0
local tats = {}
for i = 1, #KEYS do
  local interval = tonumber(ARGV[i * 3 - 1])
  local burst = tonumber(ARGV[i * 3])
  local cost = tonumber(ARGV[i * 3 + 1])
  local tat = tonumber(redis.call('GET', KEYS[i]) or now)
  if tat < now then tat = now end
  local new_tat = tat + cost * interval
  local over = new_tat - now - math.max(burst, cost * interval)
  if over > wait then wait = over end
  tats[i] = new_tat
end
if wait > 0 then return tostring(wait) end
for i = 1, #KEYS do
  redis.call('SET', KEYS[i], tostring(tats[i]), 'PX', math.ceil((tats[i] - now) / 1000) + 1000)
end
return '0'
"""
_SCRIPT = RedisScript(_LUA)


def gcra_take(
    tats: Sequence[float | None], buckets: Sequence[Bucket], now_us: float
) -> tuple[float, list[float]]:
    """The pure step the Lua script also implements: (µs to wait, new arrival times)."""
    wait = 0.0
    new: list[float] = []
    for tat, bucket in zip(tats, buckets, strict=True):
        interval = _US / bucket.rate
        start = max(tat if tat is not None else now_us, now_us)
        after = start + bucket.cost * interval
        over = after - now_us - max(bucket.burst_s * _US, bucket.cost * interval)
        wait = max(wait, over)
        new.append(after)
    return wait, new


def buckets_take(buckets: Sequence[Bucket], *, now: float | None = None) -> int:
    """Take ``cost`` from every bucket, or from none. Returns 0 when taken, else the whole
    seconds (at least 1) after which the same take would be allowed: a Retry-After."""
    limited = [b for b in buckets if b.rate > 0 and b.cost > 0]
    if not limited:
        return 0
    now_us = (time.time() if now is None else now) * _US
    keys = [cache.make_key(f"ratelimit:{b.key}") for b in limited]
    try:
        client = default_redis(keys[0])
        if client is not None:
            args: list[float] = [now_us]
            for bucket in limited:
                args += [_US / bucket.rate, bucket.burst_s * _US, bucket.cost]
            wait = float(_SCRIPT(client, keys, args))
        else:
            stored = [cache.get(f"ratelimit:{b.key}") for b in limited]
            wait, tats = gcra_take(stored, limited, now_us)
            if wait <= 0:
                for bucket, tat in zip(limited, tats, strict=True):
                    timeout = math.ceil((tat - now_us) / _US) + 1
                    cache.set(f"ratelimit:{bucket.key}", tat, timeout=timeout)
    except Exception:  # noqa: BLE001 - an unavailable cache must not stop the service
        logger.warning("ratelimit-cache-unavailable", keys=[b.key for b in limited])
        return 0
    return 0 if wait <= 0 else max(1, math.ceil(wait / _US))
