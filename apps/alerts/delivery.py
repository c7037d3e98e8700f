"""Sending deliveries: one channel at a time, within the platform's rate limits.

A channel's pending deliveries are sent by one worker at a time (a per-channel lock in the
shared cache). Before each send the limiter (``apps.integrations.chat.ratelimit``) says
whether the platform allows one more message now; when more deliveries are due than it
allows, they are packed into digests that still account for every alert (the originals are
marked ``merged`` and point at a digest). Retryable errors wait with exponential backoff or
the platform's Retry-After; a permanent error (bad token, deleted hook, signature refused)
fails the delivery, disables the channel with the reason and fails what was queued for it.
"""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.utils import timezone

from apps.core.fields import secret_problem
from apps.core.locks import cache_lock
from apps.core.netguard import DestinationRefused, destination_check
from apps.integrations.chat import (
    Notification,
    Transport,
    TransportError,
    pack,
    prune,
    send_budget,
    transport_class,
    transport_for,
    validate_config,
    validate_template,
    wait_before_next_send,
)
from apps.integrations.chat.messages import sample_notification

from .models import Channel, Delivery, DeliveryStatus

logger = structlog.get_logger("controlplane.alerts")

TransportFactory = Callable[[Channel], Transport]
_BACKOFF_CAP_S = 300.0


def channel_config_validate(*, kind: str | None, config: Any) -> dict[str, Any]:
    """The channel settings checked for ``kind``, and the webhook URL's host resolved and
    checked against internal address ranges (the same check runs again at every send)."""
    if not kind:
        raise ValueError("choose the channel kind first")
    if not isinstance(config, dict):
        raise ValueError('give the transport settings as an object, e.g. {"webhook_url": "..."}')
    cleaned = validate_config(kind, config)
    try:
        destination_check(cleaned["webhook_url"], field="webhook_url")
    except DestinationRefused as exc:
        raise ValueError(f"{transport_class(kind).display_name}: {exc}") from None
    return cleaned


def template_validate(text: str) -> None:
    validate_template(text)


def channel_transport(channel: Channel) -> Transport:
    """The channel's transport; ValueError saying what is wrong with its settings (including
    settings that can no longer be decrypted)."""
    problem = secret_problem(channel.config)
    if problem:
        raise ValueError(f"{problem}: send config again")
    return transport_for(
        channel.kind,
        channel.config,
        body_template=channel.body_template or None,
        title_template=channel.title_template or None,
    )


def _fingerprints(notification: Notification) -> list[str]:
    out = [a.fingerprint for a in notification.alerts if a.fingerprint]
    for group in notification.omitted_groups:
        out.extend(group.fingerprints)
    return out


def _backoff(attempts: int) -> float:
    return min(_BACKOFF_CAP_S, 2.0 ** max(0, attempts - 1)) * random.uniform(1.0, 1.5)


def channel_lock(channel_id: int, ttl_s: int = 300) -> AbstractContextManager[bool]:
    return cache_lock(f"alerts:channel-lock:{channel_id}", ttl_s=ttl_s)


def _sent_key(channel_id: int) -> str:
    return f"alerts:channel-sent:{channel_id}"


def _record(delivery: Delivery, **fields: Any) -> None:
    for name, value in fields.items():
        setattr(delivery, name, value)
    delivery.save(update_fields=list(fields))


def _attempt(
    delivery: Delivery, transport: Transport, notification: Notification
) -> TransportError | None:
    now = timezone.now()
    try:
        result = transport.notify(notification)
    except TransportError as exc:
        _record(
            delivery,
            attempts=delivery.attempts + 1,
            status_code=exc.status_code,
            latency_ms=None if exc.latency_s is None else round(exc.latency_s * 1000, 2),
            error=exc.message[:4000],
            response=exc.response_summary[:2000],
        )
        return exc
    _record(
        delivery,
        attempts=delivery.attempts + 1,
        status=DeliveryStatus.SUCCEEDED,
        status_code=result.status_code,
        latency_ms=round(result.latency_s * 1000, 2),
        error="",
        response=result.response_summary[:2000],
        sent_at=now,
    )
    return None


