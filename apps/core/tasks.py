from __future__ import annotations

from celery import shared_task

from .services import worker_heartbeat_record


@shared_task(name="core.heartbeat", soft_time_limit=10, time_limit=20)
def heartbeat() -> None:
    """Proves that a worker is consuming the control queue; /readyz reads its age."""
    from celery import current_task

    hostname = current_task.request.hostname or "unknown"
    worker_heartbeat_record(hostname=hostname)
