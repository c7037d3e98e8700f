"""Reads of the go-live state: a deployment's stage, its latest check results, what the
gate would say, and load-test runs."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from django.db.models import OuterRef, QuerySet, Subquery

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


def _effective(row: DeploymentStage | None, deployment: Deployment) -> DeploymentStage:
    row = row if row is not None else DeploymentStage(deployment=deployment)
    row.deployment = deployment
    if deployment.status == DeploymentStatus.ACTIVE and row.stage not in LIVE_STAGES:
        row.stage = Stage.PRODUCTION
    return row


def deployment_stage(*, deployment: Deployment) -> DeploymentStage:
    """The deployment's stage row (unsaved when none was written). An active deployment
    reads as in production whatever was stored: it went live before the gate existed, or
    through the deployments API with every required check passing."""
    return _effective(DeploymentStage.objects.filter(deployment=deployment).first(), deployment)


def latest_results(*, deployment: Deployment) -> dict[str, CheckResult]:
    """check key -> its latest result (a check never run is absent)."""
    return {row.key: row for row in _latest_rows([deployment.pk])}


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


def _latest_rows(deployment_ids: list[int]) -> QuerySet[CheckResult]:
    """The latest result of each check of each deployment, in one query."""
    newest = CheckResult.objects.filter(
        deployment=OuterRef("deployment"), key=OuterRef("key")
    ).order_by("-checked_at", "-pk")
    return CheckResult.objects.filter(
        deployment_id__in=deployment_ids, pk=Subquery(newest.values("pk")[:1])
    )


OVERRIDES_SHOWN = 5


def checklists(*, deployments: Sequence[Deployment]) -> list[dict[str, Any]]:
    """What the checklist shows for each deployment: stage, gate, the latest result per
    check (in the checks' order), the latest overrides, and the capacity measured and in
    use. A fixed number of queries however many deployments."""
    ids = [d.pk for d in deployments]
    stages = DeploymentStage.objects.in_bulk(ids)
    latest: dict[int, dict[str, CheckResult]] = defaultdict(dict)
    for row in _latest_rows(ids):
        latest[row.deployment_id][row.key] = row
    overrides: dict[int, list[GateOverride]] = defaultdict(list)
    for override in GateOverride.objects.filter(deployment_id__in=ids).select_related("actor"):
        if len(overrides[override.deployment_id]) < OVERRIDES_SHOWN:
            overrides[override.deployment_id].append(override)
    measured: dict[int, float] = {}
    runs = (
        LoadTestRun.objects.filter(deployment_id__in=ids, capacity_rps_per_replica__isnull=False)
        .order_by("-finished_at", "-pk")
        .values_list("deployment_id", "capacity_rps_per_replica")
    )
    for deployment_id, capacity in runs:
        if capacity is not None:  # excluded by the filter; the column is nullable
            measured.setdefault(deployment_id, capacity)
    policies = dict(
        AutoscalingPolicy.objects.filter(deployment_id__in=ids).values_list(
            "deployment_id", "capacity_initial_per_replica"
        )
    )
    listed = []
    for deployment in deployments:
        stage = _effective(stages.get(deployment.pk), deployment)
        rows = latest.get(deployment.pk, {})
        failures = checks.gate_failures({key: row.status for key, row in rows.items()})
        listed.append(
            {
                "deployment": deployment.pk,
                "name": deployment.name,
                "status": deployment.status,
                "stage": stage.stage,
                "require_tls": stage.require_tls,
                "gate": {"open": not failures, "failing": failures},
                "checks": [rows[spec.key] for spec in checks.CHECKS if spec.key in rows],
                "overrides": overrides.get(deployment.pk, []),
                "measured_capacity_rps_per_replica": measured.get(deployment.pk),
                "policy_capacity_rps_per_replica": policies.get(deployment.pk),
            }
        )
    return listed


def checklist(*, deployment: Deployment) -> dict[str, Any]:
    return checklists(deployments=[deployment])[0]
