from __future__ import annotations

import factory

from apps.autoscaling.models import AutoscalingPolicy, Mode

from .inventory import SimulatedDeploymentFactory


class AutoscalingPolicyFactory(factory.django.DjangoModelFactory):
    """An enforcing policy on a simulated deployment with one target: 5 queued requests per
    replica. Other fields keep the model's (HPA's) defaults."""

    class Meta:
        model = AutoscalingPolicy

    deployment = factory.SubFactory(SimulatedDeploymentFactory)
    mode = Mode.ENFORCE
    targets = factory.LazyFunction(lambda: [{"signal": "queue_length", "value": 5}])


class SimulatedChatPolicyFactory(AutoscalingPolicyFactory):
    """The policy of the fleet simulator's "chat" deployment (1 to 6 replicas), aiming at 3
    queued requests per replica: what the tests against a live simulator drive."""

    deployment = factory.SubFactory(
        SimulatedDeploymentFactory, name="chat", min_replicas=1, max_replicas=6
    )
    targets = factory.LazyFunction(lambda: [{"signal": "queue_length", "value": 3}])
