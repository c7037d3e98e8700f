"""Scale actions: claim one and apply it, and recover the ones whose worker died.

An action is a change decided in enforce mode (apps/autoscaling/evaluation.py). A worker
claims it with a conditional update (pending → running) while holding the deployment's
lock, so two workers never act on one deployment at once, and applies it through the
actuator with retries (apps.autoscaling.actuators.base.apply_with_retry). A running action
whose deployment lock is free has lost its worker: it is requeued, superseded or failed.

A scale-down of a deployment behind gateways drains first (apps/balancing/drain.py): the
members it removes leave every gateway's upstreams, their requests finish, and only then
does the actuator remove exactly them. The drain runs under the deployment's lock and ends
before its lease does; the action's ``drain`` field records it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import structlog
from django.conf import settings
from django.utils import timezone

from apps.balancing import drain as balancing_drain
from apps.balancing import membership
from apps.metrics.services import pod_load_read

from .actuators.base import (
    Actuator,
    ActuatorError,
    ScaleDownPreparer,
    ScaleTarget,
    apply_with_retry,
    set_replicas_options,
)
from .actuators.factory import ActuatorFactory, scale_target_of
from .locks import deployment_lock
from .models import ActionStatus, DeploymentControl, ScaleAction

logger = structlog.get_logger("controlplane.autoscaling")

# After a drained removal, how long to wait at most for the platform to list the removed
# members as leaving, before their draining marks go.
SETTLE_S = 10.0


class _CountingActuator:
    """Counts the calls that could change the world, for the action's record."""

    def __init__(self, inner: Actuator) -> None:
        self.inner = inner
        self.calls = 0

    def get_scale(self, target: ScaleTarget) -> Any:
        return self.inner.get_scale(target)

    def set_replicas(
        self, target: ScaleTarget, replicas: int, *, idempotency_key: str, **options: Any
    ) -> Any:
        self.calls += 1
        return self.inner.set_replicas(target, replicas, idempotency_key=idempotency_key, **options)

    def prepare_scale_down(
        self, target: ScaleTarget, remove: int, pod_load: dict[str, float] | None
    ) -> None:
        # Forwarded so that actuators which choose the pods to remove still get asked.
        if isinstance(self.inner, ScaleDownPreparer):
            self.inner.prepare_scale_down(target, remove, pod_load)


def _drain_begin(
    *,
    action: ScaleAction,
    actuator: Actuator,
    pod_load: dict[str, float] | None,
    budget_s: float,
) -> balancing_drain.Drain | dict[str, Any] | None:
    """Start draining the members a scale-down removes, when gateways render the
    deployment: the drain, a record of why none could start, or None (no gateway, or
    nothing to remove)."""
    deployment = action.deployment
    gateways = balancing_drain.gateways_rendering(deployment=deployment)
    if not gateways:
        return None
    try:
        current = actuator.get_scale(scale_target_of(deployment)).spec_replicas
    except ActuatorError:
        current = action.from_replicas  # the apply re-reads, and retries, anyway
    count = current - action.to_replicas
    if count <= 0:
        return None
    try:
        members = list(membership.members_of(deployment=deployment))
    except membership.MembershipError as exc:
        return {"members": [], "outcome": "not-drained", "error": f"members: {exc.message}"}
    if pod_load is None:
        measured = balancing_drain.members_in_flight(
            deployment=deployment, names=[m.name for m in members]
        )
        pod_load = {name: n for name, n in measured.items() if n is not None}
    chosen = membership.members_to_remove(
        members, count, load=pod_load, order=membership.removal_order_for(deployment.target_kind)
    )
    if not chosen:
        return None
    return balancing_drain.drain_prepare(
        deployment=deployment,
        action_id=action.pk,
        members=chosen,
        gateways=gateways,
        budget_s=budget_s,
    )


def _removal_options(
    actuator: Actuator, names: list[str], pod_load: dict[str, float] | None
) -> tuple[dict[str, Any], dict[str, float] | None]:
    """How to make ``actuator`` remove exactly ``names``: the options of its
    ``set_replicas`` (simulator, Auto Scaling groups) or, for an actuator that chooses the
    pods itself (Kubernetes Deployments), a load that ranks them least busy of all."""
    accepted = set_replicas_options(actuator)
    options: dict[str, Any] = {}
    if "remove" in accepted:
        options["remove"] = names
        if "drain_s" in accepted:
            # A backstop: a request that still reached them finishes instead of failing.
            options["drain_s"] = settings.BALANCING_DRAIN_TIMEOUT_S
    elif isinstance(actuator, ScaleDownPreparer):
        pod_load = {**(pod_load or {}), **dict.fromkeys(names, -1.0)}
    return options, pod_load


def _drain_budget_s(locked_at: float, clock: Callable[[], float]) -> float:
    """The drain's timeout, cut so that the apply after it ends within the lease."""
    lease_left = settings.AUTOSCALING_ACTION_LEASE_S - (clock() - locked_at)
    return max(
        0.0,
        min(
            settings.BALANCING_DRAIN_TIMEOUT_S,
            lease_left - settings.AUTOSCALING_APPLY_TIME_LIMIT_S,
        ),
    )


