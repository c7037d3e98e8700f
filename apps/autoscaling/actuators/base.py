"""The one interface every actuator implements, its error, and the retrying apply helper.

An actuator changes the replica count of one scale target: a Kubernetes Deployment or
StatefulSet, an AWS Auto Scaling group, or a deployment of the fleet simulator. Each
wraps one external system and turns every failure into :class:`ActuatorError`, which says
what the caller can do about it:

``conflict``
    The object changed between our read and our write (Kubernetes 409 on a stale
    ``resourceVersion``). Re-read and try again soon; nothing is wrong with the platform.
    A conflict is always ``retryable`` too.
``retryable``
    A transient failure: 5xx, timeout, connection refused, throttling. The same call may
    succeed later, so back off and retry.
``permanent`` (not retryable)
    Forbidden, not found, invalid request: retrying cannot help until someone changes
    the configuration. ``permanent_reason`` names the kind (``forbidden``,
    ``not-found``, ``invalid``, ``unauthorized``, ``misconfigured``,
    ``unsupported-target``, ...).

:func:`apply_with_retry` is the one place that retries: it re-reads before every write,
so a write that timed out but did land turns the next attempt into a no-op. It is also
the one place that checks the requested replica count, so an actuator's ``set_replicas``
is only ever given a non-negative integer.
"""

from __future__ import annotations

import inspect
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any, Literal, Protocol, runtime_checkable

import structlog
import tenacity

from apps.core.digits import ascii_int

__all__ = [
    "Actuator",
    "ActuatorError",
    "ScaleDownPreparer",
    "ScaleStatus",
    "ScaleTarget",
    "TargetKind",
    "apply_with_retry",
    "set_replicas_options",
]

logger = structlog.get_logger("controlplane.autoscaling.actuators")

TargetKind = Literal["k8s-deployment", "k8s-statefulset", "aws-asg", "simulated"]


# Auto Scaling warm pools (apps/autoscaling/actuators/warm.py): the states a pooled instance
# may wait in, and a sanity bound (nobody keeps more warm GPU instances per group).
WARM_POOL_STATES = ("Stopped", "Running", "Hibernated")
MAX_WARM_POOL_SIZE = 1000
# The deployment labels that ask for warm capacity (read here so that the factory and
# apps/autoscaling/actuators/warm.py both use them without importing each other).
LABEL_WARM_POOL_SIZE = "autoscaling.llm-controlplane/warm-pool-size"
LABEL_WARM_POOL_STATE = "autoscaling.llm-controlplane/warm-pool-state"


@dataclass(frozen=True, slots=True)
class WarmPool:
    """The warm capacity wanted: ``size`` instances waiting in ``state``."""

    size: int
    state: str = "Stopped"


def _warm_invalid(message: str) -> ActuatorError:
    return ActuatorError(message, retryable=False, permanent_reason="invalid")


def warm_pool_of(labels: Mapping[str, Any]) -> WarmPool | None:
    """The warm pool ``labels`` ask for; ``None`` when they do not ask for one."""
    raw_size = labels.get(LABEL_WARM_POOL_SIZE)
    raw_state = labels.get(LABEL_WARM_POOL_STATE)
    if raw_size is None:
        if raw_state is not None:
            raise _warm_invalid(f"label {LABEL_WARM_POOL_STATE} needs {LABEL_WARM_POOL_SIZE} too")
        return None
    text = str(raw_size).strip()
    size = ascii_int(text)
    if size is None or size > MAX_WARM_POOL_SIZE:
        raise _warm_invalid(
            f"label {LABEL_WARM_POOL_SIZE} must be an integer from 0 to "
            f"{MAX_WARM_POOL_SIZE}, not {raw_size!r}"
        )
    state = "Stopped" if raw_state is None else str(raw_state).strip()
    matches = [s for s in WARM_POOL_STATES if s.lower() == state.lower()]
    if not matches:
        raise _warm_invalid(
            f"label {LABEL_WARM_POOL_STATE} must be one of {', '.join(WARM_POOL_STATES)}, "
            f"not {raw_state!r}"
        )
    return WarmPool(size=size, state=matches[0])


