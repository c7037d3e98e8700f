"""The actuator for a deployment, from its scale target kind and its cluster's settings."""

from __future__ import annotations

from django.conf import settings

from apps.inventory.models import ClusterKind, Deployment, ScaleTargetKind

from .base import Actuator, ActuatorError


def actuator_for(deployment: Deployment) -> Actuator:
    kind = deployment.target_kind
    if kind == ScaleTargetKind.SIMULATED:
        from .simulated import SimulatedActuator

        return SimulatedActuator(settings.FLEETSIM_URL or "http://127.0.0.1:9400")
    cluster = deployment.cluster
    if cluster is None:
        raise ActuatorError(
            f"deployment {deployment.name} has no cluster",
            retryable=False,
            permanent_reason="misconfigured",
        )
    if kind in (ScaleTargetKind.K8S_DEPLOYMENT, ScaleTargetKind.K8S_STATEFULSET):
        if cluster.kind != ClusterKind.KUBERNETES:
            raise ActuatorError(
                "Kubernetes targets need a Kubernetes cluster",
                retryable=False,
                permanent_reason="misconfigured",
            )
        from apps.integrations.kubernetes.client import KubernetesClient, build_api_client

        from .kubernetes import KubernetesActuator

        api = build_api_client(
            kubeconfig_path=cluster.kubeconfig_path,
            kube_context=cluster.kube_context,
            in_cluster=cluster.in_cluster,
        )
        return KubernetesActuator(KubernetesClient(api))
    if kind == ScaleTargetKind.AWS_ASG:
        from apps.integrations.aws.client import AutoScalingClient, build_autoscaling_client

        from .aws_asg import AutoScalingGroupActuator

        client = build_autoscaling_client(
            region=cluster.aws_region,
            credentials_source=cluster.aws_credentials_source or "default-chain",  # type: ignore[arg-type]
            profile=cluster.aws_profile,
            role_arn=cluster.aws_role_arn,
        )
        return AutoScalingGroupActuator(AutoScalingClient(client))
    raise ActuatorError(
        f"unknown scale target kind {kind!r}", retryable=False, permanent_reason="misconfigured"
    )
