"""A real Celery worker's surroundings for integration tests: the broker and Django's cache
on Redis databases of their own, emptied before and after, and connection pools reset so
that one test's closed pool does not leak into the next."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from typing import Any

import kombu.pools
import pytest

from controlplane.celery import app

# Databases of their own: a developer's worker (db 0) or the heartbeat test (db 14)
# cannot take these messages or hold these locks.
BROKER_URL = "redis://127.0.0.1:6379/13"
CACHE_URL = "redis://127.0.0.1:6379/12"
REDIS_CACHE = "django.core.cache.backends.redis.RedisCache"


def wait_for(predicate: Callable[[], Any], timeout_s: float = 30.0, what: str = "") -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout_s:g}s: {what or predicate}")
        time.sleep(0.05)


def reset_pools() -> None:
    if app._pool is not None:
        app._pool.force_close_all()
    app._pool = None
    app.amqp._producer_pool = None
    # kombu keeps one pool per broker URL for the process: drop the closed ones too.
    kombu.pools.reset()
    # Remote control (ping) keeps the producer pool it first used: forget it too.
    del app.control.mailbox.producer_pool


@pytest.fixture
def celery_redis(settings: Any) -> Iterator[Any]:
    """Celery's broker on Redis db 13 and Django's cache on Redis db 12, both empty."""
    redis = pytest.importorskip("redis")
    broker = redis.Redis.from_url(BROKER_URL, socket_connect_timeout=2)
    locks = redis.Redis.from_url(CACHE_URL, socket_connect_timeout=2)
    try:
        broker.ping()
    except redis.exceptions.ConnectionError as exc:
        pytest.skip(f"Redis is not reachable at {BROKER_URL} ({exc}); start redis-server")
    broker.flushdb()
    locks.flushdb()
    settings.CACHES = {"default": {"BACKEND": REDIS_CACHE, "LOCATION": CACHE_URL}}
    saved = {key: app.conf[key] for key in ("broker_url", "broker_transport_options")}
    # An embedded worker sets up Celery logging, which lowers the root logger's level.
    root_level = logging.getLogger().level
    reset_pools()
    app.conf.update(broker_url=BROKER_URL, broker_transport_options={})
    try:
        yield broker
    finally:
        reset_pools()
        app.conf.update(saved)
        logging.getLogger().setLevel(root_level)
        broker.flushdb()
        locks.flushdb()
        broker.close()
        locks.close()
