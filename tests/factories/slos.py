from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

import factory
from django.utils import timezone

from apps.slos.burn import scaled_windows
from apps.slos.models import (
    LatencyMetric,
    SliKind,
    Slo,
    SloEvent,
    SloState,
    SloStatus,
    SloStatusSample,
    SloWindow,
)

from .inventory import DeploymentFactory


class SloFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Slo

    deployment = factory.SubFactory(DeploymentFactory)
    team = factory.SelfAttribute("deployment.team")
    name = factory.Sequence(lambda n: f"slo-{n}")
    sli_kind = SliKind.LATENCY
    latency_metric = LatencyMetric.TTFT
    threshold_seconds = 0.5
    objective_percent = Decimal("99.0")
    window = SloWindow.D28
    min_requests = 10


def slo_history(
    slo: Slo,
    *,
    minutes: int = 120,
    budget_end: float = 0.4,
    now: datetime | None = None,
    state: str = SloState.OK,
    burn_rates: dict[str, float | None] | None = None,
    firing: list[str] | None = None,
) -> SloStatus:
    """``minutes`` of one-minute status samples whose budget falls linearly from 1 to
    ``budget_end``, state changes (ok, then ``state`` half-way when it differs) and the
    latest status with ``burn_rates`` and ``firing``."""
    now = now or timezone.now()
    start = now - timedelta(minutes=minutes)
    rates = burn_rates or {
        "5m": 1.5,
        "30m": 1.2,
        "1h": 1.1,
        "2h": 1.0,
        "6h": 0.9,
        "1d": 0.8,
        "3d": 0.7,
    }
    error_budget = 1 - slo.objective
    SloStatusSample.objects.bulk_create(
        SloStatusSample(
            slo=slo,
            ts=start + timedelta(minutes=i),
            state=SloState.OK,
            budget_remaining=(left := 1 - (1 - budget_end) * i / (minutes - 1)),
            sli=1 - (1 - left) * error_budget,
            burn_rates={k: v * (1 + i / minutes) for k, v in rates.items() if v is not None},
        )
        for i in range(minutes)
    )
    SloEvent.objects.create(
        slo=slo, at=start, from_state="", to_state=SloState.OK, reason="within budget"
    )
    if state != SloState.OK:
        SloEvent.objects.create(
            slo=slo,
            at=start + timedelta(minutes=minutes // 2),
            from_state=SloState.OK,
            to_state=state,
            reason=f"{state} because of the burn",
            burn_rates=rates,
        )
    return SloStatus.objects.create(
        slo=slo,
        state=state,
        reason="within budget" if state == SloState.OK else f"{state} because of the burn",
        sli=1 - (1 - budget_end) * error_budget,
        budget_remaining=budget_end,
        burn_rates=rates,
        windows=scaled_windows(slo.window),
        firing=firing or [],
        evaluated_at=now,
    )
