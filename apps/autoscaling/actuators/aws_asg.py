"""Actuator for AWS EC2 Auto Scaling groups: one instance is one replica.

``ScaleTarget.name`` is the group's name (``namespace`` is not used: the client already
fixes account and region). The desired capacity is always kept within the group's own
``MinSize``/``MaxSize``, because AWS rejects anything outside them; a request that had to
be clamped says so in ``ScaleStatus.warnings``. Writes use ``HonorCooldown=False``: the
control plane has its own stabilization and rate limits, and a cooldown would turn its
decision into a silent no-op.

A scale-down may name the instances to remove (``remove``: those a gateway already
drained, see apps/balancing/membership.py): each is terminated with the desired capacity
decremented (``TerminateInstanceInAutoScalingGroup``), so the group's termination policy
does not pick others; any further reduction is a plain desired-capacity change.

:meth:`AutoScalingGroupActuator.ensure_warm_pool` keeps the group's warm pool (instances
launched and initialized ahead of need, waiting ``Stopped``, ``Running`` or ``Hibernated``
outside the desired capacity) at a wanted size: it reads the pool, writes only when the
size or state differs, and deletes it for size 0. A scale-out then takes instances from
the pool, which skips the boot, image pull and model download of a cold instance.
Instances in the pool (``Warmed:*`` lifecycle states) are not balancing members.
"""

from __future__ import annotations

from collections.abc import Sequence

import botocore.exceptions
import structlog

from apps.integrations.aws import AutoScalingClient, AwsError, aws_error_from_exception

from .base import MAX_WARM_POOL_SIZE, WARM_POOL_STATES, ActuatorError, ScaleStatus, ScaleTarget

__all__ = ["AutoScalingGroupActuator", "actuator_error_from_aws"]

logger = structlog.get_logger("controlplane.autoscaling.actuators.aws_asg")


def actuator_error_from_aws(exc: AwsError | botocore.exceptions.ClientError) -> ActuatorError:
    """The :class:`ActuatorError` for an AWS failure (a raw ClientError is mapped first)."""
    error = exc if isinstance(exc, AwsError) else aws_error_from_exception(exc)
    return ActuatorError(
        error.message,
        retryable=error.retryable,
        permanent_reason="" if error.retryable else _permanent_reason(error.code),
    )


def _permanent_reason(code: str) -> str:
    return {
        "NotFound": "not-found",
        "ValidationError": "invalid",
        "NoCredentials": "unauthorized",
        "Misconfigured": "misconfigured",
    }.get(code, "forbidden" if "Denied" in code or "Unauthorized" in code else code or "failed")


