"""Standby replicas of Kubernetes workloads through vLLM's sleep mode.

A deployment labelled ``autoscaling.llm-controlplane/warm-pool-size: N`` (apps/autoscaling/
actuators/warm.py) on a ``k8s-deployment`` or ``k8s-statefulset`` target keeps ``N`` pods of
its workload loaded and asleep beside the serving ones: the workload runs ``serving + N``
pods, and ``N`` of them have put their model to sleep with vLLM's ``POST /sleep?level=1``
(weights copied to CPU memory, KV cache freed). Waking one (``POST /wake_up``) takes seconds
instead of a cold start. vLLM serves these endpoints only when started with
``--enable-sleep-mode`` and the environment variable ``VLLM_SERVER_DEV_MODE=1``.

A sleeping pod carries the pod label ``autoscaling.llm-controlplane/standby=asleep``
(:data:`~apps.integrations.kubernetes.STANDBY_POD_LABEL`): balancing membership leaves it
out, so no gateway routes to it and no drain names it. The label goes on before the pod is
put to sleep and comes off only after ``GET /is_sleeping`` confirms it woke. The
workload's annotation ``autoscaling.llm-controlplane/standby-replicas`` says how many of
its ``spec.replicas`` are standby; the count and the annotation are written in one merge
patch carrying the ``resourceVersion`` just read, so they never disagree and a concurrent
change is a conflict, re-read and retried.

:meth:`StandbyKubernetesActuator.set_replicas` is given the *serving* count the autoscaler
wants (``get_scale`` reports the serving count too, so the engine never counts standby
pods) and reconciles (:meth:`StandbyKubernetesActuator.reconcile`):

1. scale-up: wake standby pods first, as many as the new serving count needs;
2. scale-down: put serving pods to sleep (the least busy first) until ``N`` are asleep,
   before any pod is removed; pods still cold-starting that the workload does not need
   are the ones Kubernetes removes first;
3. the workload goes to ``serving + N`` (the pods that refill the standby cold-start in
   the background and are put to sleep once ready, at the next reconcile: the periodic
   ``autoscaling.warm_capacity_sync`` or the next action); before a removal, pod deletion
   costs rank surplus standby pods first, then serving pods by load, and the standby pods
   kept last.

Every step is idempotent (a pod already asleep or awake is left as it is) and the steps
taken are returned as the action's record (``ScaleStatus.warnings``, stored with the
action). Each pod call is retried with exponential backoff and jitter (tenacity); a pod
that still fails makes the apply fail retryably, and ``apply_with_retry`` re-reads and
reconciles again. Pod addresses come from the API server and are still checked before any
connection with the fast path's rule (:func:`apps.metrics.fastpath.member_refusal`: IP
literals only, never link-local, multicast, unspecified or reserved; pod networks' private
ranges allowed; loopback only within ``OUTBOUND_ALLOWED_NETWORKS``).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import requests
import structlog
import tenacity

from apps.core.digits import ascii_int
from apps.integrations.kubernetes import (
    STANDBY_ASLEEP,
    STANDBY_POD_LABEL,
    KubernetesClient,
    KubernetesError,
    PodInfo,
    WorkloadInfo,
    WorkloadKind,
)
from apps.metrics.fastpath import member_refusal

from .base import ActuatorError, ScaleStatus, ScaleTarget
from .kubernetes import POD_DELETION_COST, KubernetesActuator, _actuator_error

__all__ = [
    "STANDBY_ASLEEP",
    "STANDBY_REPLICAS_ANNOTATION",
    "StandbyKubernetesActuator",
    "VllmSleep",
    "pod_port",
]

logger = structlog.get_logger("controlplane.autoscaling.actuators.standby")

STANDBY_REPLICAS_ANNOTATION = "autoscaling.llm-controlplane/standby-replicas"
DEFAULT_PORT = 8000  # vLLM's


def pod_port(pod: PodInfo, wanted: str = "") -> int:
    """Where ``pod``'s model server listens: ``wanted`` (a port number, or a container port
    name, from the deployment label ``balancing.llm-controlplane/port``), else the
    container port named ``http``, else its only container port, else 8000."""
    port = ascii_int(wanted, max_digits=5)
    if port is not None:
        return port
    if wanted:
        if wanted not in pod.ports:
            raise ActuatorError(
                f"pod {pod.name} has no container port named {wanted!r}",
                retryable=False,
                permanent_reason="misconfigured",
            )
        return pod.ports[wanted]
    if "http" in pod.ports:
        return pod.ports["http"]
    if len(pod.ports) == 1:
        return next(iter(pod.ports.values()))
    return DEFAULT_PORT


@dataclass
class VllmSleep:
    """vLLM's sleep-mode endpoints on one pod at a time, each call retried with backoff."""

    timeout_s: float = 30.0
    attempts: int = 3
    base_delay_s: float = 0.5
    sleep: Callable[[float], None] = time.sleep
    session: requests.Session = field(default_factory=requests.Session)

    def __post_init__(self) -> None:
        self.session.trust_env = False  # no environment proxies: pods are called directly

    def _url(self, pod: PodInfo, port: int, path: str) -> str:
        if not pod.ip:
            raise ActuatorError(
                f"pod {pod.name} has no IP address yet", retryable=True, permanent_reason=""
            )
        refusal = member_refusal(pod.ip)
        if refusal is not None:
            raise ActuatorError(
                f"pod {pod.name}: {refusal}; the control plane does not call it "
                "(an operator can allow a network with OUTBOUND_ALLOWED_NETWORKS)",
                retryable=False,
                permanent_reason="misconfigured",
            )
        host = f"[{pod.ip}]" if ":" in pod.ip else pod.ip
        return f"http://{host}:{port}{path}"

    def _once(self, method: str, url: str, pod: str) -> Any:
        action = f"{method} {url} (pod {pod})"
        try:
            response = self.session.request(
                method, url, timeout=self.timeout_s, allow_redirects=False
            )
        except requests.RequestException as exc:
            raise ActuatorError(f"{action}: {type(exc).__name__}: {exc}", retryable=True) from None
        if response.status_code == 404:
            raise ActuatorError(
                f"{action}: 404; the model server has no sleep mode (start vLLM with "
                "--enable-sleep-mode and VLLM_SERVER_DEV_MODE=1)",
                retryable=False,
                permanent_reason="misconfigured",
            )
        if response.status_code != 200:
            raise ActuatorError(
                f"{action}: answered HTTP {response.status_code}: {response.text[:200]}",
                retryable=True,
            )
        try:
            return response.json() if response.content else None
        except ValueError:
            return None  # vLLM answers /sleep and /wake_up with an empty 200

    def _retrying(self, call: Callable[[], bool]) -> bool:
        def wait(state: tenacity.RetryCallState) -> float:
            backoff = self.base_delay_s * 2 ** (state.attempt_number - 1)
            return float(backoff * random.uniform(1.0, 1.5))

        retrying = tenacity.Retrying(
            stop=tenacity.stop_after_attempt(self.attempts),
            wait=wait,
            retry=tenacity.retry_if_exception(
                lambda exc: isinstance(exc, ActuatorError) and exc.retryable
            ),
            sleep=self.sleep,
            reraise=True,
        )
        return bool(retrying(call))

    def is_sleeping(self, pod: PodInfo, port: int) -> bool:
        url = self._url(pod, port, "/is_sleeping")
        payload = self._once("GET", url, pod.name)
        if not isinstance(payload, dict) or not isinstance(payload.get("is_sleeping"), bool):
            raise ActuatorError(
                f"GET {url} (pod {pod.name}): no is_sleeping in the answer", retryable=True
            )
        return bool(payload["is_sleeping"])

    def _set(self, pod: PodInfo, port: int, asleep: bool) -> None:
        path = "/sleep?level=1" if asleep else "/wake_up"
        url = self._url(pod, port, path)

        def call() -> bool:
            if self.is_sleeping(pod, port) == asleep:
                return True  # already there: nothing to send
            self._once("POST", url, pod.name)
            if self.is_sleeping(pod, port) != asleep:
                raise ActuatorError(
                    f"pod {pod.name} still reports is_sleeping={not asleep} after POST {path}",
                    retryable=True,
                )
            return True

        self._retrying(call)

    def put_to_sleep(self, pod: PodInfo, port: int) -> None:
        """``POST /sleep?level=1``, confirmed by ``GET /is_sleeping``."""
        self._set(pod, port, True)

    def wake_up(self, pod: PodInfo, port: int) -> None:
        """``POST /wake_up``, confirmed by ``GET /is_sleeping``."""
        self._set(pod, port, False)


