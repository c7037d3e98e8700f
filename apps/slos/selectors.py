"""Reads of SLO state for other apps: the burn rates the autoscaler's SLO boost acts on."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from .models import SloStatus, SloStatusSample

# Short burn-rate windows: what "burning fast right now" means for the SLO boost.
SHORT_WINDOWS = ("5m", "30m")


def _short_window_burn(burn_rates: Mapping[str, Any] | None) -> float | None:
    """The highest short-window burn rate of one SLO evaluation."""
    rates = [
        float(value)
        for window in SHORT_WINDOWS
        if (value := (burn_rates or {}).get(window)) is not None
    ]
    return max(rates) if rates else None


def deployment_burn_rate(*, deployment_ids: Iterable[int]) -> dict[int, float]:
    """deployment id → the highest short-window burn rate over its enabled SLOs, now.
    A deployment without an enabled SLO with a known short-window burn is absent."""
    out: dict[int, float] = {}
    rows = SloStatus.objects.filter(
        slo__deployment_id__in=list(deployment_ids), slo__enabled=True
    ).values_list("slo__deployment_id", "burn_rates")
    for deployment_id, burn_rates in rows:
        burn = _short_window_burn(burn_rates)
        if burn is not None:
            out[deployment_id] = max(out.get(deployment_id, burn), burn)
    return out


def deployment_burn_rate_history(
    *, deployment_id: int, start: datetime, end: datetime
) -> list[tuple[float, float]]:
    """(unix time, burn rate) of each SLO evaluation in [start, end], oldest first: the
    highest short-window burn over the deployment's enabled SLOs evaluated at that time."""
    by_ts: dict[float, float] = {}
    rows = SloStatusSample.objects.filter(
        slo__deployment_id=deployment_id, slo__enabled=True, ts__gte=start, ts__lte=end
    ).values_list("ts", "burn_rates")
    for ts, burn_rates in rows:
        burn = _short_window_burn(burn_rates)
        if burn is not None:
            key = ts.timestamp()
            by_ts[key] = max(by_ts.get(key, 0.0), burn)
    return sorted(by_ts.items())
