"""The heartbeat task through a real Celery worker consuming a real Redis broker."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from celery.contrib.testing.worker import start_worker

from apps.core.models import TaskCounter, WorkerHeartbeat
from apps.core.tasks import heartbeat
from celery_worker.config import QUEUES
from controlplane.celery import app

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

# A database of its own, so that a developer's worker on db 0 cannot take our messages.
BROKER_URL = "redis://127.0.0.1:6379/14"


def _wait_for(predicate: Callable[[], Any], timeout_s: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        result = predicate()
        if result:
            return result
        time.sleep(0.1)
    raise AssertionError(f"condition not met within {timeout_s}s")


def _reset_pools() -> None:
    if app._pool is not None:
        app._pool.force_close_all()
    app._pool = None
    app.amqp._producer_pool = None


@pytest.fixture
def redis_broker() -> Iterator[Any]:
    redis = pytest.importorskip("redis")
    client = redis.Redis.from_url(BROKER_URL, socket_connect_timeout=2)
    try:
        client.ping()
    except redis.exceptions.ConnectionError as exc:
        pytest.skip(f"Redis is not reachable at {BROKER_URL} ({exc}); start redis-server")
    client.delete(*QUEUES)
    saved = {key: app.conf[key] for key in ("broker_url", "broker_transport_options")}
    # The embedded worker sets up Celery logging, which lowers the root logger's level.
    root_level = logging.getLogger().level
    _reset_pools()
    app.conf.update(broker_url=BROKER_URL, broker_transport_options={})
    try:
        yield client
    finally:
        _reset_pools()
        app.conf.update(saved)
        logging.getLogger().setLevel(root_level)
        client.delete(*QUEUES)
        client.close()


def test_heartbeat__sent_then_consumed_by_worker__routed_to_control_and_recorded(redis_broker):
    heartbeat.delay()
    # Routed by name: the message waits in the control queue, the others stay empty.
    assert redis_broker.llen("control") == 1
    assert redis_broker.llen("notify") == redis_broker.llen("ingest") == 0

    assert not WorkerHeartbeat.objects.exists()
    with start_worker(
        app, pool="solo", perform_ping_check=False, loglevel="WARNING", shutdown_timeout=30
    ):
        # The embedded worker does not pass its node name to tasks as `celery worker` does,
        # so the row is found by existence rather than by name.
        row = _wait_for(lambda: WorkerHeartbeat.objects.first())
        counter = _wait_for(
            lambda: TaskCounter.objects.filter(
                task_name="core.heartbeat", outcome="succeeded"
            ).first()
        )
        heartbeat.delay()
        _wait_for(
            lambda: TaskCounter.objects.filter(
                task_name="core.heartbeat", outcome="succeeded", count=2
            ).exists()
        )

    assert row.pid > 0
    assert counter.count >= 1
    assert redis_broker.llen("control") == 0
    assert WorkerHeartbeat.objects.get(hostname=row.hostname).last_seen >= row.last_seen
    assert WorkerHeartbeat.objects.count() == 1
