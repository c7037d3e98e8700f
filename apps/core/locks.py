"""A lock in the shared cache (Redis in production): ``add`` sets the key only if it is
absent, so one holder at a time; the TTL frees it if the holder dies; only the holder
(by its token) releases it, so a lock that expired and was taken over is not freed."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from django.core.cache import cache


@contextmanager
def cache_lock(key: str, *, ttl_s: int) -> Iterator[bool]:
    """Yields whether the lock was acquired; the caller decides what to do if not."""
    token = uuid.uuid4().hex
    acquired = bool(cache.add(key, token, timeout=ttl_s))
    try:
        yield acquired
    finally:
        if acquired and cache.get(key) == token:
            cache.delete(key)
