from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from django.utils.module_loading import import_string

from apps.audit.models import AuditAction
from apps.audit.services import audited

from .credentials import PROCESS_AWS_SOURCES, cluster_process_identity
from .models import (
    AWS_SECRET_KEYS,
    AwsCredentialsSource,
    Cluster,
    ClusterKind,
    Deployment,
    DeploymentReadiness,
)
from .selectors import deployment_readiness


def deployment_activation_refusal(*, deployment: Deployment | None) -> str | None:
    """Why the deployment may not become active, from the gate named by the setting
    ``INVENTORY_ACTIVATION_GUARD`` (the go-live checks by default; empty: no gate). A
    dotted path keeps inventory from importing the app that owns the gate."""
    guard = getattr(settings, "INVENTORY_ACTIVATION_GUARD", "")
    if not guard:
        return None
    refusal: str | None = import_string(guard)(deployment=deployment)
    return refusal


@transaction.atomic
def deployment_readiness_update(
    *, deployment: Deployment, actor: AbstractBaseUser | AnonymousUser, data: dict[str, Any]
) -> DeploymentReadiness:
    readiness = deployment_readiness(deployment=deployment)
    action = AuditAction.CREATE if readiness._state.adding else AuditAction.UPDATE
    with audited(actor=actor, action=action, instance=readiness):
        for key, value in data.items():
            setattr(readiness, key, value)
        readiness.updated_by = actor if actor.is_authenticated else None  # type: ignore[assignment]
        readiness.save()
    return readiness


# --------------------------------------------------------------------------- clusters

_GUARDED_CLUSTER_FIELDS = (
    "kind",
    "team",
    "in_cluster",
    "kubeconfig_path",
    "kube_context",
    "aws_region",
    "aws_account_id",
    "aws_credentials_source",
    "aws_profile",
    "aws_role_arn",
)
_ACCESS_KEY_ID = re.compile(r"^\w{16,128}\Z")
_NO_SPACE = re.compile(r"^\S+\Z")


def _aws_key_update(secrets: Mapping[str, str], errors: dict[str, str]) -> dict[str, str]:
    """The stored AWS key after a request that gave some of its parts: all three parts are
    replaced together; all empty removes the key."""
    key_id = secrets.get("aws_access_key_id", "")
    secret_key = secrets.get("aws_secret_access_key", "")
    token = secrets.get("aws_session_token", "")
    if not (key_id or secret_key or token):
        return {}
    if not key_id or not secret_key:
        errors["aws_access_key_id"] = (
            "Give aws_access_key_id and aws_secret_access_key together (aws_session_token is "
            "optional); they replace the stored key as a whole."
        )
        return {}
    if not _ACCESS_KEY_ID.match(key_id):
        errors["aws_access_key_id"] = "An access key id has 16 to 128 letters and digits."
    if not _NO_SPACE.match(secret_key):
        errors["aws_secret_access_key"] = "The secret access key contains whitespace."  # noqa: S105
    if token and not _NO_SPACE.match(token):
        errors["aws_session_token"] = "The session token contains whitespace."  # noqa: S105
    key = {"aws_access_key_id": key_id, "aws_secret_access_key": secret_key}
    if token:
        key["aws_session_token"] = token
    return key


def _process_identity_field(cluster: Cluster) -> str:
    if cluster.kind == ClusterKind.KUBERNETES:
        return "in_cluster" if cluster.in_cluster else "kubeconfig_path"
    if cluster.aws_credentials_source == AwsCredentialsSource.ASSUME_ROLE:
        return "aws_access_key_id"
    return "aws_credentials_source"


def _team_alternatives(cluster: Cluster, team_slug: str) -> str:
    if cluster.kind == ClusterKind.AWS:
        return (
            "Give the team's own access key (aws_credentials_source=access-key with "
            "aws_access_key_id and aws_secret_access_key), or assume a role with it "
            "(aws_credentials_source=assume-role)."
        )
    dirs = [d for d in settings.KUBECONFIG_ALLOWED_DIRS if d]
    where = (
        "a kubeconfig_path under "
        + " or ".join(f"{d.rstrip('/')}/{team_slug}/" for d in dirs)
        + " (after resolving .. and symlinks)"
        if dirs
        else "no kubeconfig paths: KUBECONFIG_ALLOWED_DIRS is empty on this control plane"
    )
    return f"Give the team's own kubeconfig in kubeconfig (stored encrypted); allowed: {where}."


def _current(instance: Cluster | None, attrs: Mapping[str, Any], name: str) -> Any:
    """A field's value after the write: from the request, else from the stored row."""
    if name in attrs:
        return attrs[name]
    return getattr(instance, name) if instance is not None else None


