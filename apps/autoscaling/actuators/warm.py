"""Warm capacity wanted by a deployment, read from its labels.

Two labels say how much pre-initialized capacity a deployment keeps beside its serving
replicas, so no model field is needed:

``autoscaling.llm-controlplane/warm-pool-size``
    How many instances (``aws-asg``) or standby replicas (``simulated``) to keep warm: a
    non-negative integer. ``0`` removes the warm pool. Absent: warm capacity is not
    managed (an existing pool is left alone).
``autoscaling.llm-controlplane/warm-pool-state``
    For Auto Scaling groups, the state pooled instances wait in: ``Stopped`` (default:
    only EBS volumes are billed), ``Running`` (billed as running, fastest to serve) or
    ``Hibernated`` (memory saved to EBS; the instance type must support hibernation).

:func:`warm_pool_of` parses them (a malformed value is a permanent ``invalid``
:class:`ActuatorError`, never a guess); :func:`ensure_deployment_warm_pool` applies them to
a deployment's Auto Scaling group through its actuator.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .base import ActuatorError

__all__ = [
    "LABEL_WARM_POOL_SIZE",
    "LABEL_WARM_POOL_STATE",
    "WARM_POOL_STATES",
    "WarmPool",
    "ensure_deployment_warm_pool",
    "warm_pool_of",
]

LABEL_WARM_POOL_SIZE = "autoscaling.llm-controlplane/warm-pool-size"
LABEL_WARM_POOL_STATE = "autoscaling.llm-controlplane/warm-pool-state"
WARM_POOL_STATES = ("Stopped", "Running", "Hibernated")
# A sanity bound: nobody keeps more warm GPU instances than this per group.
MAX_WARM_POOL_SIZE = 1000


@dataclass(frozen=True, slots=True)
class WarmPool:
    """The warm capacity wanted: ``size`` instances waiting in ``state``."""

    size: int
    state: str = "Stopped"


def _invalid(message: str) -> ActuatorError:
    return ActuatorError(message, retryable=False, permanent_reason="invalid")


def warm_pool_of(labels: Mapping[str, Any]) -> WarmPool | None:
    """The warm pool ``labels`` ask for; ``None`` when they do not ask for one."""
    raw_size = labels.get(LABEL_WARM_POOL_SIZE)
    raw_state = labels.get(LABEL_WARM_POOL_STATE)
    if raw_size is None:
        if raw_state is not None:
            raise _invalid(f"label {LABEL_WARM_POOL_STATE} needs {LABEL_WARM_POOL_SIZE} too")
        return None
    text = str(raw_size).strip()
    if not text.isdigit() or int(text) > MAX_WARM_POOL_SIZE:
        raise _invalid(
            f"label {LABEL_WARM_POOL_SIZE} must be an integer from 0 to "
            f"{MAX_WARM_POOL_SIZE}, not {raw_size!r}"
        )
    state = "Stopped" if raw_state is None else str(raw_state).strip()
    matches = [s for s in WARM_POOL_STATES if s.lower() == state.lower()]
    if not matches:
        raise _invalid(
            f"label {LABEL_WARM_POOL_STATE} must be one of {', '.join(WARM_POOL_STATES)}, "
            f"not {raw_state!r}"
        )
    return WarmPool(size=int(text), state=matches[0])


def ensure_deployment_warm_pool(deployment: Any) -> bool | None:
    """Bring the warm pool of ``deployment``'s Auto Scaling group to what its labels ask.

    Returns ``None`` when there is nothing to manage (not an ``aws-asg`` target, or no
    warm pool label), else whether AWS was written to. Raises :class:`ActuatorError`
    (mapped like every other actuator failure)."""
    from .factory import actuator_for, scale_target_of

    wanted = warm_pool_of(deployment.labels or {})
    target = scale_target_of(deployment)
    if wanted is None or target.kind != "aws-asg":
        return None
    from .aws_asg import AutoScalingGroupActuator

    actuator = actuator_for(deployment)
    assert isinstance(actuator, AutoScalingGroupActuator)
    return actuator.ensure_warm_pool(target, wanted.size, wanted.state)
