"""Counting failed authentications (API tokens, password logins) to slow down guessing.

Failures are counted in the shared cache (Redis in production, so every web worker and pod
sees the same counts) per key — a client address, a token prefix, a username — in buckets
of a tenth of ``window_s``. A key's failures are the sum of its last eleven buckets (the
current one and the ten before it), so a failure counts for at least ``window_s`` seconds
and at most a tenth longer. One counter per window would forget every failure at the
window's boundary, so failures made just before it and just after it would each get a full
allowance. Once a key's sum reaches ``limit``, attempts under it are refused until enough
old buckets have dropped out for the sum to fall below the limit again; that time is the
Retry-After the caller is given. The failure that brings a key's sum to the limit stores
when that will be, so the check every request makes reads one entry per key, not eleven.
A cache outage never locks anyone out: the counts are then skipped.
"""

from __future__ import annotations

import hashlib
import math
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass

import structlog
from django.conf import settings
from django.core.cache import cache

logger = structlog.get_logger("controlplane.auth")

# Part of every key; tests change it to start from zero (see failures_forget()).
_namespace = "0"
_forgotten = 0


@dataclass(frozen=True)
class FailureLimit:
    scope: str  # "api-token" or "login"
    limit: int  # failures per window per key; 0 switches counting off
    window_s: int


def api_token_limit() -> FailureLimit:
    return FailureLimit(
        "api-token", settings.API_TOKEN_FAILURE_LIMIT, settings.API_TOKEN_FAILURE_WINDOW_S
    )


def login_limit() -> FailureLimit:
    return FailureLimit("login", settings.LOGIN_FAILURE_LIMIT, settings.LOGIN_FAILURE_WINDOW_S)


BUCKETS = 10  # per window; a key's count spans BUCKETS + 1 of them


def _bucket(rule: FailureLimit, now: float) -> tuple[int, float]:
    """The number of the bucket holding ``now``, and a bucket's length in seconds."""
    width = rule.window_s / BUCKETS
    return int(now // width), width


def _cache_key(rule: FailureLimit, bucket: int | str, key: str) -> str:
    # Hashed: keys hold user input (usernames, token prefixes) of any length and alphabet.
    digest = hashlib.sha256(key.encode("utf-8", "replace")).hexdigest()[:32]
    return f"authfail:{_namespace}:{rule.scope}:{bucket}:{digest}"


def _lock_key(rule: FailureLimit, key: str) -> str:
    """Where a key's lockout ends (a timestamp), set when its failures reach the limit: the
    sum only grows on a failure, so the check on every request reads this one entry instead
    of the key's eleven buckets."""
    return _cache_key(rule, "locked", key)


def wait_s(*, limit: int, counts: Sequence[int], bucket_end_s: float, width_s: float) -> int:
    """Seconds until a key may be tried again (0: now). ``counts`` are its buckets, oldest
    first, the last being the current one, which ends ``bucket_end_s`` from now; each bucket
    is ``width_s`` long. Every bucket end drops the oldest one from the sum."""
    left = sum(counts)
    if limit <= 0 or left < limit:
        return 0
    for dropped, count in enumerate(counts, start=1):
        left -= count
        if left < limit:
            return max(1, math.ceil(bucket_end_s + (dropped - 1) * width_s))
    raise AssertionError("unreachable: the sum of no buckets is below a positive limit")


def _counts(
    rule: FailureLimit, keys: Sequence[str], now: float
) -> tuple[list[list[int]], float, float]:
    """Each key's bucket counts (oldest first), the seconds to the current bucket's end and
    a bucket's length."""
    current, width = _bucket(rule, now)
    numbers = range(current - BUCKETS, current + 1)
    names = [[_cache_key(rule, number, key) for number in numbers] for key in keys]
    found = cache.get_many([name for per_key in names for name in per_key])
    counts = [[int(found.get(name, 0)) for name in per_key] for per_key in names]
    return counts, (current + 1) * width - now, width


def failures_blocked(*, rule: FailureLimit, keys: Sequence[str], now: float | None = None) -> int:
    """Seconds to wait when any of ``keys`` has used up its failures, else 0."""
    if rule.limit <= 0 or not keys:
        return 0
    now = time.time() if now is None else now
    try:
        ends = cache.get_many([_lock_key(rule, key) for key in keys])
    except Exception:  # noqa: BLE001 - an unavailable cache must not lock everyone out
        logger.warning("auth-throttle-cache-unavailable", scope=rule.scope)
        return 0
    return max([0, *(math.ceil(float(end) - now) for end in ends.values())])


def failure_record(*, rule: FailureLimit, keys: Sequence[str], now: float | None = None) -> int:
    """Count one failure under each key and lock out the keys whose failures have reached
    the limit; returns the seconds to wait when a key has now gone over it, else 0."""
    if rule.limit <= 0 or not keys:
        return 0
    now = time.time() if now is None else now
    current, width = _bucket(rule, now)
    waits = []
    try:
        for key in keys:
            name = _cache_key(rule, current, key)
            # add() starts the count (and its expiry) without overwriting a concurrent one.
            # A bucket is read for as long as it lies in a key's span.
            cache.add(name, 0, timeout=math.ceil(rule.window_s + 2 * width) + 1)
            cache.incr(name)
        counts, bucket_end, width = _counts(rule, keys, now)
        for key, per_key in zip(keys, counts, strict=True):
            wait = wait_s(limit=rule.limit, counts=per_key, bucket_end_s=bucket_end, width_s=width)
            if wait:
                cache.set(_lock_key(rule, key), now + wait, timeout=wait + 1)
                if sum(per_key) > rule.limit:
                    waits.append(wait)
    except Exception:  # noqa: BLE001 - see failures_blocked()
        logger.warning("auth-throttle-cache-unavailable", scope=rule.scope)
        return 0
    return max(waits, default=0)


def failures_forget() -> None:
    """Start every count from zero in this process (for tests)."""
    # A fresh random prefix, not a counter: a counter restarts with every process, so a
    # second test run within the window against the same Redis would meet the first one's
    # counts.
    global _namespace, _forgotten
    _forgotten += 1
    _namespace = f"t{secrets.token_hex(4)}{_forgotten}"
