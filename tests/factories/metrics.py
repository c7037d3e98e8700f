from __future__ import annotations

import factory
from django.utils import timezone

from apps.metrics.models import DeploymentMetrics, MetricSample, MetricsStatus

from .inventory import DeploymentFactory


class MetricSampleFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = MetricSample

    deployment = factory.SubFactory(DeploymentFactory)
    signal = "queue_length"
    ts = factory.LazyFunction(timezone.now)
    value = 1.0


class DeploymentMetricsFactory(factory.django.DjangoModelFactory):
    """The latest observations of a deployment, all fresh (``observations`` as the
    collector stores them: {signal: {value, ts, status, reason}})."""

    class Meta:
        model = DeploymentMetrics

    deployment = factory.SubFactory(DeploymentFactory)
    status = MetricsStatus.OK
    observations = factory.LazyFunction(dict)
    collected_at = factory.LazyFunction(timezone.now)