def _standby_applied(workload: WorkloadInfo) -> int:
    raw = str(workload.annotations.get(STANDBY_REPLICAS_ANNOTATION, "0")).strip()
    return ascii_int(raw) or 0


def _asleep(pod: PodInfo) -> bool:
    return pod.labels.get(STANDBY_POD_LABEL) == STANDBY_ASLEEP


class StandbyKubernetesActuator(KubernetesActuator):
    """A Kubernetes actuator that keeps ``standby`` pods of each target asleep; replica
    counts in and out are serving counts (see the module docstring)."""

    def __init__(
        self,
        client: KubernetesClient,
        *,
        standby: int,
        port: str = "",
        sleeper: VllmSleep | None = None,
        check_hpa: bool = True,
    ) -> None:
        super().__init__(client, check_hpa=check_hpa)
        self.standby = standby
        self.port = port
        self.sleeper = sleeper or VllmSleep()
        self._pod_load: dict[str, float] = {}

    def _read(self, kind: WorkloadKind, target: ScaleTarget) -> tuple[WorkloadInfo, list[PodInfo]]:
        workload = self.client.read_workload(kind, target.namespace, target.name)
        if not workload.selector:
            raise ActuatorError(
                f"{target} has an empty selector", retryable=False, permanent_reason="invalid"
            )
        pods = [
            p
            for p in self.client.list_pods(target.namespace, workload.selector)
            if not p.terminating
        ]
        return workload, pods

    def get_scale(self, target: ScaleTarget) -> ScaleStatus:
        kind = self._kind(target)
        try:
            workload, pods = self._read(kind, target)
        except KubernetesError as exc:
            raise _actuator_error(exc) from None
        serving = max(0, workload.spec_replicas - _standby_applied(workload))
        awake_ready = sum(1 for p in pods if p.ready and not _asleep(p))
        return ScaleStatus(
            spec_replicas=serving,
            ready_replicas=min(serving, awake_ready),
            warnings=self._hpa_warnings(kind, target),
        )

    def prepare_scale_down(
        self, target: ScaleTarget, remove: int, pod_load: dict[str, float] | None
    ) -> None:
        """Remember how busy each pod is: the least busy serving pods go to sleep (or, past
        the standby count, are removed) first."""
        self._kind(target)
        self._pod_load = dict(pod_load or {})

    def set_replicas(
        self, target: ScaleTarget, replicas: int, *, idempotency_key: str
    ) -> ScaleStatus:
        steps = self.reconcile(target, serving=replicas)
        logger.info(
            "standby-reconciled",
            target=str(target),
            serving=replicas,
            standby=self.standby,
            idempotency_key=idempotency_key,
            steps=steps,
        )
        status = self.get_scale(target)
        return ScaleStatus(
            spec_replicas=status.spec_replicas,
            ready_replicas=status.ready_replicas,
            warnings=tuple(steps),
        )

    def reconcile(self, target: ScaleTarget, *, serving: int | None = None) -> list[str]:
        """Bring ``target`` to ``serving`` serving pods (default: the current serving
        count) and ``self.standby`` asleep; returns the steps taken (empty: nothing to do)."""
        kind = self._kind(target)
        steps: list[str] = []
        try:
            workload, pods = self._read(kind, target)
            wanted = (
                max(0, workload.spec_replicas - _standby_applied(workload))
                if serving is None
                else serving
            )
            asleep = sorted((p for p in pods if _asleep(p)), key=lambda p: p.name)
            awake = [p for p in pods if p.ready and not _asleep(p)]
            # 1. Scale-up: wake standby pods first (those beyond the standby count first).
            for pod in list(reversed(asleep))[: max(0, wanted - len(awake))]:
                self._wake(target, pod)
                steps.append(f"woke standby pod {pod.name}")
                asleep.remove(pod)
                awake.append(pod)
            # 2. Scale-down, or a standby pod to refill: the least busy serving pods sleep.
            to_sleep = min(len(awake) - wanted, self.standby - len(asleep))
            for pod in self._least_busy(awake)[: max(0, to_sleep)]:
                self._put_to_sleep(target, pod)
                steps.append(f"put pod {pod.name} to sleep (standby)")
                awake.remove(pod)
                asleep.append(pod)
            # 3. The workload: serving + standby pods, and the annotation saying so.
            total = wanted + self.standby
            if len(pods) > total:
                self._rank_for_removal(kind, target, awake, asleep)
            if workload.spec_replicas != total or _standby_applied(workload) != self.standby:
                self.client.patch_workload(
                    kind,
                    target.namespace,
                    target.name,
                    replicas=total,
                    annotations={STANDBY_REPLICAS_ANNOTATION: str(self.standby)},
                    resource_version=workload.resource_version,
                )
                steps.append(
                    f"scaled {target} from {workload.spec_replicas} to {total} pods "
                    f"({wanted} serving + {self.standby} standby)"
                )
        except KubernetesError as exc:
            raise _actuator_error(exc) from None
        return steps

    def _least_busy(self, pods: Sequence[PodInfo]) -> list[PodInfo]:
        # Unknown load ranks as busy; among equals the newest-looking name sleeps first.
        ordered = sorted(pods, key=lambda p: p.name, reverse=True)
        return sorted(ordered, key=lambda p: self._pod_load.get(p.name, float("inf")))

    def _put_to_sleep(self, target: ScaleTarget, pod: PodInfo) -> None:
        # Out of membership first, so no gateway routes to a pod that is falling asleep.
        self.client.patch_pod_labels(
            target.namespace, pod.name, {STANDBY_POD_LABEL: STANDBY_ASLEEP}
        )
        self.sleeper.put_to_sleep(pod, pod_port(pod, self.port))

    def _wake(self, target: ScaleTarget, pod: PodInfo) -> None:
        self.sleeper.wake_up(pod, pod_port(pod, self.port))
        # Back into membership only once it answers awake.
        self.client.patch_pod_labels(target.namespace, pod.name, {STANDBY_POD_LABEL: None})

    def _rank_for_removal(
        self,
        kind: WorkloadKind,
        target: ScaleTarget,
        awake: Sequence[PodInfo],
        asleep: Sequence[PodInfo],
    ) -> None:
        """Deletion costs for a Deployment losing pods: surplus standby pods first, then
        serving pods from the least busy, the standby pods kept last (StatefulSets remove
        the highest ordinal whatever these say)."""
        if kind == "statefulset":
            return
        kept = asleep[: self.standby]
        surplus = list(asleep[self.standby :])
        ranked = [*surplus, *self._least_busy(awake), *kept]
        for cost, pod in enumerate(ranked, start=-len(surplus) - len(awake)):
            value = str(cost)
            if pod.annotations.get(POD_DELETION_COST) != value:
                self.client.patch_pod_annotations(
                    target.namespace, pod.name, {POD_DELETION_COST: value}
                )
