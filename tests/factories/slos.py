from __future__ import annotations

from decimal import Decimal

import factory

from apps.slos.models import LatencyMetric, SliKind, Slo, SloWindow

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
