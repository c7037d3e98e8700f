"""Changes of the go-live state: running the checks (and alerting on a regression),
moving a deployment through its stages behind the gate, overrides, artifact reports, and
load tests (created here, run by :func:`loadtest_execute` in a worker or the foreground).
Every change a person makes is audited."""

from __future__ import annotations

import importlib
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import structlog
from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from apps.alerts.models import AlertSource
from apps.alerts.services import alert_raise
from apps.audit.models import AuditAction
from apps.audit.services import audited
from apps.autoscaling import engine
from apps.autoscaling.models import AutoscalingPolicy, DecisionRecord, Mode
from apps.core.locks import cache_lock
from apps.core.netguard import DestinationRefused, destination_check
from apps.inventory.models import Deployment, DeploymentStatus
from apps.slos.models import LatencyMetric, SliKind, Slo

from . import checks
from .models import (
    LIVE_STAGES,
    ArtifactReport,
    CheckResult,
    DeploymentStage,
    GateOverride,
    GateTarget,
    LoadTestMode,
    LoadTestRun,
    LoadTestStatus,
    Stage,
)
from .outbound import checked_session_factory, endpoint_recheck
from .runner import checks_evaluate
from .selectors import deployment_stage, gate_failures, latest_statuses, loadtest_in_progress

logger = structlog.get_logger("controlplane.golive")

Actor = AbstractBaseUser | AnonymousUser | None
REGRESSION_ALERT = "GoLiveCheckRegressed"


def _user(actor: Actor) -> Any:
    """The user a row names for ``actor``; None for the system or an anonymous caller."""
    return actor if actor is not None and actor.is_authenticated else None


class GateRefused(Exception):
    """The change needs every required check to pass (``failures`` are those that do not)."""

    def __init__(self, message: str, failures: list[dict[str, str]]) -> None:
        super().__init__(message)
        self.message = message
        self.failures = failures


class Conflict(Exception):
    """The request conflicts with the deployment's state (409)."""


# --------------------------------------------------------------------------- checks


def _regression_labels(deployment: Deployment, key: str) -> dict[str, str]:
    return {
        "alertname": REGRESSION_ALERT,
        "team": deployment.team.slug,
        "deployment": deployment.name,
        "check": key,
        "severity": "warning",
    }


def checks_run(*, deployment: Deployment, keys: list[str] | None = None) -> list[CheckResult]:
    """Run the checks, store each result, and on an active deployment raise an alert for
    every required check that went from pass to fail (resolved once it passes again)."""
    stage = deployment_stage(deployment=deployment)
    before = latest_statuses(deployment=deployment)
    evaluated = checks_evaluate(deployment=deployment, stage=stage, keys=keys)
    now = timezone.now()
    rows = CheckResult.objects.bulk_create(
        [
            CheckResult(
                deployment=deployment,
                key=item.spec.key,
                group=item.spec.group,
                status=item.outcome.status,
                required=item.spec.required,
                observed=item.outcome.observed,
                message=item.outcome.message[:2000],
                evidence_url=item.evidence_url,
                checked_at=now,
            )
            for item in evaluated
        ]
    )
    after = {**before, **{row.key: row.status for row in rows}}
    if deployment.status == DeploymentStatus.ACTIVE:
        messages = {row.key: row.message for row in rows}
        for key in checks.regressions(before, after):
            alert_raise(
                labels=_regression_labels(deployment, key),
                annotations={"summary": f"Go-live check {key} regressed: {messages[key]}"},
                source=AlertSource.GOLIVE,
                team=deployment.team,
                now=now,
            )
            logger.warning("golive-check-regressed", deployment_id=deployment.pk, check=key)
    for key in checks.recoveries(before, after):
        alert_raise(
            labels=_regression_labels(deployment, key),
            source=AlertSource.GOLIVE,
            team=deployment.team,
            firing=False,
            now=now,
        )
    return rows


def checks_run_all() -> int:
    """The periodic run: every deployment not retired. One deployment's failure is logged
    and the others still run."""
    count = 0
    deployments = (
        Deployment.objects.exclude(status=DeploymentStatus.RETIRED)
        .select_related("team", "model", "cluster")
        .order_by("pk")
    )
    for deployment in deployments:
        try:
            checks_run(deployment=deployment)
            count += 1
        except Exception:
            logger.exception("golive-checks-failed", deployment_id=deployment.pk)
    return count


