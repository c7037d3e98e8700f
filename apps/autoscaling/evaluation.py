"""The live control loop's evaluation: decide for one deployment and record the decision.

Every AUTOSCALING_INTERVAL_S, one task per deployment: observations (latest collected
metrics + SLO burn) and the platform's replica counts go through the same pure
``engine.step`` the backtest uses; every decision is stored with its inputs, also in
dry-run. A change in enforce mode becomes a ScaleAction with a deterministic idempotency
key; older pending actions of the deployment are superseded. Applying the action is
apps/autoscaling/actions.py's part.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict
from functools import partial
from typing import Any

import structlog
from django.db import transaction
from django.utils import timezone

from apps.balancing.members import Member
from apps.inventory.models import Deployment
from apps.metrics.fastpath import FastReader
from apps.metrics.selectors import latest_observations
from apps.slos.selectors import deployment_burn_rate

from . import engine
from .actuators.base import Actuator, ActuatorError
from .actuators.factory import ActuatorFactory, scale_target_of
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
        capacity=_capacity_load(raw.get("capacity")),
        demand_samples=tuple((float(t), float(v)) for t, v in raw.get("demand_samples", ())),
        demand_buckets=tuple(
            (float(t), float(v), int(n)) for t, v, n in raw.get("demand_buckets", ())
        ),
    )


def _capacity_load(raw: Any) -> engine.Capacity | None:
    """The learned capacity, or None when absent or unreadable (then it is learned again)."""
    try:
        per_replica, intervals = raw
        return engine.Capacity(float(per_replica), int(intervals))
    except (TypeError, ValueError):
        return None


def history_dump(history: engine.History) -> dict[str, Any]:
    return {
        "recommendations": [list(r) for r in history.recommendations],
        "scale_events": [list(e) for e in history.scale_events],
        "load_samples": [list(s) for s in history.load_samples],
        "signal_samples": {k: [list(s) for s in v] for k, v in history.signal_samples.items()},
        "panic_last_s": history.panic_last_s,
        "capacity": None if history.capacity is None else list(history.capacity),
        "demand_samples": [list(s) for s in history.demand_samples],
        "demand_buckets": [list(b) for b in history.demand_buckets],
    }


# --------------------------------------------------------------------------- inputs


def observations_for(
    deployment: Deployment, now: float, fast: Mapping[str, float] | None = None
) -> dict[str, engine.Obs]:
    """Latest collected observations; a deployment never collected has none (→ hold).
    ``fast``: totals just read from the replicas themselves (apps.metrics.fastpath), which
    replace the collected values of the same signals."""
    stored = latest_observations(deployment_ids=[deployment.pk]).get(deployment.pk, {})
    out = {
        signal: engine.Obs(
            value=obs.value, age_s=obs.age_s(now), status=obs.status, reason=obs.reason
        )
        for signal, obs in stored.items()
    }
    for signal, value in (fast or {}).items():
        out[signal] = engine.Obs(value=value, age_s=0.0)
    burn = deployment_burn_rate(deployment_ids=[deployment.pk]).get(deployment.pk)
    if burn is not None:
        out["slo_burn_rate"] = engine.Obs(value=burn, age_s=0.0, status="ok")
    return out


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
    enqueue: Callable[[int], None] | None = None,
    now: float | None = None,
    fast: Mapping[str, float] | None = None,
) -> DecisionRecord | None:
    """One evaluation. Returns the stored decision (None when autoscaling is off).

    ``fast``: signal totals read from the replicas themselves a moment ago, used instead of
    the collected values of those signals (see :func:`fast_path_evaluate`).

    ``enqueue`` sends a new scale action to a worker once the decision is committed;
    without it the action waits, pending, for the next ``scale_actions_resume``.

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
    observations = observations_for(deployment, now, fast)
    pinned = (
        control.pinned_replicas is not None
        and control.pinned_until is not None
        and control.pinned_until > timezone.now()
    )
    paused = control.paused or global_pause_active()
    enforce = policy_row.mode == Mode.ENFORCE and not paused

    def applied(decision: engine.Decision) -> bool:
        """Enforced, and the count to set (the pin's, if pinned) differs from the target's."""
        to_set = control.pinned_replicas if pinned else decision.desired_replicas
        return enforce and to_set != status.spec_replicas

    decision, new_history = engine.step(
        policy,
        observations,
        history,
        now,
        replicas=replicas,
        applied=applied,
        between_scrapes=bool(fast),
    )
    desired, rule, reason = decision.desired_replicas, decision.rule, decision.reason
    if pinned:
        assert control.pinned_replicas is not None
        desired, rule = control.pinned_replicas, "pinned"
        reason = (
            f"Pinned at {desired} until {control.pinned_until:%H:%M} UTC; the policy "
            f"would have chosen {decision.desired_replicas} ({decision.rule})."
        )
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
        if applied(decision):
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
            if enqueue is not None:
                transaction.on_commit(partial(enqueue, action.pk))
        control.history = history_dump(new_history)
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


# --------------------------------------------------------------------------- fast path


def fast_path_evaluate(
    *,
    deployment: Deployment,
    reader: FastReader,
    members: Sequence[Member],
    actuator_factory: ActuatorFactory,
    enqueue: Callable[[int], None] | None = None,
    now: float | None = None,
) -> DecisionRecord | None:
    """Read the serving members' own metrics and, when they ask for more replicas than are
    set or on the way, evaluate at once with them instead of waiting for the next scrape
    (a burst). Otherwise nothing is recorded: the regular loop decides everything else,
    scale-downs included. For policies that size from demand only; the caller holds the
    deployment's evaluation lock (as ``autoscaling.evaluate`` does)."""
    now = time.time() if now is None else now
    policy_row = AutoscalingPolicy.objects.filter(deployment=deployment).first()
    if policy_row is None or policy_row.mode == Mode.OFF:
        return None
    policy = policy_row.to_engine()
    if not policy.sizes_by_demand:
        return None
    reading = reader.read(members)
    if not reading.values:
        if reading.failed:
            logger.info("fast-path-unreadable", deployment=deployment.pk, failed=reading.failed)
        return None
    control = DeploymentControl.objects.filter(deployment=deployment).first()
    history = history_load(control.history if control else None)
    serving = len(reading.read)
    known = max(serving, (control.last_applied or 0) if control else 0)
    replicas = engine.ReplicaState(spec=known, ready=serving)
    observations = observations_for(deployment, now, reading.values)
    quick = engine.decide(policy, observations, history, now, replicas=replicas)
    if quick.recommendation <= known:
        return None
    return deployment_evaluate(
        deployment=deployment,
        actuator_factory=actuator_factory,
        enqueue=enqueue,
        now=now,
        fast=reading.values,
    )
