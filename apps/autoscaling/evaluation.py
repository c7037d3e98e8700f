"""The live control loop: evaluate a deployment, record the decision, apply the change.

evaluate (every AUTOSCALING_INTERVAL_S, one task per deployment shard)
    observations (latest collected metrics + SLO burn) and the platform's replica counts go
    through the same pure ``engine.decide`` the backtest uses; every decision is stored with
    its inputs, also in dry-run. A change in enforce mode becomes a ScaleAction with a
    deterministic idempotency key; older pending actions of the deployment are superseded.
act
    a worker claims the action with a conditional update (pending → running) while holding
    the deployment's lock, so two workers never act on one deployment at once, and applies
    it through the actuator with retries (apps.autoscaling.actuators.base.apply_with_retry).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from dataclasses import asdict
from datetime import timedelta
from typing import Any

import structlog
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from apps.core.locks import cache_lock
from apps.inventory.models import Deployment, ScaleTargetKind
from apps.metrics.models import DeploymentMetrics
from apps.metrics.services import pod_load_read
from apps.slos.models import SloStatus

from . import engine
from .actuators.base import (
    Actuator,
    ActuatorError,
    ScaleDownPreparer,
    ScaleTarget,
    apply_with_retry,
)
from .models import (
    ActionStatus,
    AutoscalingPolicy,
    DecisionRecord,
    DeploymentControl,
    Mode,
    ScaleAction,
)
from .services import global_pause_active

logger = structlog.get_logger("controlplane.autoscaling")

ActuatorFactory = Callable[[Deployment], Actuator]

# Short burn-rate windows: what "burning fast right now" means for the SLO boost.
_SLO_SHORT_WINDOWS = ("5m", "30m")


def scale_target_of(deployment: Deployment) -> ScaleTarget:
    kind = deployment.target_kind
    if kind == ScaleTargetKind.AWS_ASG:
        return ScaleTarget("aws-asg", "", deployment.scale_target_name)
    return ScaleTarget(kind, deployment.scale_target_namespace, deployment.scale_target_name)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- history JSON


def history_load(raw: Mapping[str, Any] | None) -> engine.History:
    raw = raw or {}
    return engine.History(
        recommendations=tuple((float(t), int(r)) for t, r in raw.get("recommendations", ())),
        scale_events=tuple((float(t), int(a), int(b)) for t, a, b in raw.get("scale_events", ())),
        load_samples=tuple((float(t), float(v)) for t, v in raw.get("load_samples", ())),
        signal_samples={
            name: tuple((float(t), float(v)) for t, v in samples)
            for name, samples in (raw.get("signal_samples") or {}).items()
        },
        panic_last_s=raw.get("panic_last_s"),
    )


def history_dump(history: engine.History) -> dict[str, Any]:
    return {
        "recommendations": [list(r) for r in history.recommendations],
        "scale_events": [list(e) for e in history.scale_events],
        "load_samples": [list(s) for s in history.load_samples],
        "signal_samples": {k: [list(s) for s in v] for k, v in history.signal_samples.items()},
        "panic_last_s": history.panic_last_s,
    }


# --------------------------------------------------------------------------- inputs


def observations_for(deployment: Deployment, now: float) -> dict[str, engine.Obs]:
    """Latest collected observations; a deployment never collected has none (→ hold)."""
    state = DeploymentMetrics.objects.filter(deployment=deployment).first()
    out: dict[str, engine.Obs] = {}
    if state is not None:
        for signal, item in (state.observations or {}).items():
            ts = item.get("ts")
            out[signal] = engine.Obs(
                value=item.get("value"),
                age_s=None if ts is None else max(0.0, now - float(ts)),
                status=item.get("status", "missing"),
                reason=item.get("reason", ""),
            )
    burn = _slo_burn(deployment)
    if burn is not None:
        out["slo_burn_rate"] = engine.Obs(value=burn, age_s=0.0, status="ok")
    return out


def short_window_burn(burn_rates: Mapping[str, Any] | None) -> float | None:
    """The highest short-window burn rate of one SLO evaluation (what the SLO boost reads)."""
    rates = [
        float(value)
        for window in _SLO_SHORT_WINDOWS
        if (value := (burn_rates or {}).get(window)) is not None
    ]
    return max(rates) if rates else None


def _slo_burn(deployment: Deployment) -> float | None:
    burns = [
        burn
        for rates in SloStatus.objects.filter(
            slo__deployment=deployment, slo__enabled=True
        ).values_list("burn_rates", flat=True)
        if (burn := short_window_burn(rates)) is not None
    ]
    return max(burns) if burns else None


def _starting(spec: int, ready: int, history: engine.History, now: float) -> tuple[float, ...]:
    """Start times of replicas not ready yet. The platform does not say when each started;
    the latest scale-up we applied is the best estimate, and without one they count as
    starting now, which only makes the cold-start hold longer (the safe side)."""
    missing = max(0, spec - ready)
    ups = [t for t, before, after in history.scale_events if after > before]
    started = max(ups) if ups else now
    return tuple([started] * missing)


# --------------------------------------------------------------------------- evaluate


def deployment_evaluate(
    *,
    deployment: Deployment,
    actuator: Actuator | None = None,
    actuator_factory: ActuatorFactory | None = None,
    now: float | None = None,
) -> DecisionRecord | None:
    """One evaluation. Returns the stored decision (None when autoscaling is off).

    Give the ``actuator``, or an ``actuator_factory`` to build it only when the policy is
    on. An actuator that cannot be built (refused or malformed credentials) or cannot read
    the target is recorded as a ``hold:target_unreadable`` decision with the reason, which
    raises the ``AutoscalerTargetUnreadable`` alert; the evaluation itself does not fail.
    """
    if (actuator is None) == (actuator_factory is None):
        raise TypeError("give exactly one of actuator and actuator_factory")
    now = time.time() if now is None else now
    policy_row = AutoscalingPolicy.objects.filter(deployment=deployment).first()
    if policy_row is None or policy_row.mode == Mode.OFF:
        return None
    policy = policy_row.to_engine()
    control, _ = DeploymentControl.objects.get_or_create(deployment=deployment)
    history = history_load(control.history)
    log = logger.bind(deployment=deployment.pk)
    try:
        if actuator is None:
            assert actuator_factory is not None
            actuator = actuator_factory(deployment)
        status = actuator.get_scale(scale_target_of(deployment))
    except ActuatorError as exc:
        log.warning(
            "scale-target-unreadable", error=str(exc), permanent_reason=exc.permanent_reason
        )
        return DecisionRecord.objects.create(
            deployment=deployment,
            at=timezone.now(),
            current_replicas=control.last_applied or 0,
            desired_replicas=control.last_applied or 0,
            rule="hold:target_unreadable",
            reason=f"Cannot read the scale target, holding: {exc}",
            events=[
                {
                    "kind": "target_unreadable",
                    "message": str(exc),
                    "retryable": exc.retryable,
                    "reason": exc.permanent_reason,
                }
            ],
            dry_run=policy_row.mode != Mode.ENFORCE,
        )
    replicas = engine.ReplicaState(
        spec=status.spec_replicas,
        ready=status.ready_replicas,
        starting=_starting(status.spec_replicas, status.ready_replicas, history, now),
        observed_spec=status.spec_replicas,
        last_applied=control.last_applied,
    )
    observations = observations_for(deployment, now)
    decision = engine.decide(policy, observations, history, now, replicas=replicas)
    desired, rule, reason = decision.desired_replicas, decision.rule, decision.reason
    pinned = (
        control.pinned_replicas is not None
        and control.pinned_until is not None
        and control.pinned_until > timezone.now()
    )
    if pinned:
        assert control.pinned_replicas is not None
        desired, rule = control.pinned_replicas, "pinned"
        reason = (
            f"Pinned at {desired} until {control.pinned_until:%H:%M} UTC; the policy "
            f"would have chosen {decision.desired_replicas} ({decision.rule})."
        )
    paused = control.paused or global_pause_active()
    enforce = policy_row.mode == Mode.ENFORCE and not paused
    with transaction.atomic():
        record = DecisionRecord.objects.create(
            deployment=deployment,
            at=timezone.now(),
            current_replicas=decision.current_replicas,
            desired_replicas=desired,
            rule=rule,
            reason=reason
            + (" Paused: not applied." if paused and desired != status.spec_replicas else ""),
            proposals=[asdict(p) for p in decision.proposals],
            events=[asdict(e) for e in decision.events]
            + ([{"kind": "warning", "message": w} for w in status.warnings]),
            inputs={
                "observations": {k: asdict(v) for k, v in observations.items()},
                "replicas": asdict(replicas),
                "now": now,
            },
            dry_run=not enforce,
        )
        action = None
        if enforce and desired != status.spec_replicas:
            ScaleAction.objects.filter(deployment=deployment, status=ActionStatus.PENDING).update(
                status=ActionStatus.SUPERSEDED, finished_at=timezone.now()
            )
            action = ScaleAction.objects.create(
                deployment=deployment,
                decision=record,
                from_replicas=status.spec_replicas,
                to_replicas=desired,
                # Deterministic: the same decision can never produce two different changes.
                idempotency_key=f"dep{deployment.pk}-d{record.pk}-{status.spec_replicas}to{desired}",
            )
            transaction.on_commit(lambda: _enqueue(action.pk) if action else None)
        new_history = history.advance(
            decision, now, applied=action is not None, keep_s=policy.history_horizon_s
        )
        signals = dict(new_history.signal_samples)
        for name, obs in observations.items():
            if obs.status == "ok" and obs.value is not None:
                kept = tuple(
                    s for s in signals.get(name, ()) if s[0] > now - policy.stable_window_s
                )
                signals[name] = (*kept, (now, float(obs.value)))
        control.history = history_dump(
            engine.History(
                new_history.recommendations,
                new_history.scale_events,
                new_history.load_samples,
                signals,
                new_history.panic_last_s,
            )
        )
        control.save(update_fields=["history"])
    log.info(
        "scale-decision",
        rule=rule,
        current=decision.current_replicas,
        desired=desired,
        dry_run=not enforce,
        action=action.pk if action else None,
    )
    return record


def _enqueue(action_id: int) -> None:
    from .tasks import execute_action

    execute_action.delay(action_id)


# --------------------------------------------------------------------------- act


class _CountingActuator:
    """Counts the calls that could change the world, for the action's record."""

    def __init__(self, inner: Actuator) -> None:
        self.inner = inner
        self.calls = 0

    def get_scale(self, target: ScaleTarget) -> Any:
        return self.inner.get_scale(target)

    def set_replicas(self, target: ScaleTarget, replicas: int, *, idempotency_key: str) -> Any:
        self.calls += 1
        return self.inner.set_replicas(target, replicas, idempotency_key=idempotency_key)

    def prepare_scale_down(
        self, target: ScaleTarget, remove: int, pod_load: dict[str, float] | None
    ) -> None:
        # Forwarded so that actuators which choose the pods to remove still get asked.
        if isinstance(self.inner, ScaleDownPreparer):
            self.inner.prepare_scale_down(target, remove, pod_load)