# --------------------------------------------------------------------------- stages


def _set_status(deployment: Deployment, status: str, *, actor: Actor, verb: str) -> None:
    if deployment.status == status:
        return
    with audited(actor=actor, action=AuditAction.UPDATE, instance=deployment, verb=verb):
        deployment.status = status
        deployment.save(update_fields=["status", "updated_at"])


def _save_stage(row: DeploymentStage, stage: str, *, actor: Actor, verb: str) -> DeploymentStage:
    action = AuditAction.CREATE if row._state.adding else AuditAction.UPDATE
    with audited(actor=actor, action=action, instance=row, verb=verb):
        row.stage = stage
        row.changed_by = _user(actor)
        row.save()
    return row


@transaction.atomic
def stage_set(
    *, deployment: Deployment, stage: str, actor: Actor, require_tls: bool | None = None
) -> DeploymentStage:
    """Move the deployment to ``stage``. Production (and operations, from preparation or
    validation) makes it active and needs every required check to pass (GateRefused
    otherwise); operations is reached from production; an earlier stage takes an active
    deployment back to provisioning."""
    row = deployment_stage(deployment=deployment)
    if stage not in Stage.values:
        raise ValidationError({"stage": f"Unknown stage {stage!r}."})
    if require_tls is not None and require_tls != row.require_tls:
        action = AuditAction.CREATE if row._state.adding else AuditAction.UPDATE
        with audited(actor=actor, action=action, instance=row):
            row.require_tls = require_tls
            row.save()
    if stage == row.stage and (stage not in LIVE_STAGES or deployment.status == "active"):
        return row
    if stage in LIVE_STAGES and row.stage not in LIVE_STAGES:
        failures = gate_failures(deployment=deployment)
        if failures:
            from .gate import refusal_message

            raise GateRefused(refusal_message(failures, what="Going to production"), failures)
    _save_stage(row, stage, actor=actor, verb="stage")
    if stage in LIVE_STAGES:
        _set_status(deployment, DeploymentStatus.ACTIVE, actor=actor, verb="golive-activate")
    elif deployment.status == DeploymentStatus.ACTIVE:
        _set_status(deployment, DeploymentStatus.PROVISIONING, actor=actor, verb="golive-stage")
    return row


@transaction.atomic
def gate_override(
    *, deployment: Deployment, target: str, reason: str, actor: Actor
) -> GateOverride:
    """Let the deployment through the gate although required checks fail: ``production``
    makes it active, ``enforce`` puts its scaling policy in enforce mode. Stored with the
    failing checks and audited; the caller checks the actor is a team admin."""
    reason = reason.strip()
    if not reason:
        raise ValidationError({"reason": "Give the reason for the override."})
    if target not in GateTarget.values:
        raise ValidationError({"target": f"Unknown target {target!r}: production or enforce."})
    policy = None
    if target == GateTarget.ENFORCE:
        policy = AutoscalingPolicy.objects.filter(deployment=deployment).first()
        if policy is None:
            raise ValidationError({"target": "The deployment has no scaling policy to enforce."})
    failures = gate_failures(deployment=deployment)
    with audited(actor=actor, action=AuditAction.CREATE, verb="override") as change:
        override = GateOverride.objects.create(
            deployment=deployment,
            target=target,
            reason=reason[:2000],
            failing_checks=failures,
            actor=_user(actor),
        )
        change.instance = override
    if target == GateTarget.PRODUCTION:
        row = deployment_stage(deployment=deployment)
        if row.stage not in LIVE_STAGES or row._state.adding:
            _save_stage(row, Stage.PRODUCTION, actor=actor, verb="override")
        _set_status(deployment, DeploymentStatus.ACTIVE, actor=actor, verb="golive-override")
    elif policy is not None and policy.mode != Mode.ENFORCE:
        with audited(actor=actor, action=AuditAction.UPDATE, instance=policy, verb="override"):
            policy.mode = Mode.ENFORCE
            policy.save(update_fields=["mode", "updated_at"])
    logger.info(
        "golive-gate-overridden",
        deployment_id=deployment.pk,
        target=target,
        failing=[f["key"] for f in failures],
    )
    return override


