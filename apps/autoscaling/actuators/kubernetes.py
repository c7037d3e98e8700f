"""Actuator for Kubernetes Deployments and StatefulSets, through the scale subresource.

Reads ``spec.replicas`` from the scale subresource and the ready count from the workload
(``status.readyReplicas``: the scale's ``status.replicas`` counts pods that exist, ready
or not). Writes are JSON merge patches of the scale subresource carrying the
``resourceVersion`` just read, so a concurrent change (a person, a GitOps sync, an HPA)
makes the write fail with a conflict instead of being silently overwritten; the retry
helper then re-reads and decides again.

A HorizontalPodAutoscaler targeting the same object would fight every change made here;
it is reported in ``ScaleStatus.warnings`` rather than treated as an error.

Before a scale-down of a Deployment, :meth:`KubernetesActuator.prepare_scale_down` sets
``controller.kubernetes.io/pod-deletion-cost`` on its pods from their load, so the
ReplicaSet controller removes the least busy ones (lower cost goes first; the controller
still prefers unscheduled, pending and unready pods over any cost). StatefulSets always
remove the highest ordinal, so there is nothing to choose for them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import structlog

from apps.integrations.kubernetes import KubernetesClient, KubernetesError, WorkloadKind

from .base import ActuatorError, ScaleStatus, ScaleTarget

__all__ = ["POD_DELETION_COST", "KubernetesActuator", "pod_deletion_costs"]

logger = structlog.get_logger("controlplane.autoscaling.actuators.kubernetes")

POD_DELETION_COST = "controller.kubernetes.io/pod-deletion-cost"

_WORKLOAD_KINDS: dict[str, WorkloadKind] = {
    "k8s-deployment": "deployment",
    "k8s-statefulset": "statefulset",
}
_KIND_NAMES: dict[WorkloadKind, str] = {"deployment": "Deployment", "statefulset": "StatefulSet"}


def _actuator_error(exc: KubernetesError) -> ActuatorError:
    return ActuatorError(
        exc.message,
        retryable=exc.retryable,
        conflict=exc.conflict,
        permanent_reason="" if exc.retryable else exc.reason or "failed",
    )


def pod_deletion_costs(
    pods: Iterable[str], pod_load: Mapping[str, float], remove: int
) -> dict[str, int]:
    """Deletion costs ranking ``pods`` from least to most busy.

    The ``remove`` least busy pods get negative costs (-remove for the least busy), so
    they rank below any pod without the annotation (cost 0, e.g. one created after this
    ran); the others get 0, 1, ... by increasing load. Pods with no known load rank as
    busier than every measured pod: we only volunteer pods we know to be idle.
    """
    names = sorted(set(pods))
    measured = sorted((n for n in names if n in pod_load), key=lambda n: (pod_load[n], n))
    unmeasured = [n for n in names if n not in pod_load]
    return {name: rank - remove for rank, name in enumerate([*measured, *unmeasured])}


class KubernetesActuator:
    """Scales ``k8s-deployment`` and ``k8s-statefulset`` targets of one cluster."""

    def __init__(self, client: KubernetesClient, *, check_hpa: bool = True) -> None:
        self.client = client
        self.check_hpa = check_hpa

    # ----------------------------------------------------------------- helpers

    @staticmethod
    def _kind(target: ScaleTarget) -> WorkloadKind:
        kind = _WORKLOAD_KINDS.get(target.kind)
        if kind is None:
            raise ActuatorError(
                f"the Kubernetes actuator cannot scale {target.kind} targets",
                retryable=False,
                permanent_reason="unsupported-target",
            )
        return kind

    def _hpa_warnings(self, kind: WorkloadKind, target: ScaleTarget) -> tuple[str, ...]:
        if not self.check_hpa:
            return ()
        try:
            hpas = self.client.list_horizontal_pod_autoscalers(target.namespace)
        except KubernetesError as exc:
            # Advisory only: a missing RBAC grant for HPAs must not block scaling.
            return (f"could not check for HorizontalPodAutoscalers: {exc.message}",)
        return tuple(
            f"HorizontalPodAutoscaler {hpa.namespace}/{hpa.name} also scales "
            f"{_KIND_NAMES[kind]} {target.namespace}/{target.name} "
            f"(min {hpa.min_replicas if hpa.min_replicas is not None else 1}, "
            f"max {hpa.max_replicas}); the two autoscalers will undo each other's changes"
            for hpa in hpas
            if hpa.target_kind == _KIND_NAMES[kind]
            and hpa.target_name == target.name
            and hpa.target_api_version in ("", "apps/v1")
        )

    # --------------------------------------------------------------- interface

    def get_scale(self, target: ScaleTarget) -> ScaleStatus:
        kind = self._kind(target)
        try:
            scale = self.client.read_scale(kind, target.namespace, target.name)
            workload = self.client.read_workload(kind, target.namespace, target.name)
        except KubernetesError as exc:
            raise _actuator_error(exc) from None
        return ScaleStatus(
            spec_replicas=scale.spec_replicas,
            ready_replicas=workload.ready_replicas,
            warnings=self._hpa_warnings(kind, target),
        )

    def set_replicas(
        self, target: ScaleTarget, replicas: int, *, idempotency_key: str
    ) -> ScaleStatus:
        kind = self._kind(target)
        log = logger.bind(target=str(target), replicas=replicas, idempotency_key=idempotency_key)
        try:
            scale = self.client.read_scale(kind, target.namespace, target.name)
            if scale.spec_replicas != replicas:
                scale = self.client.patch_scale(
                    kind,
                    target.namespace,
                    target.name,
                    replicas=replicas,
                    resource_version=scale.resource_version,
                )
                log.info("kubernetes-scale-patched", resource_version=scale.resource_version)
            else:
                log.info("kubernetes-scale-unchanged")
            workload = self.client.read_workload(kind, target.namespace, target.name)
        except KubernetesError as exc:
            raise _actuator_error(exc) from None
        return ScaleStatus(
            spec_replicas=scale.spec_replicas, ready_replicas=workload.ready_replicas
        )

    def prepare_scale_down(
        self, target: ScaleTarget, remove: int, pod_load: dict[str, float] | None
    ) -> None:
        """Mark the ``remove`` least busy pods of a Deployment to be deleted first."""
        kind = self._kind(target)
        log = logger.bind(target=str(target), remove=remove)
        if remove <= 0 or not pod_load:
            return
        if kind == "statefulset":
            log.info("pod-deletion-cost-not-applicable", reason="statefulset")
            return
        try:
            workload = self.client.read_workload(kind, target.namespace, target.name)
            if not workload.selector:
                raise ActuatorError(
                    f"Deployment {target.namespace}/{target.name} has an empty selector",
                    retryable=False,
                    permanent_reason="invalid",
                )
            pods = [
                p
                for p in self.client.list_pods(target.namespace, workload.selector)
                if not p.terminating
            ]
            costs = pod_deletion_costs((p.name for p in pods), pod_load, remove)
            for pod in pods:
                cost = str(costs[pod.name])
                if pod.annotations.get(POD_DELETION_COST) != cost:
                    self.client.patch_pod_annotations(
                        target.namespace, pod.name, {POD_DELETION_COST: cost}
                    )
        except KubernetesError as exc:
            raise _actuator_error(exc) from None
        log.info(
            "pod-deletion-cost-set",
            first_removed=sorted(costs, key=lambda n: costs[n])[:remove],
            pods=len(pods),
        )