def deployment_lock(
    deployment_id: int, *, ttl_s: int | None = None
) -> AbstractContextManager[bool]:
    """The per-deployment lock in the shared cache: two workers never act on one
    deployment at once. It is also the lease of a running action: its TTL
    (``AUTOSCALING_ACTION_LEASE_S``) outlasts any apply, so a running action whose
    deployment lock is free has lost its worker."""
    ttl = settings.AUTOSCALING_ACTION_LEASE_S if ttl_s is None else ttl_s
    return cache_lock(f"autoscaling:lock:{deployment_id}", ttl_s=ttl)


def scale_action_execute(
    *,
    action_id: int,
    actuator_factory: ActuatorFactory,
    sleep: Callable[[float], None] = time.sleep,
) -> ScaleAction | None:
    """Apply one pending action. Returns it, or None if another worker has it or it was
    already handled (running twice is harmless)."""
    action = ScaleAction.objects.select_related("deployment").filter(id=action_id).first()
    if action is None or action.status != ActionStatus.PENDING:
        return None
    with deployment_lock(action.deployment_id) as acquired:
        if not acquired:
            logger.info("scale-action-lock-busy", action=action_id, deployment=action.deployment_id)
            return None
        claimed = ScaleAction.objects.filter(id=action_id, status=ActionStatus.PENDING).update(
            status=ActionStatus.RUNNING, started_at=timezone.now()
        )
        if claimed != 1:
            return None
        deployment = action.deployment
        counted: _CountingActuator | None = None
        try:
            # Inside the try: an actuator that cannot be built fails the action with the
            # reason instead of leaving it running.
            actuator = actuator_factory(deployment)
            counted = _CountingActuator(actuator)
            # Only an actuator that chooses which replicas go needs to know how busy each is.
            pod_load = (
                pod_load_read(deployment=deployment)
                if action.to_replicas < action.from_replicas
                and isinstance(actuator, ScaleDownPreparer)
                else None
            )
            result = apply_with_retry(
                counted,
                scale_target_of(deployment),
                action.to_replicas,
                idempotency_key=action.idempotency_key,
                attempts=settings.AUTOSCALING_APPLY_ATTEMPTS,
                sleep=sleep,
                pod_load=pod_load,
            )
        except ActuatorError as exc:
            ScaleAction.objects.filter(id=action_id).update(
                status=ActionStatus.FAILED,
                error=str(exc)[:4000],
                attempts=counted.calls if counted is not None else 0,
                finished_at=timezone.now(),
            )
            logger.error(
                "scale-action-failed",
                action=action_id,
                deployment=deployment.pk,
                retryable=exc.retryable,
                error=str(exc),
            )
        else:
            ScaleAction.objects.filter(id=action_id).update(
                status=ActionStatus.SUCCEEDED,
                finished_at=timezone.now(),
                error="; ".join(result.warnings)[:4000],
                attempts=counted.calls if counted is not None else 0,
            )
            DeploymentControl.objects.filter(deployment=deployment).update(
                last_applied=action.to_replicas
            )
            logger.info(
                "scale-action-applied",
                action=action_id,
                deployment=deployment.pk,
                to=action.to_replicas,
            )
    action.refresh_from_db()
    return action