def scale_action_execute(
    *,
    action_id: int,
    actuator_factory: ActuatorFactory,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> ScaleAction | None:
    """Apply one pending action. Returns it, or None if another worker has it or it was
    already handled (running twice is harmless). ``sleep`` and ``clock`` pace the retries
    and a drain before a scale-down."""
    action = ScaleAction.objects.select_related("deployment").filter(id=action_id).first()
    if action is None or action.status != ActionStatus.PENDING:
        return None
    with deployment_lock(action.deployment_id) as acquired:
        if not acquired:
            logger.info("scale-action-lock-busy", action=action_id, deployment=action.deployment_id)
            return None
        locked_at = clock()
        claimed = ScaleAction.objects.filter(id=action_id, status=ActionStatus.PENDING).update(
            status=ActionStatus.RUNNING, started_at=timezone.now()
        )
        if claimed != 1:
            return None
        deployment = action.deployment
        counted: _CountingActuator | None = None
        drain: balancing_drain.Drain | None = None
        drain_record: dict[str, Any] | None = None
        try:
            # Inside the try: an actuator that cannot be built fails the action with the
            # reason instead of leaving it running.
            actuator = actuator_factory(deployment)
            counted = _CountingActuator(actuator)
            scale_down = action.to_replicas < action.from_replicas
            # Only an actuator that chooses which replicas go needs to know how busy each is.
            pod_load = (
                pod_load_read(deployment=deployment)
                if scale_down and isinstance(actuator, ScaleDownPreparer)
                else None
            )
            options: dict[str, Any] = {}
            if scale_down:
                begun = _drain_begin(
                    action=action,
                    actuator=actuator,
                    pod_load=pod_load,
                    budget_s=_drain_budget_s(locked_at, clock),
                )
                if isinstance(begun, balancing_drain.Drain):
                    drain = begun
                    _drain_save(action_id, drain.record)
                    balancing_drain.drain_run(
                        drain,
                        timeout_s=_drain_budget_s(locked_at, clock),
                        poll_s=settings.BALANCING_DRAIN_POLL_S,
                        clock=clock,
                        sleep=sleep,
                    )
                    _drain_save(action_id, drain.record)
                    options, pod_load = _removal_options(actuator, drain.names, pod_load)
                else:
                    drain_record = begun
            result = apply_with_retry(
                counted,
                scale_target_of(deployment),
                action.to_replicas,
                idempotency_key=action.idempotency_key,
                attempts=settings.AUTOSCALING_APPLY_ATTEMPTS,
                sleep=sleep,
                pod_load=pod_load,
                options=options,
            )
        except ActuatorError as exc:
            if drain is not None:
                drain_record = balancing_drain.drain_finish(drain, removed=False, error=str(exc))
                drain = None
            ScaleAction.objects.filter(id=action_id).update(
                status=ActionStatus.FAILED,
                error=str(exc)[:4000],
                attempts=counted.calls if counted is not None else 0,
                finished_at=timezone.now(),
                **({"drain": drain_record} if drain_record is not None else {}),
            )
            logger.error(
                "scale-action-failed",
                action=action_id,
                deployment=deployment.pk,
                retryable=exc.retryable,
                error=str(exc),
            )
        else:
            if drain is not None:
                balancing_drain.drain_settle(
                    drain,
                    timeout_s=min(SETTLE_S, _drain_budget_s(locked_at, clock)),
                    poll_s=settings.BALANCING_DRAIN_POLL_S,
                    clock=clock,
                    sleep=sleep,
                )
                drain_record = balancing_drain.drain_finish(drain, removed=True)
                drain = None
            ScaleAction.objects.filter(id=action_id).update(
                status=ActionStatus.SUCCEEDED,
                finished_at=timezone.now(),
                error="; ".join(result.warnings)[:4000],
                attempts=counted.calls if counted is not None else 0,
                **({"drain": drain_record} if drain_record is not None else {}),
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
        finally:
            if drain is not None:
                # Interrupted (a time limit, a lost database): the members return.
                _drain_save(
                    action_id,
                    balancing_drain.drain_finish(
                        drain, removed=False, error="the action was interrupted"
                    ),
                )
    action.refresh_from_db()
    return action


def _drain_save(action_id: int, record: dict[str, Any]) -> None:
    ScaleAction.objects.filter(id=action_id).update(drain=record)


# --------------------------------------------------------------------------- recover


def scale_actions_recover(*, max_age_s: float = 300.0) -> dict[str, list[int]]:
    """Running actions whose worker is gone (killed, lost, out of memory).

    A worker holds its deployment's lock from before the claim until the action is marked
    done, so a running action whose deployment lock can be taken has lost its worker. It
    goes back to pending under the same idempotency key (``scale_actions_resume`` sends every
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


def scale_actions_resume(*, enqueue: Callable[[int], None]) -> list[int]:
    """Send every pending action to a worker again, after recovering the running ones whose
    worker died (they go back to pending or are closed). Pending actions left behind (a
    lost enqueue, a busy lock) are picked up here. Returns the ids sent."""
    scale_actions_recover()
    pending = list(
        ScaleAction.objects.filter(status=ActionStatus.PENDING).values_list("pk", flat=True)
    )
    for action_id in pending:
        enqueue(action_id)
    return pending