# --------------------------------------------------------------------------- artifacts


@transaction.atomic
def artifacts_report(
    *, deployment: Deployment, files: list[dict[str, str]], digest: str, actor: Actor
) -> ArtifactReport:
    errors: dict[str, str] = {}
    if not files and not digest:
        errors["files"] = "Give the files with their sha256, an overall digest, or both."
    if digest and not checks.DIGEST.match(digest):
        errors["digest"] = "Use the form sha256:<64 lowercase hex digits>."
    for index, item in enumerate(files):
        if not checks.SHA256_HEX.match(str(item.get("sha256", ""))):
            errors["files"] = f"File {index}: sha256 must be 64 lowercase hex digits."
            break
    paths = [str(item.get("path", "")) for item in files]
    if len(set(paths)) != len(paths):
        errors["files"] = "A path is listed twice."
    if errors:
        raise ValidationError(errors)
    with audited(actor=actor, action=AuditAction.CREATE) as change:
        report = ArtifactReport.objects.create(
            deployment=deployment,
            files=[{"path": str(f["path"]), "sha256": str(f["sha256"])} for f in files],
            digest=digest,
            reported_by=_user(actor),
        )
        change.instance = report
    return report


# --------------------------------------------------------------------------- load tests


def _slo_ttft(deployment: Deployment) -> float | None:
    slo = (
        Slo.objects.filter(
            deployment=deployment, sli_kind=SliKind.LATENCY, latency_metric=LatencyMetric.TTFT
        )
        .exclude(threshold_seconds=None)
        .order_by("threshold_seconds")
        .first()
    )
    return float(slo.threshold_seconds) if slo and slo.threshold_seconds else None


def _current_replicas(deployment: Deployment) -> int:
    latest = DecisionRecord.objects.filter(deployment=deployment).order_by("-at").first()
    if latest is not None:
        ready = (latest.inputs or {}).get("replicas", {}).get("ready")
        if isinstance(ready, int) and ready > 0:
            return ready
        if latest.current_replicas > 0:
            return latest.current_replicas
    return max(1, deployment.min_replicas)


def loadtest_base_url(deployment: Deployment) -> str:
    url = deployment.endpoint_url.rstrip("/")
    return url[: -len("/v1")] if url.endswith("/v1") else url


def loadtest_plan(*, deployment: Deployment, params: Mapping[str, Any]) -> dict[str, Any]:
    """The engine's plan (apps.golive.loadtest.LoadTestPlan's fields) for a request's
    ``params``: the deployment's endpoint and model, its TTFT SLO when it has one, its
    current replicas, and the team caps (GOLIVE_LOADTEST_MAX_RATE_RPS,
    GOLIVE_LOADTEST_MAX_TOTAL_S) over the rates and durations. ValidationError for a plan
    out of bounds."""
    errors: dict[str, str] = {}
    base_url = loadtest_base_url(deployment)
    if not base_url:
        errors["deployment"] = "The deployment has no endpoint_url to test."
    else:
        try:
            destination_check(base_url, field="endpoint_url")
        except DestinationRefused as exc:
            errors["deployment"] = str(exc)
    max_rate_cap = settings.GOLIVE_LOADTEST_MAX_RATE_RPS
    max_total_cap = settings.GOLIVE_LOADTEST_MAX_TOTAL_S
    rate = float(params.get("rate_rps", 1.0))
    duration = float(params.get("duration_s", 30.0))
    max_rate = float(params.get("max_rate_rps", min(50.0, max_rate_cap)))
    max_total = float(params.get("max_total_s", min(300.0, max_total_cap)))
    if rate > max_rate_cap:
        errors["rate_rps"] = f"At most {max_rate_cap:g} req/s (GOLIVE_LOADTEST_MAX_RATE_RPS)."
    if max_rate > max_rate_cap:
        errors["max_rate_rps"] = f"At most {max_rate_cap:g} req/s (GOLIVE_LOADTEST_MAX_RATE_RPS)."
    if max_total > max_total_cap:
        errors["max_total_s"] = f"At most {max_total_cap:g} s (GOLIVE_LOADTEST_MAX_TOTAL_S)."
    if duration > max_total:
        errors["duration_s"] = f"At most max_total_s ({max_total:g} s)."
    if rate > max_rate:
        errors["rate_rps"] = f"At most max_rate_rps ({max_rate:g} req/s)."
    if errors:
        raise ValidationError(errors)
    return {
        "base_url": base_url,
        "model": deployment.model.name,
        "mode": str(params.get("mode", LoadTestMode.FUNCTIONAL)),
        "rate_rps": rate,
        "duration_s": duration,
        "max_rate_rps": max_rate,
        "rate_factor": float(params.get("rate_factor", 1.5)),
        "max_total_s": max_total,
        "max_concurrency": int(params.get("max_concurrency", 256)),
        "slo_ttft_s": float(params.get("slo_ttft_s") or _slo_ttft(deployment) or 2.0),
        "slo_itl_s": float(params.get("slo_itl_s", 0.1)),
        "slo_quantile": float(params.get("slo_quantile", 0.95)),
        "max_error_rate": float(params.get("max_error_rate", 0.01)),
        "replicas": int(params.get("replicas") or _current_replicas(deployment)),
        "stream": bool(params.get("stream", True)),
        "api": str(params.get("api", "chat")),
        "workload": {
            "preset": str(params.get("workload_preset", "chat")),
            "trace_path": None,
            "max_prompt_tokens": params.get("max_prompt_tokens"),
        },
        "headers": {},
        "request_timeout_s": float(params.get("request_timeout_s", 120.0)),
        "seed": int(params.get("seed", 0)),
    }


