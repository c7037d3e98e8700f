"""From stored alerts to the transports' typed :class:`Notification`."""

from __future__ import annotations

from collections.abc import Sequence

from django.conf import settings

from apps.integrations.chat.messages import AlertItem, Language, Notification, severity_rank

from .models import Alert, AlertGroup, AlertStatus


def _console(path: str) -> str:
    base = (settings.PUBLIC_URL or "").rstrip("/")
    return f"{base}{path}" if base else ""


def alert_item(alert: Alert) -> AlertItem:
    url = (
        _console(f"/admin/inventory/deployment/{alert.deployment_id}/change/")
        if alert.deployment_id
        else alert.generator_url
    )
    return AlertItem(
        labels=alert.labels,
        status=alert.status,  # type: ignore[arg-type]
        starts_at=alert.starts_at,
        ends_at=alert.ends_at,
        summary=str(alert.annotations.get("summary", "")),
        description=str(alert.annotations.get("description", "")),
        fingerprint=alert.fingerprint,
        url=url,
    )


def notification_for_group(
    *,
    group: AlertGroup,
    firing: Sequence[Alert],
    resolved: Sequence[Alert],
    language: str,
) -> Notification:
    alerts = [*firing, *resolved]
    severities = sorted(
        {a.severity for a in firing} or {a.severity for a in resolved}, key=severity_rank
    )
    labels = dict(group.labels)
    name = labels.get("alertname") or (alerts[0].name if alerts else "alerts")
    scope = ", ".join(f"{k}={v}" for k, v in labels.items() if k != "alertname")
    return Notification(
        title=f"{name}" + (f" ({scope})" if scope else ""),
        status=AlertStatus.FIRING if firing else AlertStatus.RESOLVED,  # type: ignore[arg-type]
        severity=severities[0] if severities else "",
        group_labels=labels,
        alerts=tuple(alert_item(a) for a in alerts),
        firing_count=len(firing),
        resolved_count=len(resolved),
        console_url=_console("/admin/alerts/alert/"),
        language=language if language in ("en", "zh") else "en",  # type: ignore[arg-type]
    )


__all__ = ["Language", "alert_item", "notification_for_group"]
