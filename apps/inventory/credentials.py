"""Whose identity a cluster's credentials are: the team's, or the control plane's own.

Team-owned (any operator of the team may set them):

* a kubeconfig document stored encrypted in ``Cluster.credentials`` (inline data only, no
  exec or auth-provider plugins, no file references; see
  :mod:`apps.integrations.kubernetes.kubeconfig`);
* a kubeconfig file inside the team's own directory of an allowed directory:
  ``<dir>/<team slug>/...`` for a ``dir`` of ``KUBECONFIG_ALLOWED_DIRS``. The path is
  resolved with ``realpath``, so ``..`` and symlinks that lead out of that directory are
  refused; the document in it is checked like a stored one. One directory per team is what
  keeps one team from naming another team's file;
* an AWS access key stored encrypted, used directly (``access-key``) or to assume a role
  (``assume-role``), so AWS checks the role's trust policy against the team's key.

The control plane's own identity (superusers only): the in-cluster service account, any
other kubeconfig path (loaded as it is, plugins included), the AWS default chain, the
process environment, a profile of the process's shared files, and a role assumed with any
of those. A superuser who creates or changes a cluster that uses it approves it
(``process_identity_approved``); the actuators refuse a cluster that would use it without
that approval, rather than fall back to it.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from django.conf import settings

from .models import AwsCredentialsSource, Cluster, ClusterKind

__all__ = [
    "PROCESS_AWS_SOURCES",
    "cluster_credentials_problem",
    "cluster_process_identity",
    "kubeconfig_path_resolve",
]

PROCESS_AWS_SOURCES = frozenset(
    {
        AwsCredentialsSource.DEFAULT_CHAIN,
        AwsCredentialsSource.PROFILE,
        AwsCredentialsSource.ENVIRONMENT,
    }
)


def _allowed_dirs() -> list[str]:
    return list(getattr(settings, "KUBECONFIG_ALLOWED_DIRS", []) or [])


def kubeconfig_path_resolve(
    *, path: str, team_slug: str, allowed_dirs: Sequence[str] | None = None
) -> Path | None:
    """The real path of ``path`` when it lies in ``<dir>/<team_slug>/`` of an allowed
    directory, else None. Nothing is opened; a file that does not exist yet resolves too."""
    dirs = _allowed_dirs() if allowed_dirs is None else list(allowed_dirs)
    if not path or not os.path.isabs(path) or "\x00" in path or not team_slug:
        return None
    real = Path(os.path.realpath(path))
    for directory in dirs:
        if not directory or not os.path.isabs(directory):
            continue
        team_dir = Path(os.path.realpath(os.path.join(directory, team_slug)))
        if real != team_dir and real.is_relative_to(team_dir):
            return real
    return None


def cluster_process_identity(cluster: Cluster, *, team_slug: str | None = None) -> str:
    """What of the control plane's own identity the cluster would act with; "" when its
    credentials are the team's."""
    if cluster.kind == ClusterKind.KUBERNETES:
        if cluster.in_cluster:
            return "the control plane's in-cluster service account"
        if cluster.kubeconfig_path:
            slug = team_slug if team_slug is not None else cluster.team.slug
            if kubeconfig_path_resolve(path=cluster.kubeconfig_path, team_slug=slug) is None:
                return "a kubeconfig file of the control plane's host outside the team's directory"
        return ""
    if cluster.kind == ClusterKind.AWS:
        source = cluster.aws_credentials_source or AwsCredentialsSource.DEFAULT_CHAIN
        secret = cluster.credentials if isinstance(cluster.credentials, dict) else {}
        if source in PROCESS_AWS_SOURCES:
            return f"the control plane's own AWS credentials ({source})"
        if source == AwsCredentialsSource.ASSUME_ROLE and not secret.get("aws_access_key_id"):
            return "a role assumed with the control plane's own AWS credentials"
    return ""


def cluster_credentials_problem(cluster: Cluster) -> str:
    """Why the actuators must not act for this cluster; "" when they may."""
    identity = cluster_process_identity(cluster)
    if identity and not cluster.process_identity_approved:
        return (
            f"cluster {cluster.name} would act with {identity}, which no superuser approved; "
            "give the team's own credentials (a kubeconfig, a kubeconfig file in the team's "
            "directory, or an AWS access key) or have a superuser save the cluster"
        )
    if cluster.kind == ClusterKind.KUBERNETES and not (
        cluster.in_cluster or cluster.kubeconfig_path or cluster.credentials.get("kubeconfig")
    ):
        return f"cluster {cluster.name} has no Kubernetes credentials"
    return ""