@dataclass(frozen=True, slots=True)
class ScaleTarget:
    """What to scale. For ``aws-asg`` the name is the group's and ``namespace`` is unused."""

    kind: TargetKind
    namespace: str
    name: str

    def __str__(self) -> str:
        where = f"{self.namespace}/{self.name}" if self.namespace else self.name
        return f"{self.kind}:{where}"


@dataclass(frozen=True, slots=True)
class ScaleStatus:
    """Replica counts as the platform reports them.

    ``spec_replicas`` is the desired count the platform is working towards,
    ``ready_replicas`` the ones serving. ``min_size``/``max_size`` are the platform's own
    bounds where it has them (Auto Scaling groups). ``warnings`` are things an operator
    should know, e.g. an HPA that also scales the object or a request clamped to bounds.
    """

    spec_replicas: int
    ready_replicas: int
    min_size: int | None = None
    max_size: int | None = None
    warnings: tuple[str, ...] = ()


class ActuatorError(Exception):
    """Any failure of an actuator; the flags say whether and how retrying can help."""

    def __init__(
        self,
        message: str,
        *,
        retryable: bool,
        conflict: bool = False,
        permanent_reason: str = "",
    ) -> None:
        super().__init__(message)
        self.message = message
        # A conflict is resolved by re-reading and writing again, so it is retryable too.
        self.retryable = retryable or conflict
        self.conflict = conflict
        self.permanent_reason = permanent_reason

    @property
    def permanent(self) -> bool:
        return not self.retryable

    def __repr__(self) -> str:
        return (
            f"ActuatorError({self.message!r}, retryable={self.retryable}, "
            f"conflict={self.conflict}, permanent_reason={self.permanent_reason!r})"
        )


class Actuator(Protocol):
    """Reads and sets the replica count of scale targets of the kinds it supports."""

    def get_scale(self, target: ScaleTarget) -> ScaleStatus: ...

    def set_replicas(
        self, target: ScaleTarget, replicas: int, *, idempotency_key: str
    ) -> ScaleStatus: ...


@runtime_checkable
class ScaleDownPreparer(Protocol):
    """Optional extra of an actuator: choose which replicas go before a scale-down.

    ``pod_load`` maps a replica (pod) name to its current load in any unit where higher
    means busier; ``None`` means no load is known.
    """

    def prepare_scale_down(
        self, target: ScaleTarget, remove: int, pod_load: dict[str, float] | None
    ) -> None: ...


def set_replicas_options(actuator: Actuator) -> frozenset[str]:
    """The optional keyword arguments ``actuator.set_replicas`` takes besides the
    idempotency key: ``remove`` (the replicas a scale-down removes, by name) for the
    simulator and Auto Scaling groups, ``drain_s`` for the simulator."""
    try:
        parameters = inspect.signature(actuator.set_replicas).parameters
    except (TypeError, ValueError):
        return frozenset()
    return frozenset(
        name
        for name, parameter in parameters.items()
        if parameter.kind == inspect.Parameter.KEYWORD_ONLY and name != "idempotency_key"
    )


def _should_retry(exc: BaseException) -> bool:
    return isinstance(exc, ActuatorError) and exc.retryable


def _merge_warnings(*groups: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(w for group in groups for w in group))