@transaction.atomic
def loadtest_create(
    *,
    deployment: Deployment,
    params: Mapping[str, Any],
    confirm_production: bool,
    actor: Actor,
    enqueue: Callable[[int], Any] | None = None,
) -> LoadTestRun:
    """Queue a load test. Refused (Conflict) against an active production deployment
    without ``confirm_production``, and while another test of the deployment is queued or
    running. ``enqueue`` (the Celery task's delay) is called once the row is committed."""
    Deployment.objects.select_for_update().filter(pk=deployment.pk).first()
    stage = deployment_stage(deployment=deployment)
    live = deployment.status == DeploymentStatus.ACTIVE or stage.stage in LIVE_STAGES
    if live and not confirm_production:
        raise Conflict(
            f"{deployment.name} is active in production: a load test adds real traffic to "
            "it. Send confirm_production: true to run it anyway."
        )
    running = loadtest_in_progress(deployment=deployment)
    if running is not None:
        raise Conflict(
            f"Load test {running.pk} of {deployment.name} is {running.status}: one at a time "
            "per deployment (cancel it first)."
        )
    plan = loadtest_plan(deployment=deployment, params=params)
    with audited(actor=actor, action=AuditAction.CREATE) as change:
        run = LoadTestRun.objects.create(
            deployment=deployment,
            mode=plan["mode"],
            plan=plan,
            confirmed_production=bool(live and confirm_production),
            created_by=_user(actor),
        )
        change.instance = run
    if enqueue is not None:
        transaction.on_commit(lambda: enqueue(run.pk))
    return run


@transaction.atomic
def loadtest_cancel(*, run: LoadTestRun, actor: Actor) -> LoadTestRun:
    """A queued run is cancelled at once; a running one stops at the engine's next check."""
    if run.status not in (LoadTestStatus.QUEUED, LoadTestStatus.RUNNING):
        raise Conflict(f"Load test {run.pk} is {run.status}: nothing to cancel.")
    with audited(actor=actor, action=AuditAction.UPDATE, instance=run, verb="cancel"):
        run.cancel_requested = True
        fields = ["cancel_requested"]
        if run.status == LoadTestStatus.QUEUED:
            run.status = LoadTestStatus.CANCELLED
            run.finished_at = timezone.now()
            fields += ["status", "finished_at"]
        run.save(update_fields=fields)
    return run


class PlanInvalid(ValueError):
    """The engine refused the plan (its validate_plan errors)."""


