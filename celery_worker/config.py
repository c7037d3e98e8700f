"""Queue routing and the periodic schedule, loaded by controlplane.celery.

Four queues keep slow work from delaying the control loop: ``control`` (collection,
evaluation, scale actions, heartbeat), ``notify`` (chat deliveries), ``ingest`` (logs and
inbound alerts) and ``loadtest`` (go-live load tests, minutes each). django-celery-beat's
DatabaseScheduler copies ``beat_schedule`` into the
database on start, where operators can then change intervals in the admin. The intervals come
from the Django settings (controlplane/settings/), which read and check the environment once.
"""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from kombu import Queue

QUEUES = ("control", "notify", "ingest", "loadtest")

task_queues = [Queue(name) for name in QUEUES]
task_default_queue = "control"
task_routes = {
    "core.*": {"queue": "control"},
    "metrics.*": {"queue": "control"},
    "slos.*": {"queue": "control"},
    "autoscaling.*": {"queue": "control"},
    "alerts.deliver*": {"queue": "notify"},
    "alerts.*": {"queue": "control"},
    "toggles.*": {"queue": "control"},
    "logs.*": {"queue": "ingest"},
    # A load test runs for minutes: on its own queue, never in front of the control loop.
    "golive.run_loadtest": {"queue": "loadtest"},
    "golive.*": {"queue": "control"},
}


def _every(task: str, seconds: float, *, expires_s: int | None = None) -> dict[str, object]:
    """A periodic entry; ``expires_s`` drops a run still queued that long (the next one is due)."""
    entry: dict[str, object] = {"task": task, "schedule": timedelta(seconds=seconds)}
    if expires_s is not None:
        entry["options"] = {"expires": expires_s}
    return entry


def beat_schedule() -> dict[str, dict[str, object]]:
    """The periodic tasks, with the intervals the settings chose."""
    return {
        "heartbeat": _every("core.heartbeat", settings.WORKER_HEARTBEAT_INTERVAL_S, expires_s=30),
        "metrics-collect": _every(
            "metrics.collect_all", settings.METRICS_COLLECT_INTERVAL_S, expires_s=10
        ),
        "slos-evaluate": _every("slos.evaluate", settings.SLO_EVALUATION_INTERVAL_S, expires_s=30),
        "autoscaling-evaluate": _every(
            "autoscaling.evaluate_all", settings.AUTOSCALING_INTERVAL_S, expires_s=10
        ),
        "autoscaling-warm-capacity": _every(
            "autoscaling.warm_capacity_sync",
            settings.AUTOSCALING_WARM_SYNC_INTERVAL_S,
            expires_s=30,
        ),
        "alerts-flush-groups": _every(
            "alerts.flush_groups", settings.ALERTS_FLUSH_INTERVAL_S, expires_s=10
        ),
        "alerts-deliver-due": _every("alerts.deliver_due", 30, expires_s=30),
        "alerts-evaluate-rules": _every(
            "alerts.evaluate_rules", settings.ALERTS_RULES_INTERVAL_S, expires_s=30
        ),
        "toggles-evaluate-degradation": _every(
            "toggles.evaluate_degradation_all", settings.DEGRADATION_INTERVAL_S, expires_s=10
        ),
        "golive-checks": _every(
            "golive.run_checks_all", settings.GOLIVE_CHECK_INTERVAL_S, expires_s=60
        ),
        "alerts-prune": _every("alerts.prune", 6 * 3600),
        "metrics-prune-samples": _every("metrics.prune_samples", 3600),
        "logs-maintain-storage": _every(
            "logs.maintain_storage", settings.LOGS_MAINTENANCE_INTERVAL_S, expires_s=600
        ),
    }