class AutoScalingGroupActuator:
    """Scales ``aws-asg`` targets through one Auto Scaling client (one account/region)."""

    def __init__(self, client: AutoScalingClient) -> None:
        self.client = client

    @staticmethod
    def _check(target: ScaleTarget) -> None:
        if target.kind != "aws-asg":
            raise ActuatorError(
                f"the Auto Scaling group actuator cannot scale {target.kind} targets",
                retryable=False,
                permanent_reason="unsupported-target",
            )

    def get_scale(self, target: ScaleTarget) -> ScaleStatus:
        self._check(target)
        try:
            group = self.client.describe_group(target.name)
        except AwsError as exc:
            raise actuator_error_from_aws(exc) from None
        return ScaleStatus(
            spec_replicas=group.desired_capacity,
            ready_replicas=group.in_service,
            min_size=group.min_size,
            max_size=group.max_size,
        )

    def set_replicas(
        self,
        target: ScaleTarget,
        replicas: int,
        *,
        idempotency_key: str,
        remove: Sequence[str] = (),
    ) -> ScaleStatus:
        self._check(target)
        log = logger.bind(target=str(target), replicas=replicas, idempotency_key=idempotency_key)
        try:
            group = self.client.describe_group(target.name)
            desired = min(max(replicas, group.min_size), group.max_size)
            warnings: tuple[str, ...] = ()
            if desired != replicas:
                warnings = (
                    f"requested {replicas} instances but Auto Scaling group {group.name} "
                    f"allows {group.min_size}..{group.max_size}; set {desired}",
                )
                log.warning("asg-capacity-clamped", desired=desired)
            current = group.desired_capacity
            chosen = self._chosen(group.name, remove, current - desired) if remove else []
            for instance_id in chosen:
                self.client.terminate_instance(instance_id, decrement_desired=True)
                current -= 1
                log.info("asg-instance-terminated", instance_id=instance_id)
            if desired != current:
                self.client.set_desired_capacity(group.name, desired, honor_cooldown=False)
                log.info("asg-capacity-set", desired=desired)
            else:
                log.info("asg-capacity-unchanged", desired=desired)
        except AwsError as exc:
            raise actuator_error_from_aws(exc) from None
        return ScaleStatus(
            spec_replicas=desired,
            ready_replicas=group.in_service,
            min_size=group.min_size,
            max_size=group.max_size,
            warnings=warnings,
        )

    def ensure_warm_pool(self, target: ScaleTarget, size: int, state: str = "Stopped") -> bool:
        """Keep ``size`` instances of the group warm in ``state`` (``0``: no warm pool).

        Idempotent: the group and its pool are read first, and the pool written only when
        its minimum size or its state differs (or, for 0, when a pool exists). Returns
        whether AWS was written to.
        """
        self._check(target)
        if isinstance(size, bool) or not 0 <= size <= MAX_WARM_POOL_SIZE:
            raise ActuatorError(
                f"warm pool size must be an integer from 0 to {MAX_WARM_POOL_SIZE}, not {size!r}",
                retryable=False,
                permanent_reason="invalid",
            )
        if state not in WARM_POOL_STATES:
            raise ActuatorError(
                f"warm pool state must be one of {', '.join(WARM_POOL_STATES)}, not {state!r}",
                retryable=False,
                permanent_reason="invalid",
            )
        log = logger.bind(target=str(target), warm_pool_size=size, warm_pool_state=state)
        try:
            # The group first: a missing group is then ``not-found`` as everywhere else
            # (DescribeWarmPool alone answers a bare ValidationError).
            self.client.describe_group(target.name)
            current = self.client.describe_warm_pool(target.name)
            if size == 0:
                if current is None:
                    log.info("asg-warm-pool-unchanged")
                    return False
                self.client.delete_warm_pool(target.name)
                log.info("asg-warm-pool-deleted")
                return True
            if current is not None and current.min_size == size and current.state == state:
                log.info("asg-warm-pool-unchanged")
                return False
            # MaxGroupPreparedCapacity left unset: the group's MaxSize bounds group plus
            # pool, and MinSize keeps at least ``size`` warm even when that is reached.
            self.client.put_warm_pool(target.name, min_size=size, state=state)
            log.info("asg-warm-pool-set", previous=None if current is None else current.min_size)
            return True
        except AwsError as exc:
            raise actuator_error_from_aws(exc) from None

    def _chosen(self, group: str, remove: Sequence[str], removing: int) -> list[str]:
        """``remove``, checked: in service or pending in ``group``, named once, and no more
        than the scale-down removes (else a permanent ``invalid`` error, before any write)."""
        live = {
            i.instance_id
            for i in self.client.group_instances(group)
            if i.lifecycle_state == "InService" or i.lifecycle_state.startswith("Pending")
        }
        problem = ""
        if len(set(remove)) != len(remove):
            problem = "names an instance more than once"
        elif unknown := [i for i in remove if i not in live]:
            problem = f"names instances not in service in {group}: {', '.join(unknown)}"
        elif len(remove) > max(removing, 0):
            problem = f"names {len(remove)} instances but the scale-down removes {max(removing, 0)}"
        if problem:
            raise ActuatorError(f"remove {problem}", retryable=False, permanent_reason="invalid")
        return list(remove)
