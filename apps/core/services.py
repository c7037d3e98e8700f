from __future__ import annotations

import os

from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from .models import TaskCounter, WorkerHeartbeat


def worker_heartbeat_record(*, hostname: str) -> WorkerHeartbeat:
    heartbeat, _ = WorkerHeartbeat.objects.update_or_create(
        hostname=hostname, defaults={"pid": os.getpid(), "last_seen": timezone.now()}
    )
    return heartbeat


def task_counter_increment(*, task_name: str, outcome: str) -> None:
    updated = TaskCounter.objects.filter(task_name=task_name, outcome=outcome).update(
        count=F("count") + 1
    )
    if updated:
        return
    try:
        with transaction.atomic():
            TaskCounter.objects.create(task_name=task_name, outcome=outcome, count=1)
    except IntegrityError:
        # Another worker created the row between our update and insert.
        TaskCounter.objects.filter(task_name=task_name, outcome=outcome).update(
            count=F("count") + 1
        )
