from __future__ import annotations

import factory
from django.utils import timezone

from apps.autoscaling.models import AutoscalingPolicy, DecisionRecord, Mode

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


class DecisionRecordFactory(factory.django.DjangoModelFactory):
    """A dry-run decision holding 1 replica, with the replica state the evaluation stores."""

    class Meta:
        model = DecisionRecord

    deployment = factory.SubFactory(SimulatedDeploymentFactory)
    at = factory.LazyFunction(timezone.now)
    current_replicas = 1
    desired_replicas = 1
    rule = "hold:within_tolerance"
    reason = "Within tolerance."
    proposals = factory.LazyFunction(list)
    inputs = factory.LazyAttribute(
        lambda o: {
            "replicas": {
                "spec": o.current_replicas,
                "ready": o.current_replicas,
                "starting": [],
                "observed_spec": o.current_replicas,
                "last_applied": None,
            }
        }
    )
    dry_run = True
