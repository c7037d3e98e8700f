from __future__ import annotations

from datetime import datetime
from typing import Any

from django.db.models import QuerySet

from apps.inventory.models import Deployment

from .models import DeploymentMetrics, MetricSample


def metric_series(
    *, deployment: Deployment, signal: str, since: datetime, until: datetime | None = None
) -> QuerySet[MetricSample]:
    queryset = MetricSample.objects.filter(deployment=deployment, signal=signal, ts__gte=since)
    if until is not None:
        queryset = queryset.filter(ts__lt=until)
    return queryset.order_by("ts")


def fleet_summary(*, deployments: QuerySet[Deployment]) -> dict[str, Any]:
    """Totals over the latest observations of the given deployments."""
    states = DeploymentMetrics.objects.filter(deployment__in=deployments)
    by_status: dict[str, int] = {"ok": 0, "partial": 0, "unavailable": 0, "no_data": 0}
    totals = {
        "queue_length": 0.0,
        "running_requests": 0.0,
        "request_rate": 0.0,
        "generation_token_rate": 0.0,
    }
    worst_ttft: tuple[float, int] | None = None
    seen = 0
    for state in states:
        seen += 1
        by_status[state.status] = by_status.get(state.status, 0) + 1
        obs = state.observations or {}
        for key in totals:
            item = obs.get(key) or {}
            if item.get("status") == "ok" and item.get("value") is not None:
                totals[key] += float(item["value"])
        ttft = obs.get("ttft_p95") or {}
        if ttft.get("status") == "ok" and ttft.get("value") is not None:
            value = float(ttft["value"])
            if worst_ttft is None or value > worst_ttft[0]:
                worst_ttft = (value, state.deployment_id)
    total = deployments.count()
    by_status["no_data"] = total - seen
    return {
        "deployments": total,
        "by_status": by_status,
        "totals": totals,
        "worst_ttft_p95": None
        if worst_ttft is None
        else {"deployment": worst_ttft[1], "seconds": worst_ttft[0]},
    }
