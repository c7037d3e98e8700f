"""Degradation transitions to the team's chat channels, through the alerts app's deliveries:
one :class:`~apps.alerts.models.Delivery` per enabled channel with a deterministic
idempotency key (one message per transition and channel, however often this runs), sent by
the alerts app's per-channel sender (rate limits, retries, digests, records)."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

from django.conf import settings
from django.db import IntegrityError, transaction

from apps.alerts.models import Channel, Delivery
from apps.integrations.chat.messages import AlertItem, AlertStatus, Notification

from .models import DegradationPolicy, DegradationTransition


def _console_url(policy: DegradationPolicy) -> str:
    base = (settings.PUBLIC_URL or "").rstrip("/")
    return f"{base}/admin/toggles/degradationpolicy/{policy.pk}/change/" if base else ""


def transition_notification(
    *, policy: DegradationPolicy, transition: DegradationTransition, language: str
) -> Notification:
    """A transition as a one-item notification: firing while it degrades (or could not move),
    resolved when it steps down."""
    failed = bool(transition.evidence.get("error"))
    recovering = transition.to_level < transition.from_level and not failed
    if failed:
        what = f"could not move to level {transition.evidence.get('wanted_level')}"
    else:
        what = f"level {transition.from_level} -> {transition.to_level}"
    prefix = "[dry run] " if transition.dry_run else ""
    deployment = policy.deployment.name
    labels = {
        "alertname": "DegradationLevelChanged" if not failed else "DegradationFailed",
        "deployment": deployment,
        "policy": policy.name,
        "level": str(transition.to_level),
        "severity": "critical" if failed else "warning",
        "mode": "dry-run" if transition.dry_run else "live",
    }
    status: AlertStatus = "resolved" if recovering else "firing"
    url = _console_url(policy)
    item = AlertItem(
        labels=labels,
        status=status,
        starts_at=transition.at,
        ends_at=transition.at if recovering else None,
        summary=f"{prefix}{deployment}: {what}",
        description=transition.reason
        + ("" if transition.actor.startswith("policy:") else f" (by {transition.actor})")
        + (" (dry run: recorded only, nothing changed)" if transition.dry_run else ""),
        fingerprint=f"degradation-{transition.pk}",
        url=url,
    )
    return Notification(
        title=f"{prefix}Degradation of {deployment} ({policy.name}): {what}",
        status=status,
        severity=labels["severity"],
        group_labels={"alertname": labels["alertname"], "deployment": deployment},
        alerts=(item,),
        firing_count=0 if recovering else 1,
        resolved_count=1 if recovering else 0,
        console_url=url,
        language=language if language in ("en", "zh") else "en",  # type: ignore[arg-type]
    )


def transition_notify(
    *, transition: DegradationTransition, enqueue: Callable[[int], object] | None
) -> list[int]:
    """Queue the transition for every enabled channel of the policy's team; ``enqueue(channel
    id)`` starts the channel's sender once the transaction commits. Returns the new
    deliveries' ids (none for a transition already queued)."""
    policy = transition.policy
    created: list[int] = []
    channels = list(Channel.objects.filter(team_id=policy.team_id, enabled=True).order_by("pk"))
    for channel in channels:
        key = f"degradation-t{transition.pk}-c{channel.pk}"
        if Delivery.objects.filter(idempotency_key=key).exists():
            continue
        notification = transition_notification(
            policy=policy, transition=transition, language=channel.language
        )
        try:
            with transaction.atomic():
                delivery = Delivery.objects.create(
                    channel=channel,
                    idempotency_key=key,
                    notification=notification.to_dict(),
                    fingerprints=[a.fingerprint for a in notification.alerts],
                    next_attempt_at=transition.at,
                )
        except IntegrityError:
            continue  # queued meanwhile by another run
        created.append(delivery.pk)
        if enqueue is not None:
            transaction.on_commit(partial(enqueue, channel.pk))
    return created