# --------------------------------------------------------------------------- recover


def scale_actions_recover(*, max_age_s: float = 300.0) -> dict[str, list[int]]:
    """Running actions whose worker is gone (killed, lost, out of memory).

    A worker holds its deployment's lock from before the claim until the action is marked
    done, so a running action whose deployment lock can be taken has lost its worker. It
    goes back to pending under the same idempotency key (``evaluate_all`` sends every
    pending action right after calling this). The re-run re-reads the platform first, so
    a write that landed before the worker died is not made twice (``apply_with_retry``).
    The lock is held while the row changes, so no worker claims the deployment meanwhile.

    Not re-applied: an action with a newer action of its deployment (superseded: the newer
    one says what the deployment needs now), and one older than ``max_age_s`` (failed: a
    decision that old is stale, and an action that keeps killing its workers stops there;
    the next evaluation re-reads the platform). Returns the ids per outcome.
    """
    outcome: dict[str, list[int]] = {"requeued": [], "superseded": [], "failed": []}
    oldest = timezone.now() - timedelta(seconds=max_age_s)
    for action in ScaleAction.objects.filter(status=ActionStatus.RUNNING).order_by("id"):
        with deployment_lock(action.deployment_id) as acquired:
            if not acquired:
                continue  # its worker is still applying it (or another one is)
            running = ScaleAction.objects.filter(id=action.pk, status=ActionStatus.RUNNING)
            newer = ScaleAction.objects.filter(
                deployment_id=action.deployment_id, id__gt=action.pk
            ).exists()
            if newer:
                changed = running.update(
                    status=ActionStatus.SUPERSEDED,
                    finished_at=timezone.now(),
                    error="the worker applying it stopped; a newer action replaces it",
                )
                kind = "superseded"
            elif action.created_at < oldest:
                changed = running.update(
                    status=ActionStatus.FAILED,
                    finished_at=timezone.now(),
                    error="the worker applying it stopped and the action is too old to "
                    "apply again; the platform is re-read at the next evaluation",
                )
                kind = "failed"
            else:
                changed = running.update(status=ActionStatus.PENDING, started_at=None)
                kind = "requeued"
            if changed:
                outcome[kind].append(action.pk)
                logger.warning(
                    "scale-action-recovered",
                    action=action.pk,
                    deployment=action.deployment_id,
                    outcome=kind,
                    idempotency_key=action.idempotency_key,
                )
    return outcome
