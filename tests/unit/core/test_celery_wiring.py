"""Queue routing and the periodic schedule of the Celery app."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import override_settings

from celery_worker.config import QUEUES, beat_schedule
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
        ("toggles.evaluate_degradation", "control"),
        ("golive.run_checks_all", "control"),
        ("golive.run_loadtest", "loadtest"),
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


@override_settings(
    WORKER_HEARTBEAT_INTERVAL_S=3,
    METRICS_COLLECT_INTERVAL_S=4.0,
    SLO_EVALUATION_INTERVAL_S=5.0,
    AUTOSCALING_INTERVAL_S=6.0,
    ALERTS_FLUSH_INTERVAL_S=7.0,
    ALERTS_RULES_INTERVAL_S=8.0,
    LOGS_MAINTENANCE_INTERVAL_S=900.0,
    DEGRADATION_INTERVAL_S=9.0,
    AUTOSCALING_WARM_SYNC_INTERVAL_S=11.0,
)
def test_beat_schedule__intervals__come_from_settings():
    schedule = {name: entry["schedule"] for name, entry in beat_schedule().items()}
    assert schedule["heartbeat"] == timedelta(seconds=3)
    assert schedule["metrics-collect"] == timedelta(seconds=4)
    assert schedule["slos-evaluate"] == timedelta(seconds=5)
    assert schedule["autoscaling-evaluate"] == timedelta(seconds=6)
    assert schedule["alerts-flush-groups"] == timedelta(seconds=7)
    assert schedule["alerts-evaluate-rules"] == timedelta(seconds=8)
    assert schedule["logs-maintain-storage"] == timedelta(seconds=900)
    assert schedule["toggles-evaluate-degradation"] == timedelta(seconds=9)
    assert schedule["autoscaling-warm-capacity"] == timedelta(seconds=11)


def test_degradation_tasks__explicit_time_limits():
    app.loader.import_default_modules()
    for name in ("toggles.evaluate_degradation_all", "toggles.evaluate_degradation"):
        task = app.tasks[name]
        assert (task.soft_time_limit, task.time_limit) == (20, 30)


def test_heartbeat_task__explicit_time_limits():
    task = app.tasks["core.heartbeat"]
    assert (task.soft_time_limit, task.time_limit) == (10, 20)
