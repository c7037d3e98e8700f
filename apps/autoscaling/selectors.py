"""Reads of the autoscaler's own tables."""

from __future__ import annotations

from apps.inventory.models import Deployment

from .models import Mode


def autoscaled_deployment_ids() -> list[int]:
    """Deployments the control loop evaluates: an active policy, not retired."""
    return list(
        Deployment.objects.filter(autoscaling_policy__isnull=False)
        .exclude(autoscaling_policy__mode=Mode.OFF)
        .exclude(status="retired")
        .values_list("pk", flat=True)
    )
