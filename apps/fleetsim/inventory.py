"""Building a simulated fleet from the inventory's simulated deployments."""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Callable, Iterator
from pathlib import Path

import structlog

from apps.autoscaling.actuators import ActuatorError
from apps.autoscaling.actuators.warm import warm_pool_of
from apps.inventory.models import Deployment, ScaleTargetKind

from . import workload
from .fleet import Fleet, SimulatedDeployment
from .profiles import DEFAULT_PROFILE, PROFILES

# Inventory GPU types → simulator profiles; types without a profile use the default one.
_GPU_TO_PROFILE = {name.lower(): name for name in PROFILES}

logger = structlog.get_logger("controlplane.fleetsim.inventory")

PATTERNS = ("steady", "diurnal", "step", "burst", "trace")
DEFAULT_RATE_RPS = 2.0
# Requests are generated an hour at a time so that an endless run uses bounded memory.
_CHUNK_S = 3600.0


def _chunk(pattern: str, rate: float, seed: int, period_s: float) -> list[workload.Request]:
    if pattern == "steady":
        return workload.steady(rate, _CHUNK_S, seed=seed)
    if pattern == "diurnal":
        return workload.diurnal(rate, _CHUNK_S, period_s=period_s, seed=seed)
    if pattern == "step":
        return workload.step(rate, rate * 3, _CHUNK_S, step_start_s=600, step_end_s=1200, seed=seed)
    if pattern == "burst":
        return workload.burst(rate, _CHUNK_S, seed=seed)
    raise ValueError(f"unknown pattern {pattern!r}; use one of {', '.join(PATTERNS)}")


def endless(
    pattern: str, rate: float, *, seed: int, period_s: float = 3600.0
) -> Iterator[workload.Request]:
    """A pattern repeated hour after hour, with a fresh seed per hour."""
    for hour in itertools.count():
        offset = hour * _CHUNK_S
        for request in _chunk(pattern, rate, seed * 1000 + hour, period_s):
            yield dataclasses.replace(request, arrival_s=request.arrival_s + offset)


def looped_trace(path: Path, time_scale: float) -> Iterator[workload.Request]:
    """A trace replayed over and over, each pass after the previous one ends."""
    requests = workload.read_trace_csv(path, time_scale=time_scale)
    if not requests:
        raise ValueError(f"{path} holds no requests")
    span = requests[-1].arrival_s + 1.0
    for lap in itertools.count():
        for request in requests:
            yield dataclasses.replace(request, arrival_s=request.arrival_s + lap * span)


def deployment_rate(deployment: Deployment) -> float:
    raw = (deployment.labels or {}).get("sim.rate-rps")
    try:
        return float(raw) if raw is not None else DEFAULT_RATE_RPS
    except ValueError:
        return DEFAULT_RATE_RPS


def deployment_standby(deployment: Deployment) -> int:
    """Standby replicas the deployment's warm-pool label asks for (0 when none, or when
    the label is malformed: that is logged)."""
    try:
        wanted = warm_pool_of(deployment.labels or {})
    except ActuatorError as exc:
        logger.warning("fleetsim-standby-label-ignored", deployment=deployment.pk, error=str(exc))
        return 0
    return wanted.size if wanted is not None else 0


def fleet_from_inventory(
    *,
    pattern: str = "diurnal",
    trace: Path | None = None,
    time_scale: float = 1.0,
    rate_for: Callable[[Deployment], float] = deployment_rate,
    max_records: int = 10_000,
) -> Fleet:
    fleet = Fleet()
    deployments = (
        Deployment.objects.filter(target_kind=ScaleTargetKind.SIMULATED)
        .exclude(status="retired")
        .select_related("model", "cluster")
        .order_by("pk")
    )
    for index, dep in enumerate(deployments):
        if pattern == "trace":
            if trace is None:
                raise ValueError("the trace pattern needs a trace file")
            source: Iterator[workload.Request] = looped_trace(trace, time_scale)
        else:
            source = endless(pattern, rate_for(dep), seed=index)
        simulated = fleet.add(
            SimulatedDeployment(
                name=dep.scale_target_name,
                model_name=dep.model.name,
                namespace=dep.scale_target_namespace,
                gpu_profile=_GPU_TO_PROFILE.get(dep.gpu_type, DEFAULT_PROFILE.name),
                replicas=max(dep.min_replicas, 1),
                workload=source,
                seed=index,
                max_records=max_records,
            )
        )
        simulated.set_standby(deployment_standby(dep))
    return fleet
