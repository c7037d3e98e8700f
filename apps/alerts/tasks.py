from __future__ import annotations

from celery import shared_task
from django.core.cache import cache

from apps.core.locks import cache_lock

from .channels import channel_deliver_pending, deliveries_sending_recover
from .models import Delivery, DeliveryStatus
from .services import alert_groups_flush


@shared_task(name="alerts.flush_groups", soft_time_limit=50, time_limit=60)
def flush_groups() -> int:
    """Look at the alert groups that are due and queue their notifications."""
    with cache_lock("alerts:flush", ttl_s=60) as acquired:
        return alert_groups_flush().notified if acquired else 0


@shared_task(name="alerts.deliver_channel", soft_time_limit=110, time_limit=120)
def deliver_channel(channel_id: int, scheduled: bool = False) -> None:
    marker = f"alerts:channel-scheduled:{channel_id}"
    if scheduled:
        cache.delete(marker)  # this is the follow-up: another one may be scheduled now
    wait = channel_deliver_pending(channel_id=channel_id)
    # One scheduled follow-up per channel, however many tasks ask for one.
    if wait is not None and cache.add(marker, "1", timeout=int(wait) + 60):
        deliver_channel.apply_async((channel_id, True), countdown=max(0.05, wait))


@shared_task(name="alerts.deliver_due", soft_time_limit=20, time_limit=30)
def deliver_due() -> int:
    """Safety net: every channel with something due gets a sender (lost tasks, restarts)."""
    from django.utils import timezone

    deliveries_sending_recover()
    channels = set(
        Delivery.objects.filter(
            status=DeliveryStatus.PENDING, next_attempt_at__lte=timezone.now()
        ).values_list("channel_id", flat=True)
    )
    for channel_id in channels:
        deliver_channel.delay(channel_id)
    return len(channels)


@shared_task(name="alerts.evaluate_rules", soft_time_limit=50, time_limit=60)
def evaluate_rules() -> dict[str, int]:
    """SLO burn, control-loop conditions and threshold rules → alerts (and resolutions)."""
    from .sources import alert_sources_evaluate

    with cache_lock("alerts:evaluate-rules", ttl_s=60) as acquired:
        return alert_sources_evaluate() if acquired else {}


@shared_task(name="alerts.prune", soft_time_limit=300, time_limit=330)
def prune() -> int:
    from .services import alerts_prune

    return alerts_prune()