def apply_with_retry(
    actuator: Actuator,
    target: ScaleTarget,
    replicas: int,
    *,
    idempotency_key: str,
    attempts: int = 5,
    base_delay_s: float = 0.2,
    max_delay_s: float = 10.0,
    sleep: Callable[[float], None] = time.sleep,
    pod_load: Mapping[str, float] | None = None,
    options: Mapping[str, Any] | None = None,
) -> ScaleStatus:
    """Bring ``target`` to ``replicas``, retrying what retrying can fix.

    Every attempt re-reads the current scale first; when it already equals ``replicas``
    the attempt succeeds without writing (so applying twice, or retrying a write that
    timed out after it landed, is harmless). Conflicts are retried after a short jittered
    pause, retryable errors with exponential backoff and jitter
    (``base_delay_s * 2**(n-1)``, capped at ``max_delay_s``, times 1 to 1.5), permanent
    errors are raised at once. After ``attempts`` attempts the last error is raised,
    still marked retryable so the caller can try again in a later cycle.

    Before a scale-down, an actuator that implements :class:`ScaleDownPreparer` is asked
    to mark the least busy replicas (from ``pod_load``) for removal. That is best effort:
    if it fails, the scale-down still happens and the result carries a warning.

    ``options`` are passed to ``set_replicas`` as they are (only those the actuator takes,
    see :func:`set_replicas_options`), e.g. the replicas to remove after a drain.
    """
    # Checked once here for every actuator (they do not check it again).
    if isinstance(replicas, bool) or not isinstance(replicas, int) or replicas < 0:
        raise ActuatorError(
            f"replica count must be a non-negative integer, got {replicas!r}",
            retryable=False,
            permanent_reason="invalid",
        )
    if attempts < 1:
        raise ValueError("attempts must be at least 1")
    log = logger.bind(target=str(target), replicas=replicas, idempotency_key=idempotency_key)
    prepared = False
    prepare_warnings: tuple[str, ...] = ()

    def attempt() -> ScaleStatus:
        nonlocal prepared, prepare_warnings
        current = actuator.get_scale(target)
        if current.spec_replicas == replicas:
            log.info("scale-already-applied", spec_replicas=current.spec_replicas)
            return current
        if (
            not prepared
            and replicas < current.spec_replicas
            and isinstance(actuator, ScaleDownPreparer)
        ):
            prepared = True
            load = dict(pod_load) if pod_load is not None else None
            try:
                actuator.prepare_scale_down(target, current.spec_replicas - replicas, load)
            except ActuatorError as exc:
                log.warning("scale-down-preparation-failed", error=exc.message)
                prepare_warnings = (f"could not choose which replicas to remove: {exc}",)
        result = actuator.set_replicas(
            target, replicas, idempotency_key=idempotency_key, **dict(options or {})
        )
        log.info(
            "scale-applied",
            previous_spec_replicas=current.spec_replicas,
            spec_replicas=result.spec_replicas,
        )
        return replace(
            result, warnings=_merge_warnings(current.warnings, prepare_warnings, result.warnings)
        )

    def wait(state: tenacity.RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome is not None else None
        if isinstance(exc, ActuatorError) and exc.conflict:
            # Someone else wrote in between; nothing is overloaded, so re-read soon.
            return base_delay_s * random.uniform(0.0, 0.5)
        backoff = min(max_delay_s, base_delay_s * 2 ** (state.attempt_number - 1))
        return backoff * random.uniform(1.0, 1.5)

    def before_sleep(state: tenacity.RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome is not None else None
        log.warning(
            "scale-attempt-failed",
            attempt=state.attempt_number,
            conflict=getattr(exc, "conflict", False),
            error=str(exc),
            retry_in_s=round(state.upcoming_sleep, 3),
        )

    retrying = tenacity.Retrying(
        stop=tenacity.stop_after_attempt(attempts),
        wait=wait,
        retry=tenacity.retry_if_exception(_should_retry),
        sleep=sleep,
        before_sleep=before_sleep,
        reraise=True,
    )
    try:
        return retrying(attempt)
    except ActuatorError as exc:
        if exc.permanent:
            log.warning("scale-failed", error=exc.message, permanent_reason=exc.permanent_reason)
            raise
        log.warning("scale-gave-up", error=exc.message, attempts=attempts)
        raise ActuatorError(
            f"{exc.message} (gave up after {attempts} attempts)",
            retryable=exc.retryable,
            conflict=exc.conflict,
        ) from exc