def cluster_credentials_merge(
    *, instance: Cluster | None, attrs: Mapping[str, Any], secrets: Mapping[str, str]
) -> dict[str, Any]:
    """The team secret a create or update of a cluster stores, from the stored one and the
    request's write-only ``secrets`` (kubeconfig, AWS key parts).

    A secret the resulting configuration does not use (another kind, another source) is
    dropped rather than kept around. Raises a ValidationError keyed by API field names for
    a malformed key or a secret of the wrong kind. Returns ``credentials`` and, when it
    changed, ``credentials_changed_at``.
    """
    errors: dict[str, str] = {}
    kind = _current(instance, attrs, "kind")
    before = dict(instance.credentials) if instance is not None else {}
    stored = dict(before)
    given_kubeconfig = "kubeconfig" in secrets
    given_key = any(name in secrets for name in AWS_SECRET_KEYS)
    if given_kubeconfig:
        stored.pop("kubeconfig", None)
        if secrets["kubeconfig"]:
            if kind != ClusterKind.KUBERNETES:
                errors["kubeconfig"] = "Only for clusters of kind kubernetes."
            stored["kubeconfig"] = secrets["kubeconfig"]
    if given_key:
        for name in AWS_SECRET_KEYS:
            stored.pop(name, None)
        key = _aws_key_update(secrets, errors)
        if key and kind != ClusterKind.AWS:
            errors["aws_access_key_id"] = "Only for clusters of kind aws."
        stored.update(key)
    source = _current(instance, attrs, "aws_credentials_source") or ""
    other_kube_source = _current(instance, attrs, "in_cluster") or _current(
        instance, attrs, "kubeconfig_path"
    )
    if kind != ClusterKind.KUBERNETES or (other_kube_source and not given_kubeconfig):
        stored.pop("kubeconfig", None)
    if kind != ClusterKind.AWS or (source in PROCESS_AWS_SOURCES and not given_key):
        for name in AWS_SECRET_KEYS:
            stored.pop(name, None)
    if (
        kind == ClusterKind.AWS
        and source == AwsCredentialsSource.ACCESS_KEY
        and not stored.get("aws_access_key_id")
    ):
        errors.setdefault(
            "aws_access_key_id",
            "aws_credentials_source=access-key needs aws_access_key_id and aws_secret_access_key.",
        )
    if errors:
        raise ValidationError(errors)
    result: dict[str, Any] = {"credentials": stored}
    if stored != before:
        result["credentials_changed_at"] = timezone.now()
    return result


def cluster_credentials_authorize(
    *,
    instance: Cluster | None,
    attrs: Mapping[str, Any],
    secret_given: bool,
    actor: AbstractBaseUser | AnonymousUser,
) -> dict[str, Any]:
    """Check the credentials a cluster will have after a create or update (``attrs`` are
    the validated fields, ``credentials`` included) and say whether the control plane's own
    identity is approved for it.

    A stored kubeconfig must be safe to load and have the context; a kubeconfig path must
    be absolute. A caller who is not a superuser may not create a cluster that acts as the
    control plane itself, nor change a credential-related field of one (``secret_given``:
    the request sent a secret); descriptive fields stay editable and keep the approval as
    it was. A superuser's save approves whatever identity the cluster then uses. Raises a
    ValidationError keyed by API field names. Returns ``process_identity_approved``.
    """
    from apps.integrations.kubernetes import KubernetesError, kubeconfig_check, kubeconfig_load

    errors: dict[str, str] = {}
    kind = _current(instance, attrs, "kind")
    team = _current(instance, attrs, "team")
    stored = _current(instance, attrs, "credentials") or {}
    probe = Cluster(  # type: ignore[misc]  # credentials is a JSON object, not text
        kind=kind or "",
        in_cluster=bool(_current(instance, attrs, "in_cluster")),
        kubeconfig_path=_current(instance, attrs, "kubeconfig_path") or "",
        kube_context=_current(instance, attrs, "kube_context") or "",
        aws_credentials_source=_current(instance, attrs, "aws_credentials_source") or "",
        credentials=stored,
    )
    team_slug = team.slug if team is not None else ""
    uses_kubeconfig = (
        kind == ClusterKind.KUBERNETES
        and stored.get("kubeconfig")
        and not (probe.in_cluster or probe.kubeconfig_path)
    )
    context_changed = instance is None or probe.kube_context != instance.kube_context
    if uses_kubeconfig and (secret_given or context_changed):
        # The document must be safe to load before it is stored; the context is re-checked
        # against the stored document when only the context changes.
        try:
            kubeconfig_check(kubeconfig_load(stored["kubeconfig"]), context=probe.kube_context)
        except KubernetesError as exc:
            errors["kubeconfig" if secret_given else "kube_context"] = exc.message
    if kind == ClusterKind.KUBERNETES and probe.kubeconfig_path:
        if not probe.kubeconfig_path.startswith("/"):
            errors["kubeconfig_path"] = "Give an absolute path."
    superuser = bool(getattr(actor, "is_superuser", False))
    identity = cluster_process_identity(probe, team_slug=team_slug)
    if identity and not superuser:
        changed = (
            instance is None
            or secret_given
            or any(
                name in attrs and attrs[name] != getattr(instance, name)
                for name in _GUARDED_CLUSTER_FIELDS
            )
        )
        if changed:
            errors.setdefault(
                _process_identity_field(probe),
                f"Only a superuser can make a cluster act with {identity}. "
                + _team_alternatives(probe, team_slug),
            )
    if errors:
        raise ValidationError(errors)
    if superuser:
        approved = bool(identity)
    else:
        approved = bool(identity) and instance is not None and instance.process_identity_approved
    return {"process_identity_approved": approved}
