"""The heartbeat task through a real Celery worker consuming a real Redis broker."""

from __future__ import annotations

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


def _wait_for(predicate: Callable[[], Any], timeout_s: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        result = predicate()
        if result:
            return result
        time.sleep(0.1)
    raise AssertionError(f"condition not met within {timeout_s}s")


@pytest.fixture
def redis_broker(celery_redis: Any) -> Iterator[Any]:
    """The broker's Redis database (a private redis-server when installed), empty."""
    client = celery_redis.broker
    client.delete(*QUEUES)
    yield client
    client.delete(*QUEUES)


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
