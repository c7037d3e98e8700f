"""The actuator for a deployment, from its scale target kind and its cluster's credentials.

Clients are built only from what the cluster's team owns (its stored kubeconfig or access
key, or a kubeconfig file in its directory of ``KUBECONFIG_ALLOWED_DIRS``), or from the
control plane's own identity where a superuser approved that (apps/inventory/clients.py,
which the balancing membership uses too). Anything else is refused here, with the reason,
as a permanent :class:`ActuatorError`; so is every failure to build a client (a malformed
kubeconfig, a kubeconfig whose server the outbound policy of apps/core/netguard.py refuses,
a secret that no longer decrypts): the control loop records it as a hold instead of failing
the evaluation.
"""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings

from apps.inventory.clients import (
    ClusterAccessError,
    aws_session_for,
    kubernetes_client_for,
    usable_cluster_of,
)
from apps.inventory.models import Cluster, Deployment, ScaleTargetKind

from .base import Actuator, ActuatorError, ScaleTarget, warm_pool_of

__all__ = ["ActuatorFactory", "actuator_for", "scale_target_of"]

ActuatorFactory = Callable[[Deployment], Actuator]


def scale_target_of(deployment: Deployment) -> ScaleTarget:
    """What the actuator of ``deployment`` scales."""
    kind = deployment.target_kind
    if kind == ScaleTargetKind.AWS_ASG:
        return ScaleTarget("aws-asg", "", deployment.scale_target_name)
    return ScaleTarget(kind, deployment.scale_target_namespace, deployment.scale_target_name)  # type: ignore[arg-type]


def _refused(message: str, reason: str = "misconfigured") -> ActuatorError:
    return ActuatorError(message, retryable=False, permanent_reason=reason)


def _kubernetes_actuator(cluster: Cluster, deployment: Deployment) -> Actuator:
    """The Kubernetes actuator; with the warm-pool-size label, the one that keeps that
    many pods asleep as standby replicas (apps/autoscaling/actuators/standby.py)."""
    from apps.balancing.membership import LABEL_PORT

    from .kubernetes import KubernetesActuator
    from .standby import StandbyKubernetesActuator

    wanted = warm_pool_of(deployment.labels or {})
    try:
        client = kubernetes_client_for(cluster)
    except ClusterAccessError as exc:
        raise _refused(exc.message, exc.reason) from None
    if wanted is None:
        return KubernetesActuator(client)
    port = str((deployment.labels or {}).get(LABEL_PORT) or "").strip()
    return StandbyKubernetesActuator(client, standby=wanted.size, port=port)


def _aws_actuator(cluster: Cluster) -> Actuator:
    from apps.integrations.aws.client import AutoScalingClient, AwsError, session_client

    from .aws_asg import AutoScalingGroupActuator, actuator_error_from_aws

    try:
        client = session_client(aws_session_for(cluster), "autoscaling")
    except AwsError as exc:
        raise actuator_error_from_aws(exc) from None
    return AutoScalingGroupActuator(AutoScalingClient(client))


def actuator_for(deployment: Deployment) -> Actuator:
    """The actuator of ``deployment``; a permanent ActuatorError when none can be built."""
    kind = deployment.target_kind
    if kind == ScaleTargetKind.SIMULATED:
        from .simulated import SimulatedActuator

        return SimulatedActuator(settings.FLEETSIM_URL or "http://127.0.0.1:9400")
    try:
        cluster = usable_cluster_of(deployment)
    except ClusterAccessError as exc:
        raise _refused(exc.message, exc.reason) from None
    if kind == ScaleTargetKind.AWS_ASG:
        return _aws_actuator(cluster)
    return _kubernetes_actuator(cluster, deployment)
