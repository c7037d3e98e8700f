"""Changing balancing policies and gateways, and recording gateway reports. A policy is
checked by :func:`apps.balancing.spec.policy_errors` before it is saved, so an invalid one
never reaches the renderer; every change is audited."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

import structlog
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from apps.accounts.models import Team
from apps.audit.models import AuditAction
from apps.audit.services import audited
from apps.inventory.models import Deployment

from .models import BalancingPolicy, Gateway, GatewayDeployment, GatewayReport, ReportResult
from .spec import PolicySpec, policy_errors

logger = structlog.get_logger("controlplane.balancing")

POLICY_FIELDS = tuple(PolicySpec.__dataclass_fields__)


def policy_check(*, spec: PolicySpec) -> None:
    """:class:`ValidationError` naming each invalid field of ``spec``."""
    errors = policy_errors(spec)
    if errors:
        raise ValidationError({name: [message] for name, message in errors.items()})


def _unknown(fields: dict[str, Any]) -> None:
    unknown = sorted(set(fields) - set(POLICY_FIELDS))
    if unknown:
        raise ValidationError({name: ["not a policy field."] for name in unknown})


def policy_create(*, deployment: Deployment, actor: Any, **fields: Any) -> BalancingPolicy:
    _unknown(fields)
    spec = PolicySpec(**fields)
    policy_check(spec=spec)
    if BalancingPolicy.objects.filter(deployment=deployment).exists():
        raise ValidationError({"deployment": ["This deployment already has a balancing policy."]})
    with (
        transaction.atomic(),
        audited(actor=actor, action=AuditAction.CREATE) as change,
    ):
        policy = BalancingPolicy.objects.create(deployment=deployment, **fields)
        change.instance = policy
    logger.info("balancing-policy-created", deployment_id=deployment.pk, algorithm=policy.algorithm)
    return policy


def policy_update(*, policy: BalancingPolicy, actor: Any, **changes: Any) -> BalancingPolicy:
    _unknown(changes)
    policy_check(spec=replace(policy.spec(), **changes))
    with (
        transaction.atomic(),
        audited(actor=actor, action=AuditAction.UPDATE, instance=policy),
    ):
        for name, value in changes.items():
            setattr(policy, name, value)
        policy.save()
    logger.info(
        "balancing-policy-updated", deployment_id=policy.deployment_id, fields=sorted(changes)
    )
    return policy


def policy_delete(*, policy: BalancingPolicy, actor: Any) -> None:
    with transaction.atomic(), audited(actor=actor, action=AuditAction.DELETE, instance=policy):
        policy.delete()


def _deployments_check(*, team: Team, deployments: Sequence[Deployment]) -> None:
    if any(dep.team_id != team.pk for dep in deployments):
        raise ValidationError(
            {"deployments": ["A gateway fronts deployments of its own team only."]}
        )
    if len({dep.pk for dep in deployments}) != len(deployments):
        raise ValidationError({"deployments": ["A deployment is listed twice."]})


def _deployments_set(gateway: Gateway, deployments: Sequence[Deployment]) -> None:
    GatewayDeployment.objects.filter(gateway=gateway).delete()
    GatewayDeployment.objects.bulk_create(
        GatewayDeployment(gateway=gateway, deployment=dep, position=index)
        for index, dep in enumerate(deployments)
    )


def gateway_create(
    *,
    team: Team,
    name: str,
    actor: Any,
    deployments: Sequence[Deployment] = (),
    listen_port: int = 8080,
    listen_address: str | None = None,
) -> Gateway:
    _deployments_check(team=team, deployments=deployments)
    if Gateway.objects.filter(team=team, name=name).exists():
        raise ValidationError({"name": ["The team already has a gateway of this name."]})
    gateway = Gateway(
        team=team, name=name, listen_port=listen_port, listen_address=listen_address or None
    )
    gateway.full_clean(exclude=["deployments"])
    with transaction.atomic(), audited(actor=actor, action=AuditAction.CREATE) as change:
        gateway.save()
        _deployments_set(gateway, deployments)
        change.instance = gateway
    return gateway


def gateway_update(
    *,
    gateway: Gateway,
    actor: Any,
    name: str | None = None,
    listen_port: int | None = None,
    listen_address: str | None = None,
    deployments: Sequence[Deployment] | None = None,
) -> Gateway:
    if deployments is not None:
        _deployments_check(team=gateway.team, deployments=deployments)
    if name is not None and name != gateway.name:
        if Gateway.objects.filter(team_id=gateway.team_id, name=name).exists():
            raise ValidationError({"name": ["The team already has a gateway of this name."]})
    extra = {"deployments": [d.name for d in deployments]} if deployments is not None else None
    with (
        transaction.atomic(),
        audited(actor=actor, action=AuditAction.UPDATE, instance=gateway, extra=extra),
    ):
        if name is not None:
            gateway.name = name
        if listen_port is not None:
            gateway.listen_port = listen_port
        if listen_address is not None:
            gateway.listen_address = listen_address or None
        gateway.full_clean(exclude=["deployments"])
        gateway.save()
        if deployments is not None:
            _deployments_set(gateway, deployments)
    return gateway


def gateway_delete(*, gateway: Gateway, actor: Any) -> None:
    with transaction.atomic(), audited(actor=actor, action=AuditAction.DELETE, instance=gateway):
        gateway.delete()


def gateway_seen_touch(*, gateway: Gateway) -> None:
    """The gateway's agent polled its configuration (a 304 too): one update, not audited
    (a poll every few seconds changes nothing anyone decided)."""
    now = timezone.now()
    Gateway.objects.filter(pk=gateway.pk).update(last_seen_at=now)
    gateway.last_seen_at = now


def gateway_report_record(
    *, gateway: Gateway, version: str, result: str, applied_at: datetime, error: str = ""
) -> GatewayReport:
    """What the gateway's agent says it applied (or could not), kept as it said it."""
    report = GatewayReport.objects.create(
        gateway=gateway,
        version=version,
        result=ReportResult(result),
        error=error[:10_000],
        applied_at=applied_at,
    )
    event = "gateway-config-applied" if result == ReportResult.APPLIED else "gateway-config-failed"
    logger.info(event, gateway_id=gateway.pk, version=version, result=result)
    return report