def channel_disable(*, channel: Channel, reason: str) -> None:
    with transaction.atomic():
        Channel.objects.filter(pk=channel.pk).update(enabled=False, disabled_reason=reason)
        Delivery.objects.filter(channel=channel, status=DeliveryStatus.PENDING).update(
            status=DeliveryStatus.FAILED, error=f"channel disabled: {reason}"[:4000]
        )
    logger.error("alert-channel-disabled", channel=channel.pk, reason=reason)


def _merge_storm(
    channel: Channel, due: list[Delivery], budget: int, transport: Transport
) -> list[Delivery]:
    """Pack ``due`` into at most ``budget`` digests; every alert stays represented."""
    notifications = [Notification.from_dict(d.notification) for d in due]
    packed = pack(notifications, budget, fits=transport.fits)
    stamp = timezone.now()
    with transaction.atomic():
        digests = [
            Delivery.objects.create(
                channel=channel,
                idempotency_key=f"digest-c{channel.pk}-{due[0].pk}-{due[-1].pk}-{i}",
                notification=n.to_dict(),
                fingerprints=_fingerprints(n),
                next_attempt_at=stamp,
            )
            for i, n in enumerate(packed)
        ]
        Delivery.objects.filter(pk__in=[d.pk for d in due]).update(
            status=DeliveryStatus.MERGED, merged_into=digests[0]
        )
    logger.info(
        "alert-storm-summarised", channel=channel.pk, pending=len(due), sent_as=len(digests)
    )
    return digests


# A delivery is "sending" for at most deliver_channel's hard time limit (120 s); one that
# has been sending for longer lost its worker.
_SENDING_LEASE_S = 300.0


def _claim(delivery: Delivery, now: datetime) -> bool:
    """Pending → sending with a conditional update, so that a delivery is sent by one
    worker even when the channel's lock was lost with the cache (a Redis restart)."""
    claimed = Delivery.objects.filter(pk=delivery.pk, status=DeliveryStatus.PENDING).update(
        status=DeliveryStatus.SENDING, next_attempt_at=now
    )
    if claimed == 1:
        delivery.status, delivery.next_attempt_at = DeliveryStatus.SENDING, now
    return claimed == 1


def deliveries_sending_recover(*, lease_s: float = _SENDING_LEASE_S) -> int:
    """Deliveries left "sending" by a worker that died mid-send go back to pending (sent
    again: at least once). Test messages are sent in the web request and recorded there."""
    stale = timezone.now() - timedelta(seconds=lease_s)
    recovered = (
        Delivery.objects.filter(status=DeliveryStatus.SENDING, next_attempt_at__lt=stale)
        .exclude(idempotency_key__startswith="test-")
        .update(status=DeliveryStatus.PENDING)
    )
    if recovered:
        logger.warning("alert-deliveries-recovered", count=recovered)
    return recovered


