"""Celery entry points of the alerts app: each takes primitive ids and calls a service."""

from __future__ import annotations

from celery import shared_task

from apps.core.locks import cache_lock

from .delivery import channel_deliver, deliveries_due_dispatch
from .services import alert_groups_flush, alerts_prune
from .sources import alert_sources_evaluate


@shared_task(name="alerts.flush_groups", soft_time_limit=50, time_limit=60)
def flush_groups() -> int:
    """Look at the alert groups that are due and queue their notifications."""
    with cache_lock("alerts:flush", ttl_s=60) as acquired:
        return alert_groups_flush(enqueue=deliver_channel.delay).notified if acquired else 0


@shared_task(name="alerts.deliver_channel", soft_time_limit=110, time_limit=120)
def deliver_channel(channel_id: int, scheduled: bool = False) -> None:
    channel_deliver(channel_id=channel_id, scheduled=scheduled, follow_up=_deliver_later)


def _deliver_later(channel_id: int, countdown_s: float) -> None:
    deliver_channel.apply_async((channel_id, True), countdown=countdown_s)


@shared_task(name="alerts.deliver_due", soft_time_limit=20, time_limit=30)
def deliver_due() -> int:
    """Safety net: every channel with something due gets a sender (lost tasks, restarts)."""
    return deliveries_due_dispatch(enqueue=deliver_channel.delay)


@shared_task(name="alerts.evaluate_rules", soft_time_limit=50, time_limit=60)
def evaluate_rules() -> dict[str, int]:
    """SLO burn, control-loop conditions and threshold rules → alerts (and resolutions)."""
    with cache_lock("alerts:evaluate-rules", ttl_s=60) as acquired:
        return alert_sources_evaluate() if acquired else {}


@shared_task(name="alerts.prune", soft_time_limit=300, time_limit=330)
def prune() -> int:
    return alerts_prune()