def _run_engine(
    plan: dict[str, Any],
    *,
    should_stop: Callable[[], bool],
    on_progress: Callable[[Any], None],
) -> Any:
    """The one call into the load-test engine (apps.golive.loadtest, no Django): build its
    plan, validate it, run it (its own event loop, in this thread). Returns the engine's
    LoadTestResult."""
    engine = importlib.import_module("apps.golive.loadtest")
    spec = engine.LoadTestPlan(**{**plan, "workload": engine.WorkloadSpec(**plan["workload"])})
    errors = engine.validate_plan(spec)
    if errors:
        raise PlanInvalid("; ".join(str(e) for e in errors))
    try:
        endpoint_recheck(spec.base_url)
    except DestinationRefused as exc:
        raise PlanInvalid(str(exc)) from exc
    return engine.run_load_test(
        spec,
        should_stop=should_stop,
        on_progress=on_progress,
        session_factory=checked_session_factory(spec.max_concurrency),
    )


@dataclass(frozen=True)
class Verdict:
    passed: bool
    capacity: float | None
    summary: str


def loadtest_verdict(mode: str, result: Any) -> Verdict:
    """Whether a finished run met its criteria: functional, every functional check passed;
    performance, every step met the SLO; stress, a capacity per replica was measured."""
    if mode == LoadTestMode.FUNCTIONAL:
        items = list(getattr(result, "functional", None) or [])
        failed = [str(name) for name, ok, _ in items if not ok]
        passed = bool(items) and not failed
        summary = f"{len(items) - len(failed)}/{len(items)} functional checks passed" + (
            f"; failed: {', '.join(failed)}" if failed else ""
        )
        return Verdict(passed, None, summary)
    if mode == LoadTestMode.PERFORMANCE:
        steps = list(getattr(result, "steps", None) or [])
        met = [bool(getattr(s, "slo_met", False)) for s in steps]
        return Verdict(bool(steps) and all(met), None, f"{sum(met)}/{len(steps)} steps met the SLO")
    capacity = getattr(result, "capacity_rps_per_replica", None)
    if capacity is None:
        return Verdict(False, None, "no capacity measured")
    return Verdict(True, float(capacity), f"{float(capacity):.2f} req/s per replica at the SLO")


def _jsonable(value: Any) -> Any:
    if hasattr(value, "to_dict"):
        return value.to_dict()
    if isinstance(value, dict | list | str | int | float | bool) or value is None:
        return value
    return str(value)


def loadtest_execute(
    *, run_id: int, on_progress: Callable[[Any], None] | None = None
) -> LoadTestRun | None:
    """Run a queued load test (worker or foreground): claim it (queued -> running), hold
    the deployment's load-test lock for its duration, call the engine, store the result and
    verdict, and re-run the deployment's test checks. Returns None when it was not queued
    (taken by another worker, cancelled) or the lock is held."""
    run = (
        LoadTestRun.objects.select_related("deployment__team", "deployment__model")
        .filter(pk=run_id)
        .first()
    )
    if run is None:
        return None
    ttl = int(settings.GOLIVE_LOADTEST_MAX_TOTAL_S + 120)
    with cache_lock(f"golive:loadtest:{run.deployment_id}", ttl_s=ttl) as acquired:
        if not acquired:
            logger.info("golive-loadtest-locked", run_id=run_id)
            return None
        claimed = LoadTestRun.objects.filter(pk=run_id, status=LoadTestStatus.QUEUED).update(
            status=LoadTestStatus.RUNNING, started_at=timezone.now()
        )
        if claimed != 1:
            return None
        checked = {"at": 0.0, "stop": False}

        def should_stop() -> bool:
            # Read the cancel flag at most once a second: the engine may ask per request.
            now = time.monotonic()
            if now - checked["at"] >= 1.0:
                checked["at"] = now
                checked["stop"] = LoadTestRun.objects.filter(
                    pk=run_id, cancel_requested=True
                ).exists()
            return bool(checked["stop"])

        saved = {"at": 0.0}

        def progress(report: Any) -> None:
            if on_progress is not None:
                on_progress(report)
            now = time.monotonic()
            if now - saved["at"] >= 1.0:
                saved["at"] = now
                LoadTestRun.objects.filter(pk=run_id).update(progress=_jsonable(report))

        fields: dict[str, Any]
        try:
            result = _run_engine(run.plan, should_stop=should_stop, on_progress=progress)
        except Exception as exc:  # noqa: BLE001 - any engine failure fails the run, stored
            logger.warning("golive-loadtest-failed", run_id=run_id, error=str(exc))
            fields = {
                "status": LoadTestStatus.FAILED,
                "error": f"{type(exc).__name__}: {exc}"[:2000],
                "passed": False,
            }
        else:
            stopped = str(getattr(result, "stopped_reason", "") or "")
            cancelled = should_stop() or "cancel" in stopped
            verdict = loadtest_verdict(run.mode, result)
            fields = {
                "status": LoadTestStatus.CANCELLED if cancelled else LoadTestStatus.DONE,
                "result": _jsonable(result),
                "passed": False if cancelled else verdict.passed,
                "capacity_rps_per_replica": verdict.capacity,
                "error": "" if verdict.passed else verdict.summary,
            }
        fields["finished_at"] = timezone.now()
        LoadTestRun.objects.filter(pk=run_id).update(**fields)
    run.refresh_from_db()
    checks_run(
        deployment=run.deployment,
        keys=["tests.functional", "tests.performance", "tests.stress"],
    )
    return run


