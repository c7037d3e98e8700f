"""Counting failed authentications (API tokens, password logins) to slow down guessing.

Failures are counted in the shared cache (Redis in production, so every web worker and pod
sees the same counts) per key — a client address, a token prefix, a username — in fixed
windows of ``window_s`` seconds. Once a key reaches ``limit`` failures in the current
window, attempts under it are refused until the window ends, which is the Retry-After the
caller is given. A cache outage never locks anyone out: the counts are then skipped.
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


def _window(rule: FailureLimit, now: float) -> tuple[int, int]:
    """The current window's number and the seconds until it ends (at least 1)."""
    number = int(now // rule.window_s)
    return number, max(1, math.ceil((number + 1) * rule.window_s - now))


def _cache_key(rule: FailureLimit, window: int, key: str) -> str:
    # Hashed: keys hold user input (usernames, token prefixes) of any length and alphabet.
    digest = hashlib.sha256(key.encode("utf-8", "replace")).hexdigest()[:32]
    return f"authfail:{_namespace}:{rule.scope}:{window}:{digest}"


def failures_blocked(*, rule: FailureLimit, keys: Sequence[str], now: float | None = None) -> int:
    """Seconds to wait when any of ``keys`` has used up its failures, else 0."""
    if rule.limit <= 0 or not keys:
        return 0
    window, remaining = _window(rule, time.time() if now is None else now)
    names = [_cache_key(rule, window, key) for key in keys]
    try:
        counts = cache.get_many(names)
    except Exception:  # noqa: BLE001 - an unavailable cache must not lock everyone out
        logger.warning("auth-throttle-cache-unavailable", scope=rule.scope)
        return 0
    return remaining if any(int(count) >= rule.limit for count in counts.values()) else 0


def failure_record(*, rule: FailureLimit, keys: Sequence[str], now: float | None = None) -> int:
    """Count one failure under each key; returns the seconds to wait when a key has now
    gone over its limit, else 0."""
    if rule.limit <= 0 or not keys:
        return 0
    window, remaining = _window(rule, time.time() if now is None else now)
    highest = 0
    try:
        for key in keys:
            name = _cache_key(rule, window, key)
            # add() starts the count (and its expiry) without overwriting a concurrent one.
            cache.add(name, 0, timeout=rule.window_s + 1)
            highest = max(highest, cache.incr(name))
    except Exception:  # noqa: BLE001 - see failures_blocked()
        logger.warning("auth-throttle-cache-unavailable", scope=rule.scope)
        return 0
    return remaining if highest > rule.limit else 0


def failures_forget() -> None:
    """Start every count from zero in this process (for tests)."""
    # A fresh random prefix, not a counter: a counter restarts with every process, so a
    # second test run within the window against the same Redis would meet the first one's
    # counts.
    global _namespace, _forgotten
    _forgotten += 1
    _namespace = f"t{secrets.token_hex(4)}{_forgotten}"
