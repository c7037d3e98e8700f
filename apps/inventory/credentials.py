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

A stored secret that cannot be decrypted any more (``FIELD_ENCRYPTION_KEY`` changed) reads
as :class:`~apps.core.fields.UndecryptableSecret`: the cluster is listed with a
``credentials_problem``, its actuator refuses with that reason, and a change that would keep
using the secret must send it again (:func:`cluster_unreadable_secret_errors`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from django.conf import settings

from apps.core.fields import secret_problem

from .models import AWS_SECRET_KEYS, AwsCredentialsSource, Cluster, ClusterKind

__all__ = [
    "PROCESS_AWS_SOURCES",
    "cluster_credentials_problem",
    "cluster_process_identity",
    "cluster_unreadable_secret",
    "cluster_unreadable_secret_errors",
    "kubeconfig_path_resolve",
]

# Sources of an AWS cluster that use the team's stored access key.
_KEYED_AWS_SOURCES = frozenset({AwsCredentialsSource.ACCESS_KEY, AwsCredentialsSource.ASSUME_ROLE})

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
        if (
            source == AwsCredentialsSource.ASSUME_ROLE
            and not secret.get("aws_access_key_id")
            # An unreadable secret is still the team's key, not the process's identity.
            and not secret_problem(cluster.credentials)
        ):
            return "a role assumed with the control plane's own AWS credentials"
    return ""


def _secret_field(
    *, kind: str, in_cluster: bool, kubeconfig_path: str, aws_credentials_source: str
) -> str:
    """The API field of the team secret a cluster so configured uses; "" when it uses none."""
    if kind == ClusterKind.KUBERNETES and not (in_cluster or kubeconfig_path):
        return "kubeconfig"
    if kind == ClusterKind.AWS and aws_credentials_source in _KEYED_AWS_SOURCES:
        return "aws_access_key_id"
    return ""


def cluster_unreadable_secret(cluster: Cluster) -> str:
    """Why the team secret the cluster uses cannot be read (it no longer decrypts); "" when
    it can, or when the cluster uses none."""
    problem = secret_problem(cluster.credentials)
    field = _secret_field(
        kind=cluster.kind,
        in_cluster=cluster.in_cluster,
        kubeconfig_path=cluster.kubeconfig_path,
        aws_credentials_source=cluster.aws_credentials_source or "",
    )
    if not problem or not field:
        return ""
    what = "kubeconfig" if field == "kubeconfig" else "AWS access key"
    return f"cluster {cluster.name}: {problem.replace('stored secret', f'stored {what}', 1)}"


def cluster_unreadable_secret_errors(
    *, instance: Cluster | None, attrs: Mapping[str, Any], secrets: Mapping[str, str]
) -> dict[str, str]:
    """For a change of a cluster whose stored secret no longer decrypts: an error keyed by
    the secret's API field when the cluster would go on using that secret and the request
    does not send it again (it cannot be kept: nothing of it can be read or checked).
    Empty when the request sends the secret, or moves to a source that uses none."""
    if instance is None or not secret_problem(instance.credentials):
        return {}

    def current(name: str) -> Any:
        return attrs[name] if name in attrs else getattr(instance, name)

    field = _secret_field(
        kind=current("kind"),
        in_cluster=bool(current("in_cluster")),
        kubeconfig_path=current("kubeconfig_path") or "",
        aws_credentials_source=current("aws_credentials_source") or "",
    )
    sent = "kubeconfig" in secrets or any(name in secrets for name in AWS_SECRET_KEYS)
    if not field or sent:
        return {}
    problem = secret_problem(instance.credentials)
    if field == "kubeconfig":
        again = "send kubeconfig with this change"
    else:
        again = "send aws_access_key_id and aws_secret_access_key with this change"
    return {field: f"{problem[:1].upper()}{problem[1:]}: {again}."}


def cluster_credentials_problem(cluster: Cluster) -> str:
    """Why the actuators must not act for this cluster; "" when they may."""
    unreadable = cluster_unreadable_secret(cluster)
    if unreadable:
        return unreadable
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
