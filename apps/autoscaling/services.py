"""Operator controls of the autoscaler: pause (per deployment and fleet-wide) and pins."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db import transaction
from django.utils import timezone
from django.utils.module_loading import import_string

from apps.audit.models import AuditAction
from apps.audit.services import audited
from apps.inventory.models import Deployment

from .models import AutoscalingPolicy, DeploymentControl, GlobalSwitch

GLOBAL_PAUSE = "autoscaling-paused"

Actor = AbstractBaseUser | AnonymousUser


def policy_enforce_refusal(*, deployment: Deployment) -> str | None:
    """Why the deployment's policy may not leave dry-run for enforce, from the gate named
    by the setting ``AUTOSCALING_ENFORCE_GUARD`` (the go-live checks by default; empty: no
    gate). A dotted path keeps autoscaling from importing the app that owns the gate."""
    guard = getattr(settings, "AUTOSCALING_ENFORCE_GUARD", "")
    if not guard:
        return None
    refusal: str | None = import_string(guard)(deployment=deployment)
    return refusal


def _control_change(
    *, deployment: Deployment, actor: Actor, verb: str, reason: str, **changes: object
) -> DeploymentControl:
    """Change the deployment's control row under a row lock and audit the diff (with the
    operator's reason, when they gave one)."""
    control, _ = DeploymentControl.objects.select_for_update().get_or_create(deployment=deployment)
    control.deployment = deployment  # named in the audit entry without another query
    extra = {"reason": reason} if reason else None
    with audited(actor=actor, action=AuditAction.ACTION, verb=verb, instance=control, extra=extra):
        for field, value in changes.items():
            setattr(control, field, value)
        control.save(update_fields=list(changes))
    return control


@transaction.atomic
def deployment_pause_set(
    *, deployment: Deployment, paused: bool, actor: Actor, reason: str = ""
) -> DeploymentControl:
    return _control_change(
        deployment=deployment,
        actor=actor,
        verb="pause" if paused else "resume",
        reason=reason,
        paused=paused,
    )


@transaction.atomic
def deployment_pin(
    *, deployment: Deployment, replicas: int, minutes: int, actor: Actor, reason: str = ""
) -> DeploymentControl:
    if not deployment.min_replicas <= replicas <= deployment.max_replicas:
        raise ValueError(
            f"{replicas} is outside the deployment's bounds "
            f"[{deployment.min_replicas}, {deployment.max_replicas}]"
        )
    return _control_change(
        deployment=deployment,
        actor=actor,
        verb="pin",
        reason=reason,
        pinned_replicas=replicas,
        pinned_until=timezone.now() + timedelta(minutes=minutes),
        pinned_by=actor if actor.is_authenticated else None,
    )


@transaction.atomic
def deployment_unpin(
    *, deployment: Deployment, actor: Actor, reason: str = ""
) -> DeploymentControl:
    return _control_change(
        deployment=deployment,
        actor=actor,
        verb="unpin",
        reason=reason,
        pinned_replicas=None,
        pinned_until=None,
        pinned_by=None,
    )


@transaction.atomic
def global_pause_set(*, paused: bool, actor: Actor) -> GlobalSwitch:
    switch, _ = GlobalSwitch.objects.select_for_update().get_or_create(name=GLOBAL_PAUSE)
    verb = "pause-all" if paused else "resume-all"
    with audited(actor=actor, action=AuditAction.ACTION, verb=verb, instance=switch):
        switch.enabled = paused
        switch.changed_by = actor if actor.is_authenticated else None  # type: ignore[assignment]
        switch.save()
    return switch


def global_pause_active() -> bool:
    return GlobalSwitch.objects.filter(name=GLOBAL_PAUSE, enabled=True).exists()


@transaction.atomic
def policy_capacity_update(
    *, policy: AutoscalingPolicy, changes: dict[str, object], actor: Actor, reason: str
) -> AutoscalingPolicy:
    """Change the demand sizing (``capacity_*``) fields of a saved policy, validated by the
    policy's own clean() and audited as an update with the operator's reason."""
    locked = (
        AutoscalingPolicy.objects.select_for_update().select_related("deployment").get(pk=policy.pk)
    )
    with audited(actor=actor, action=AuditAction.UPDATE, instance=locked, extra={"reason": reason}):
        for field, value in changes.items():
            if not field.startswith("capacity_"):
                raise ValueError(f"{field} is not a capacity field")
            setattr(locked, field, value)
        locked.full_clean()
        locked.save(update_fields=[*changes, "updated_at"])
    return locked
