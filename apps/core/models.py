"""Operational records of the Celery workers: heartbeats, the last outcome of each task and
per-task counters, read by the health and metrics endpoints."""

from __future__ import annotations

from django.db import models


class WorkerHeartbeat(models.Model):
    """Last sign of life of each Celery worker, written by the heartbeat task."""

    hostname = models.CharField(max_length=255, unique=True, help_text="Celery worker node name.")
    pid = models.PositiveIntegerField(help_text="Process id of the worker that ran the task.")
    last_seen = models.DateTimeField(help_text="When the worker last ran the heartbeat task.")

    class Meta:
        ordering = ["hostname"]

    def __str__(self) -> str:
        return f"{self.hostname} @ {self.last_seen:%Y-%m-%d %H:%M:%S}"


class TaskOutcome(models.TextChoices):
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    RETRIED = "retried", "Retried"


class TaskCounter(models.Model):
    """Cumulative Celery task outcomes, shared by every worker process.

    Kept in the database rather than in process memory so that the web process's /metrics
    reports the whole fleet of workers, on SQLite and PostgreSQL alike.
    """

    task_name = models.CharField(max_length=200, help_text="Registered Celery task name.")
    outcome = models.CharField(max_length=16, choices=TaskOutcome.choices)
    count = models.PositiveBigIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["task_name", "outcome"], name="core_taskcounter_unique")
        ]
        ordering = ["task_name", "outcome"]

    def __str__(self) -> str:
        return f"{self.task_name} {self.outcome}: {self.count}"