def _tested_replicas(run: LoadTestRun) -> int:
    """The replicas behind the endpoint a run tested (its plan's ``replicas``, 1 when the
    plan does not say)."""
    value = run.plan.get("replicas", 1) if isinstance(run.plan, dict) else 1
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 1 else 1


@transaction.atomic
def capacity_apply(
    *, run: LoadTestRun, actor: Actor, pooling_with: LoadTestRun | None = None
) -> AutoscalingPolicy:
    """Give the scaling policy the stress test's measured capacity per replica as its
    starting capacity (``capacity_initial_per_replica``) and the replicas it was measured
    with (``capacity_pool_size``), audited. With ``pooling_with``, a stress test of the same
    deployment at another replica count, the policy's ``capacity_pooling`` is fitted to
    the two (:func:`apps.autoscaling.engine.pooling_from`)."""
    if run.capacity_rps_per_replica is None:
        raise Conflict(f"Load test {run.pk} measured no capacity (only a stress test does).")
    replicas = _tested_replicas(run)
    pooling = None
    extra: dict[str, Any] = {"loadtest": run.pk}
    fields = ["capacity_initial_per_replica", "capacity_pool_size", "updated_at"]
    if pooling_with is not None:
        if pooling_with.deployment_id != run.deployment_id:
            raise Conflict(f"Load test {pooling_with.pk} tested another deployment.")
        if pooling_with.capacity_rps_per_replica is None:
            raise Conflict(f"Load test {pooling_with.pk} measured no capacity.")
        other = _tested_replicas(pooling_with)
        if other == replicas:
            raise Conflict(
                f"Load tests {run.pk} and {pooling_with.pk} both ran on {replicas} replicas: "
                "pooling needs two replica counts."
            )
        pooling = engine.pooling_from(
            replicas,
            float(run.capacity_rps_per_replica),
            other,
            float(pooling_with.capacity_rps_per_replica),
        )
        extra["pooling_with"] = pooling_with.pk
        fields.append("capacity_pooling")
    policy = AutoscalingPolicy.objects.select_for_update().filter(deployment=run.deployment).first()
    if policy is None:
        raise Conflict("The deployment has no scaling policy to give the capacity to.")
    with audited(
        actor=actor,
        action=AuditAction.UPDATE,
        instance=policy,
        verb="capacity-from-loadtest",
        extra=extra,
    ):
        policy.capacity_initial_per_replica = round(float(run.capacity_rps_per_replica), 4)
        policy.capacity_pool_size = replicas
        if pooling is not None:
            policy.capacity_pooling = round(pooling, 4)
        policy.full_clean()
        policy.save(update_fields=fields)
    return policy


@transaction.atomic
def stage_seed(*, deployment: Deployment, stage: str, reason: str) -> DeploymentStage:
    """Put a deployment the system itself creates (the demo) in ``stage`` with a recorded
    system override: nothing was checked, and the audit log says so."""
    row = deployment_stage(deployment=deployment)
    if not row._state.adding and row.stage == stage:
        return row
    if stage in LIVE_STAGES:
        with audited(actor=None, action=AuditAction.CREATE, verb="override") as change:
            change.instance = GateOverride.objects.create(
                deployment=deployment,
                target=GateTarget.PRODUCTION,
                reason=reason,
                failing_checks=gate_failures(deployment=deployment),
            )
    return _save_stage(row, stage, actor=None, verb="seed")
