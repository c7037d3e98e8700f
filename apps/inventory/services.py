from __future__ import annotations

from typing import Any

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db import transaction

from apps.audit.models import AuditAction
from apps.audit.services import audit_record, model_snapshot

from .models import Deployment, DeploymentReadiness
from .selectors import deployment_readiness


@transaction.atomic
def deployment_readiness_update(
    *, deployment: Deployment, actor: AbstractBaseUser | AnonymousUser, data: dict[str, Any]
) -> DeploymentReadiness:
    readiness = deployment_readiness(deployment=deployment)
    created = readiness._state.adding
    before = None if created else model_snapshot(readiness)
    for key, value in data.items():
        setattr(readiness, key, value)
    readiness.updated_by = actor if actor.is_authenticated else None  # type: ignore[assignment]
    readiness.save()
    audit_record(
        actor=actor,
        action=AuditAction.CREATE if created else AuditAction.UPDATE,
        instance=readiness,
        before=before,
        after=model_snapshot(readiness),
    )
    return readiness
