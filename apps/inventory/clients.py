"""Clients of a deployment's cluster, built only from the credentials it may use.

Clients are built only from what the cluster's team owns (its stored kubeconfig or access
key, or a kubeconfig file in its directory of ``KUBECONFIG_ALLOWED_DIRS``), or from the
control plane's own identity where a superuser approved that (see :mod:`.credentials`).
Anything else is refused with the reason, as a :class:`ClusterAccessError`; so is every
failure to build a Kubernetes client (a malformed kubeconfig, a kubeconfig whose server the
outbound policy of apps/core/netguard.py refuses, a secret that no longer decrypts). AWS
sessions that cannot be built raise the wrapper's own :class:`AwsError`.

A team's kubeconfig (stored, or a file in the team's directory) is a URL the team chose, so
its client is guarded (apps/integrations/kubernetes/client.py). The in-cluster service
account and a host kubeconfig a superuser approved are the operator's own: not guarded.

The actuators (apps/autoscaling/actuators/factory.py) and the balancing membership
(apps/balancing/membership.py) both reach clusters through here, so they use the same
credentials and refuse the same things.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from .credentials import (
    cluster_credentials_problem,
    cluster_unreadable_secret,
    kubeconfig_path_resolve,
)
from .models import Cluster, ClusterKind, Deployment, ScaleTargetKind

if TYPE_CHECKING:
    import boto3

    from apps.integrations.kubernetes import KubernetesClient

__all__ = [
    "ClusterAccessError",
    "aws_session_for",
    "kubernetes_client_for",
    "usable_cluster_of",
]


class ClusterAccessError(Exception):
    """The cluster cannot be reached with credentials it may use; retrying cannot help
    until its configuration changes. ``reason`` is ``misconfigured`` or
    ``credentials-refused`` (or the Kubernetes wrapper's reason)."""

    def __init__(self, message: str, reason: str = "misconfigured") -> None:
        super().__init__(message)
        self.message = message
        self.reason = reason


def usable_cluster_of(deployment: Deployment) -> Cluster:
    """The cluster of a Kubernetes or AWS ``deployment``, once its secret decrypts and the
    credentials it would use are allowed; a ClusterAccessError otherwise."""
    cluster = deployment.cluster
    if cluster is None:
        raise ClusterAccessError(f"deployment {deployment.name} has no cluster")
    # A secret that no longer decrypts (FIELD_ENCRYPTION_KEY changed) is configuration to
    # fix, like a malformed kubeconfig.
    unreadable = cluster_unreadable_secret(cluster)
    if unreadable:
        raise ClusterAccessError(unreadable)
    problem = cluster_credentials_problem(cluster)
    if problem:
        raise ClusterAccessError(problem, "credentials-refused")
    kind = deployment.target_kind
    if kind in (ScaleTargetKind.K8S_DEPLOYMENT, ScaleTargetKind.K8S_STATEFULSET):
        if cluster.kind != ClusterKind.KUBERNETES:
            raise ClusterAccessError("Kubernetes targets need a Kubernetes cluster")
    elif kind == ScaleTargetKind.AWS_ASG:
        if cluster.kind != ClusterKind.AWS:
            raise ClusterAccessError("Auto Scaling group targets need a cluster of kind aws")
    else:
        raise ClusterAccessError(f"unknown scale target kind {kind!r}")
    return cluster


def _read_team_kubeconfig(cluster: Cluster) -> str:
    """The document at the cluster's path in its team's directory (re-checked now: the
    setting or the files may have changed since it was saved)."""
    real = kubeconfig_path_resolve(path=cluster.kubeconfig_path, team_slug=cluster.team.slug)
    if real is None:
        raise ClusterAccessError(
            f"kubeconfig path {cluster.kubeconfig_path} is not inside the team's directory "
            "of KUBECONFIG_ALLOWED_DIRS",
            "credentials-refused",
        )
    try:
        # O_NOFOLLOW: the resolved path must not have become a symlink since.
        fd = os.open(real, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        with os.fdopen(fd, encoding="utf-8") as handle:
            return handle.read(512 * 1024)
    except (OSError, UnicodeDecodeError) as exc:
        raise ClusterAccessError(
            f"cannot read kubeconfig {cluster.kubeconfig_path}: {type(exc).__name__}: {exc}"
        ) from None


def kubernetes_client_for(cluster: Cluster) -> KubernetesClient:
    """A client of ``cluster`` (kind kubernetes) from the credentials it may use (see the
    module docstring); a ClusterAccessError when none can be built."""
    from apps.integrations.kubernetes import KubernetesClient, KubernetesError, build_api_client

    try:
        if cluster.in_cluster:
            api = build_api_client(in_cluster=True)
        elif cluster.kubeconfig_path and cluster.process_identity_approved:
            # A superuser's choice of a host file, loaded as it is.
            api = build_api_client(
                kubeconfig_path=cluster.kubeconfig_path, kube_context=cluster.kube_context
            )
        elif cluster.kubeconfig_path:
            api = build_api_client(
                kubeconfig=_read_team_kubeconfig(cluster), kube_context=cluster.kube_context
            )
        else:
            api = build_api_client(
                kubeconfig=str(cluster.credentials.get("kubeconfig") or ""),
                kube_context=cluster.kube_context,
            )
    except KubernetesError as exc:
        raise ClusterAccessError(
            f"cluster {cluster.name}: {exc.message}", exc.reason or "misconfigured"
        ) from None
    return KubernetesClient(api)


def aws_session_for(cluster: Cluster) -> boto3.Session:
    """A boto3 session of ``cluster`` (kind aws) with the credentials it may use; a
    permanent ActuatorError when none can be built. Make its clients with
    :func:`apps.integrations.aws.session_client` (timeouts, one attempt)."""
    from apps.integrations.aws.client import AccessKey, build_session

    secret = cluster.credentials
    access_key = (
        AccessKey(
            access_key_id=str(secret["aws_access_key_id"]),
            secret_access_key=str(secret.get("aws_secret_access_key") or ""),
            session_token=str(secret.get("aws_session_token") or ""),
        )
        if secret.get("aws_access_key_id")
        else None
    )
    return build_session(
        region=cluster.aws_region,
        credentials_source=cluster.aws_credentials_source or "default-chain",  # type: ignore[arg-type]
        profile=cluster.aws_profile,
        role_arn=cluster.aws_role_arn,
        access_key=access_key,
    )
