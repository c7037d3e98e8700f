"""Reads of the go-live state: a deployment's stage, its latest check results, what the
gate would say, and load-test runs."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet

from apps.autoscaling.models import AutoscalingPolicy
from apps.inventory.models import Deployment, DeploymentStatus

from . import checks
from .models import (
    LIVE_STAGES,
    CheckResult,
    DeploymentStage,
    GateOverride,
    LoadTestRun,
    LoadTestStatus,
    Stage,
)


def deployment_stage(*, deployment: Deployment) -> DeploymentStage:
    """The deployment's stage row (unsaved when none was written). An active deployment
    reads as in production whatever was stored: it went live before the gate existed, or
    through the deployments API with every required check passing."""
    row = DeploymentStage.objects.filter(deployment=deployment).first()
    if row is None:
        row = DeploymentStage(deployment=deployment)
    row.deployment = deployment
    if deployment.status == DeploymentStatus.ACTIVE and row.stage not in LIVE_STAGES:
        row.stage = Stage.PRODUCTION
    return row


def latest_results(*, deployment: Deployment) -> dict[str, CheckResult]:
    """check key -> its latest result (a check never run is absent)."""
    latest: dict[str, CheckResult] = {}
    for spec in checks.CHECKS:
        row = (
            CheckResult.objects.filter(deployment=deployment, key=spec.key)
            .order_by("-checked_at", "-pk")
            .first()
        )
        if row is not None:
            latest[spec.key] = row
    return latest


def latest_statuses(*, deployment: Deployment) -> dict[str, str]:
    return {key: row.status for key, row in latest_results(deployment=deployment).items()}


def gate_failures(*, deployment: Deployment) -> list[dict[str, str]]:
    """The required checks whose latest result is not a pass (never run: unknown)."""
    return checks.gate_failures(latest_statuses(deployment=deployment))


def check_history(*, deployment: Deployment, key: str | None = None) -> QuerySet[CheckResult]:
    rows = CheckResult.objects.filter(deployment=deployment)
    if key:
        rows = rows.filter(key=key)
    return rows.order_by("-checked_at", "-pk")


def loadtest_in_progress(*, deployment: Deployment) -> LoadTestRun | None:
    return (
        LoadTestRun.objects.filter(
            deployment=deployment, status__in=[LoadTestStatus.QUEUED, LoadTestStatus.RUNNING]
        )
        .order_by("created_at")
        .first()
    )


def checklist(*, deployment: Deployment) -> dict[str, Any]:
    """What the checklist shows: stage, gate, the latest result per check (in the checks'
    order), the latest overrides, and the capacity measured and in use."""
    stage = deployment_stage(deployment=deployment)
    latest = latest_results(deployment=deployment)
    failures = checks.gate_failures({key: row.status for key, row in latest.items()})
    measured = (
        LoadTestRun.objects.filter(deployment=deployment, capacity_rps_per_replica__isnull=False)
        .order_by("-finished_at", "-pk")
        .values_list("capacity_rps_per_replica", flat=True)
        .first()
    )
    policy = AutoscalingPolicy.objects.filter(deployment=deployment).first()
    return {
        "deployment": deployment.pk,
        "name": deployment.name,
        "status": deployment.status,
        "stage": stage.stage,
        "require_tls": stage.require_tls,
        "gate": {"open": not failures, "failing": failures},
        "checks": [latest[spec.key] for spec in checks.CHECKS if spec.key in latest],
        "overrides": list(
            GateOverride.objects.filter(deployment=deployment).select_related("actor")[:5]
        ),
        "measured_capacity_rps_per_replica": measured,
        "policy_capacity_rps_per_replica": policy.capacity_initial_per_replica
        if policy is not None
        else None,
    }
