from __future__ import annotations

from datetime import timedelta

import structlog
from django.conf import settings
from django.db import connection
from django.utils import timezone

from .models import WorkerHeartbeat

logger = structlog.get_logger("controlplane.health")


def _unavailable(check: str, exc: Exception) -> str:
    # /readyz is anonymous: the driver's text names hosts, ports and users. Log it, answer
    # with the kind of failure only.
    logger.warning("readiness-check-failed", check=check, error=f"{type(exc).__name__}: {exc}")
    return f"unavailable ({type(exc).__name__})"


def database_check() -> tuple[bool, str]:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as exc:  # noqa: BLE001 - any failure means "not ready"
        return False, _unavailable("database", exc)
    return True, connection.vendor


def broker_check() -> tuple[bool, str]:
    from controlplane.celery import app

    try:
        with app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=2)
    except Exception as exc:  # noqa: BLE001
        return False, _unavailable("broker", exc)
    return True, str(app.conf.broker_url or "").split("://", 1)[0]


def worker_heartbeat_age() -> tuple[float | None, str | None]:
    """Seconds since the freshest worker heartbeat, and that worker's name."""
    latest = WorkerHeartbeat.objects.order_by("-last_seen").first()
    if latest is None:
        return None, None
    return (timezone.now() - latest.last_seen).total_seconds(), latest.hostname


def worker_alive() -> tuple[bool, str]:
    age, host = worker_heartbeat_age()
    limit = settings.WORKER_HEARTBEAT_MAX_AGE_S
    if age is None:
        return False, "no worker heartbeat recorded yet"
    if age > limit:
        return False, f"last heartbeat from {host} is {age:.0f}s old (limit {limit}s)"
    return True, f"{host} seen {age:.0f}s ago"


def stale_before() -> timedelta:
    return timedelta(seconds=settings.WORKER_HEARTBEAT_MAX_AGE_S)
