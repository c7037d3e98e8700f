"""The heartbeat task through a real Celery worker consuming a real Redis broker."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from celery.contrib.testing.worker import start_worker

from apps.core.models import TaskCounter, WorkerHeartbeat
from apps.core.tasks import heartbeat
from celery_worker.config import QUEUES
from controlplane.celery import app
from tests.servers import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


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
        row = wait_for(lambda: WorkerHeartbeat.objects.first(), 30, "the heartbeat row")
        counter = wait_for(
            lambda: TaskCounter.objects.filter(
                task_name="core.heartbeat", outcome="succeeded"
            ).first(),
            30,
            "a succeeded heartbeat counted",
        )
        heartbeat.delay()
        wait_for(
            lambda: TaskCounter.objects.filter(
                task_name="core.heartbeat", outcome="succeeded", count=2
            ).exists(),
            30,
            "a second heartbeat counted",
        )

    assert row.pid > 0
    assert counter.count >= 1
    assert redis_broker.llen("control") == 0
    assert WorkerHeartbeat.objects.get(hostname=row.hostname).last_seen >= row.last_seen
    assert WorkerHeartbeat.objects.count() == 1
