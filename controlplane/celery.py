"""The Celery application. Queue routing and the periodic schedule live in celery_worker/."""

from __future__ import annotations

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "controlplane.settings")

app = Celery("controlplane")
app.config_from_object("django.conf:settings", namespace="CELERY")


@app.on_configure.connect
def _apply_routing(sender: Celery, **_: object) -> None:
    # Routing and schedule are code, not per-environment settings: layer them on top of the
    # Django settings source instead of replacing it.
    from celery_worker import config

    sender.conf.update(
        task_queues=config.task_queues,
        task_default_queue=config.task_default_queue,
        task_routes=config.task_routes,
        beat_schedule=config.beat_schedule(),
    )


app.autodiscover_tasks()
