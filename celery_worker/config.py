"""Queue routing and the periodic schedule, loaded by controlplane.celery.

Three queues keep slow work from delaying the control loop: ``control`` (collection,
evaluation, scale actions, heartbeat), ``notify`` (chat deliveries) and ``ingest`` (logs and
inbound alerts). django-celery-beat's DatabaseScheduler copies ``beat_schedule`` into the
database on start, where operators can then change intervals in the admin. The intervals come
from the Django settings (controlplane/settings/), which read and check the environment once.
"""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from kombu import Queue

QUEUES = ("control", "notify", "ingest")

task_queues = [Queue(name) for name in QUEUES]
task_default_queue = "control"
task_routes = {
    "core.*": {"queue": "control"},
    "metrics.*": {"queue": "control"},
    "slos.*": {"queue": "control"},
    "autoscaling.*": {"queue": "control"},
    "alerts.deliver*": {"queue": "notify"},
    "alerts.*": {"queue": "control"},
    "logs.*": {"queue": "ingest"},
}


def beat_schedule() -> dict[str, dict[str, object]]:
    """The periodic tasks, with the intervals the settings chose."""
    return {
        "heartbeat": {
            "task": "core.heartbeat",
            "schedule": timedelta(seconds=settings.WORKER_HEARTBEAT_INTERVAL_S),
            "options": {"expires": 30},
        },
        "metrics-collect": {
            "task": "metrics.collect_all",
            "schedule": timedelta(seconds=settings.METRICS_COLLECT_INTERVAL_S),
            "options": {"expires": 10},
        },
        "slos-evaluate": {
            "task": "slos.evaluate",
            "schedule": timedelta(seconds=settings.SLO_EVALUATION_INTERVAL_S),
            "options": {"expires": 30},
        },
        "autoscaling-evaluate": {
            "task": "autoscaling.evaluate_all",
            "schedule": timedelta(seconds=settings.AUTOSCALING_INTERVAL_S),
            "options": {"expires": 10},
        },
        "alerts-flush-groups": {
            "task": "alerts.flush_groups",
            "schedule": timedelta(seconds=settings.ALERTS_FLUSH_INTERVAL_S),
            "options": {"expires": 10},
        },
        "alerts-deliver-due": {
            "task": "alerts.deliver_due",
            "schedule": timedelta(seconds=30),
            "options": {"expires": 30},
        },
        "alerts-evaluate-rules": {
            "task": "alerts.evaluate_rules",
            "schedule": timedelta(seconds=settings.ALERTS_RULES_INTERVAL_S),
            "options": {"expires": 30},
        },
        "alerts-prune": {
            "task": "alerts.prune",
            "schedule": timedelta(hours=6),
        },
        "metrics-prune-samples": {
            "task": "metrics.prune_samples",
            "schedule": timedelta(hours=1),
        },
    }
