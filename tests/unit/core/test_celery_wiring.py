"""Queue routing and the periodic schedule of the Celery app."""

from __future__ import annotations

import pytest

from celery_worker.config import QUEUES
from controlplane.celery import app


@pytest.mark.parametrize(
    ("task", "queue"),
    [
        ("core.heartbeat", "control"),
        ("metrics.collect_all", "control"),
        ("slos.evaluate", "control"),
        ("alerts.deliver_slack", "notify"),
        ("alerts.evaluate", "control"),
        ("logs.ingest_push", "ingest"),
        ("something.unrouted", "control"),
    ],
)
def test_task_routes__task_name__queue(task, queue):
    route = app.amqp.router.route({}, task)
    assert route["queue"].name == queue


def test_queues__declared_for_every_route():
    assert {q.name for q in app.conf.task_queues} == set(QUEUES)
    assert app.conf.task_default_queue == "control"


def test_beat_schedule__every_entry__names_a_registered_task():
    app.loader.import_default_modules()
    scheduled = {entry["task"] for entry in app.conf.beat_schedule.values()}
    assert "core.heartbeat" in scheduled
    assert scheduled <= set(app.tasks)


def test_heartbeat_task__explicit_time_limits():
    task = app.tasks["core.heartbeat"]
    assert (task.soft_time_limit, task.time_limit) == (10, 20)
