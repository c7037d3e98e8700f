"""Warm capacity wanted by a deployment, read from its labels.

Two labels say how much pre-initialized capacity a deployment keeps beside its serving
replicas, so no model field is needed:

``autoscaling.llm-controlplane/warm-pool-size``
    How many instances (``aws-asg``) or standby replicas (``simulated``, and
    ``k8s-deployment`` / ``k8s-statefulset`` pods asleep in vLLM's sleep mode, see
    :mod:`.standby`) to keep warm: a non-negative integer. ``0`` removes the warm pool
    (standby pods are removed, or woken when the serving count needs them). Absent: warm
    capacity is not managed (an existing pool is left alone).
``autoscaling.llm-controlplane/warm-pool-state``
    For Auto Scaling groups, the state pooled instances wait in: ``Stopped`` (default:
    only EBS volumes are billed), ``Running`` (billed as running, fastest to serve) or
    ``Hibernated`` (memory saved to EBS; the instance type must support hibernation).

:func:`warm_pool_of` parses them (a malformed value is a permanent ``invalid``
:class:`ActuatorError`, never a guess); :func:`ensure_deployment_warm_pool` applies them to
a deployment: its Auto Scaling group's warm pool through the group's actuator, its
standby replicas through the fleet simulator's ``/standby`` API, or its Kubernetes
workload's standby pods through :class:`.standby.StandbyKubernetesActuator` under the
deployment's lock (the state label does not apply to the last two: a standby is always
asleep). The simulator also reads the size label
when it builds its fleet from the inventory.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import requests

from .base import (
    LABEL_WARM_POOL_SIZE,
    LABEL_WARM_POOL_STATE,
    WARM_POOL_STATES,
    ActuatorError,
    ScaleTarget,
    WarmPool,
    warm_pool_of,
)

__all__ = [
    "LABEL_WARM_POOL_SIZE",
    "LABEL_WARM_POOL_STATE",
    "WARM_POOL_STATES",
    "WarmPool",
    "ensure_deployment_warm_pool",
    "warm_pool_of",
]


def ensure_deployment_warm_pool(deployment: Any) -> bool | None:
    """Bring the warm capacity of ``deployment`` to what its labels ask.

    Returns ``None`` when there is nothing to manage (no warm pool label), else whether
    the platform was written to. Raises :class:`ActuatorError` (mapped like every other
    actuator failure)."""
    from django.conf import settings

    from .factory import actuator_for, scale_target_of

    wanted = warm_pool_of(deployment.labels or {})
    target = scale_target_of(deployment)
    if wanted is None:
        return None
    if target.kind == "simulated":
        base_url = settings.FLEETSIM_URL or "http://127.0.0.1:9400"
        return ensure_simulator_standby(base_url, target, wanted.size)
    if target.kind in ("k8s-deployment", "k8s-statefulset"):
        return ensure_kubernetes_standby(deployment, target)
    if target.kind != "aws-asg":
        return None
    from .aws_asg import AutoScalingGroupActuator

    actuator = actuator_for(deployment)
    assert isinstance(actuator, AutoScalingGroupActuator)
    return actuator.ensure_warm_pool(target, wanted.size, wanted.state)


def ensure_kubernetes_standby(deployment: Any, target: ScaleTarget) -> bool:
    """Reconcile a Kubernetes workload's standby pods at its current serving count, under
    the deployment's lock (a scale action in progress has it: this run writes nothing and
    the next one reconciles). Returns whether anything was changed."""
    import structlog

    from ..locks import deployment_lock
    from .factory import actuator_for
    from .standby import StandbyKubernetesActuator

    actuator = actuator_for(deployment)
    assert isinstance(actuator, StandbyKubernetesActuator)
    with deployment_lock(deployment.pk) as acquired:
        if not acquired:
            return False
        steps = actuator.reconcile(target)
    if steps:
        structlog.get_logger("controlplane.autoscaling").info(
            "standby-reconciled", deployment=deployment.pk, target=str(target), steps=steps
        )
    return bool(steps)


def ensure_simulator_standby(
    base_url: str, target: ScaleTarget, size: int, *, timeout_s: float = 5.0
) -> bool:
    """Keep ``size`` standby replicas for a simulated deployment (read, then write only on
    change); returns whether the simulator was written to."""
    url = (
        f"{base_url.rstrip('/')}/standby/"
        f"{quote(target.namespace, safe='')}/{quote(target.name, safe='')}"
    )
    current = _simulator_call("GET", url, None, timeout_s)
    if current.get("standby_target") == size:
        return False
    _simulator_call("PUT", url, {"replicas": size}, timeout_s)
    return True


def _simulator_call(
    method: str, url: str, body: dict[str, int] | None, timeout_s: float
) -> dict[str, Any]:
    action = f"{method} {url}"
    try:
        response = requests.request(method, url, json=body, timeout=timeout_s)
    except requests.RequestException as exc:
        raise ActuatorError(f"{action}: simulator unreachable: {exc}", retryable=True) from None
    try:
        payload = response.json()
    except ValueError:
        payload = None
    if response.status_code != 200 or not isinstance(payload, dict):
        detail = payload.get("error") if isinstance(payload, dict) else response.text[:200]
        retryable = response.status_code >= 500
        raise ActuatorError(
            f"{action}: simulator answered {response.status_code}: {detail}",
            retryable=retryable,
            permanent_reason=""
            if retryable
            else "not-found"
            if response.status_code == 404
            else "invalid",
        )
    return payload


def warm_capacity_sync_all() -> dict[str, list[int]]:
    """Bring every active deployment that carries the warm-pool label to what it asks
    (read, compare, write only on a change: running it again is harmless). A deployment
    that fails is logged and tried again at the next run; the others go on. Returns the
    deployment ids per outcome (``changed``, ``unchanged``, ``failed``)."""
    import structlog

    from apps.inventory.models import Deployment, DeploymentStatus

    logger = structlog.get_logger("controlplane.autoscaling")
    outcome: dict[str, list[int]] = {"changed": [], "unchanged": [], "failed": []}
    deployments = (
        Deployment.objects.filter(
            status=DeploymentStatus.ACTIVE, labels__has_key=LABEL_WARM_POOL_SIZE
        )
        .select_related("cluster")
        .order_by("pk")
    )
    for deployment in deployments:
        try:
            written = ensure_deployment_warm_pool(deployment)
        except ActuatorError as exc:
            outcome["failed"].append(deployment.pk)
            logger.warning(
                "warm-capacity-failed",
                deployment=deployment.pk,
                retryable=exc.retryable,
                error=str(exc),
            )
            continue
        if written is None:
            continue
        outcome["changed" if written else "unchanged"].append(deployment.pk)
        if written:
            wanted = warm_pool_of(deployment.labels or {})
            logger.info(
                "warm-capacity-changed",
                deployment=deployment.pk,
                size=wanted.size if wanted else None,
                state=wanted.state if wanted else None,
            )
    return outcome
