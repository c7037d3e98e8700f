"""Reads of collected metrics: the latest observations, typed, and the chart samples."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from django.db.models import QuerySet

from apps.inventory.models import Deployment

from .collection import Observation
from .models import DeploymentMetrics, MetricSample

__all__ = ["Observation", "fleet_summary", "latest_observations", "metric_series"]


def metric_series(
    *, deployment: Deployment, signal: str, since: datetime, until: datetime | None = None
) -> QuerySet[MetricSample]:
    queryset = MetricSample.objects.filter(deployment=deployment, signal=signal, ts__gte=since)
    if until is not None:
        queryset = queryset.filter(ts__lt=until)
    return queryset.order_by("ts")


def _observations(stored: Mapping[str, Any] | None) -> dict[str, Observation]:
    # A null item (never written by the collector) reads as absent.
    return {
        signal: Observation.from_dict(item)
        for signal, item in (stored or {}).items()
        if isinstance(item, Mapping)
    }


def latest_observations(
    *, deployment_ids: Iterable[int] | None
) -> dict[int, dict[str, Observation]]:
    """deployment id → signal → its latest observation (``None``: every deployment).
    A deployment never collected is absent; a signal it never had is absent from its map."""
    rows = DeploymentMetrics.objects.all()
    if deployment_ids is not None:
        rows = rows.filter(deployment_id__in=list(deployment_ids))
    return {
        deployment_id: _observations(stored)
        for deployment_id, stored in rows.values_list("deployment_id", "observations")
    }


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
        obs = _observations(state.observations)
        for key in totals:
            value = obs[key].ok_value if key in obs else None
            if value is not None:
                totals[key] += value
        ttft = obs["ttft_p95"].ok_value if "ttft_p95" in obs else None
        if ttft is not None and (worst_ttft is None or ttft > worst_ttft[0]):
            worst_ttft = (ttft, state.deployment_id)
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