def channel_deliver_pending(
    *,
    channel_id: int,
    transport_factory: TransportFactory = channel_transport,
    clock: Callable[[], float] = time.time,
    max_sends: int = 200,
) -> float | None:
    """Send what is due for one channel. Returns seconds until it should be looked at again,
    or None when nothing is left (or another worker has the channel)."""
    with channel_lock(channel_id) as acquired:
        if not acquired:
            return None
        channel = Channel.objects.filter(pk=channel_id).first()
        if channel is None:
            return None
        if not channel.enabled:
            Delivery.objects.filter(channel=channel, status=DeliveryStatus.PENDING).update(
                status=DeliveryStatus.FAILED,
                error=f"channel disabled: {channel.disabled_reason or 'by hand'}"[:4000],
            )
            return None
        try:
            transport = transport_factory(channel)
        except ValueError as exc:
            channel_disable(channel=channel, reason=f"invalid configuration: {exc}")
            return None
        limits = transport.rate_limits()
        sent: list[float] = list(cache.get(_sent_key(channel_id)) or [])
        for _ in range(max_sends):
            now = clock()
            now_dt = datetime.fromtimestamp(now, UTC)
            pending = list(
                Delivery.objects.filter(channel=channel, status=DeliveryStatus.PENDING).order_by(
                    "created_at", "id"
                )
            )
            due = [d for d in pending if d.next_attempt_at <= now_dt]
            if not due:
                if not pending:
                    return None
                return max(0.0, min(d.next_attempt_at for d in pending).timestamp() - now)
            wait = wait_before_next_send(sent, limits, now)
            if wait > 0:
                return wait
            budget = send_budget(sent, limits, now)
            if len(due) > budget:
                due = _merge_storm(channel, due, max(1, budget), transport)
            delivery = due[0]
            if not _claim(delivery, now_dt):
                continue  # another sender has it: the channel lock went with the cache
            sent = prune([*sent, now], limits, now)
            cache.set(_sent_key(channel_id), sent, timeout=3600)
            error = _attempt(delivery, transport, Notification.from_dict(delivery.notification))
            if error is None:
                continue
            if error.permanent:
                _record(delivery, status=DeliveryStatus.FAILED)
                channel_disable(channel=channel, reason=error.message)
                return None
            if delivery.attempts >= settings.ALERTS_DELIVERY_ATTEMPTS:
                _record(delivery, status=DeliveryStatus.FAILED)
                logger.error(
                    "alert-delivery-gave-up", delivery=delivery.pk, attempts=delivery.attempts
                )
                continue
            delay = max(error.retry_after_s or 0.0, _backoff(delivery.attempts))
            _record(
                delivery,
                status=DeliveryStatus.PENDING,
                next_attempt_at=now_dt + timedelta(seconds=delay),
            )
        return 0.0


def channel_deliver(
    *, channel_id: int, scheduled: bool, follow_up: Callable[[int, float], object]
) -> None:
    """Send what is due for one channel; when more falls due later, ask ``follow_up(channel_id,
    countdown_s)`` to run this again then (the caller decides how: a delayed task)."""
    marker = f"alerts:channel-scheduled:{channel_id}"
    if scheduled:
        cache.delete(marker)  # this is the follow-up: another one may be scheduled now
    wait = channel_deliver_pending(channel_id=channel_id)
    # One scheduled follow-up per channel, however many senders ask for one.
    if wait is not None and cache.add(marker, "1", timeout=int(wait) + 60):
        follow_up(channel_id, max(0.05, wait))


def deliveries_due_dispatch(*, enqueue: Callable[[int], object]) -> int:
    """Safety net: every channel with something due gets a sender (lost tasks, restarts).
    ``enqueue(channel_id)`` starts one; returns how many channels were handed out."""
    from .selectors import channel_ids_with_due_deliveries

    deliveries_sending_recover()
    channel_ids = channel_ids_with_due_deliveries(now=timezone.now())
    for channel_id in channel_ids:
        enqueue(channel_id)
    return len(channel_ids)


def channel_test_send(*, channel: Channel, language: str) -> Delivery:
    """Send a sample notification now and record it like any delivery (not rate-queued:
    someone is looking at the screen). A permanent error does not disable the channel: the
    answer tells the operator what to fix."""
    notification = sample_notification(language if language in ("en", "zh") else "en")  # type: ignore[arg-type]
    delivery = Delivery.objects.create(
        channel=channel,
        idempotency_key=f"test-c{channel.pk}-{uuid.uuid4().hex[:12]}",
        notification=notification.to_dict(),
        fingerprints=_fingerprints(notification),
        next_attempt_at=timezone.now(),
        status=DeliveryStatus.SENDING,
    )
    try:
        transport = channel_transport(channel)
    except ValueError as exc:
        _record(delivery, status=DeliveryStatus.FAILED, error=f"invalid configuration: {exc}")
        return delivery
    error = _attempt(delivery, transport, notification)
    if error is not None:
        _record(delivery, status=DeliveryStatus.FAILED)
    return delivery
