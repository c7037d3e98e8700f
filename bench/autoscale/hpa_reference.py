"""Kubernetes HPA (autoscaling/v2), reimplemented from its public definition.

One independent reference, shared by the benchmark's HPA and KEDA baselines
(:class:`bench.autoscale.policies.Hpa`) and by the property tests that check the engine's
HPA-equivalent settings against it (``tests/unit/autoscaling/test_engine_properties.py``).
It imports nothing from ``apps.autoscaling``: a reference that shared code with the engine
could not catch the engine's mistakes.

Algorithm: https://kubernetes.io/docs/tasks/run-application/horizontal-pod-autoscale/
  desiredReplicas = ceil(currentReplicas * currentMetricValue / desiredMetricValue),
  skipped within the 0.1 tolerance; default behavior: scale-up stabilization 0 s and
  policies max(100 %, 4 pods) per 15 s; scale-down stabilization 300 s and 100 % per 15 s.
Source followed step by step (kubernetes/kubernetes, pkg/controller/podautoscaler):
  replica_calculator.go  calcPlainMetricReplicas, GetExternalPerPodMetricReplicas
  horizontal.go          computeReplicasForMetrics, stabilizeRecommendationWithBehaviors,
                         convertDesiredReplicasWithBehaviorRate,
                         calculateScaleUpLimitWithScalingRules,
                         calculateScaleDownLimitWithBehaviors
  https://github.com/kubernetes/kubernetes/tree/master/pkg/controller/podautoscaler

Arithmetic: metric values and targets may be floats (the benchmark, as the controller's
float64) or :class:`fractions.Fraction` (the property tests: the documented formula,
exactly); the functions compute in whatever they are given. Percent rate limits are computed
exactly from the integer counts (Kubernetes' float64 ``10 * (1 + 10/100)`` is
11.000000000000002 and would allow 12); with the default policies (100 %) both agree.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Literal

Num = float | Fraction

HPA_TOLERANCE = 0.1


@dataclass(frozen=True)
class HpaRule:
    """One HPAScalingPolicy: ``value`` pods or percent per ``period_s``."""

    kind: Literal["pods", "percent"]
    value: int
    period_s: float


@dataclass(frozen=True)
class HpaBehavior:
    """``spec.behavior``; the defaults are Kubernetes' own."""

    up_stabilization_s: float = 0.0
    down_stabilization_s: float = 300.0
    up_rules: tuple[HpaRule, ...] = (HpaRule("percent", 100, 15), HpaRule("pods", 4, 15))
    down_rules: tuple[HpaRule, ...] = (HpaRule("percent", 100, 15),)
    up_select: Literal["max", "min", "disabled"] = "max"
    down_select: Literal["max", "min", "disabled"] = "max"


def hpa_within_tolerance(ratio: Num, tolerance: Num = HPA_TOLERANCE) -> bool:
    """``math.Abs(1.0 - usageRatio) <= tolerance``: no change. (An int 1, so that an exact
    ratio stays exact; for a float ratio it is the same float subtraction.)"""
    return abs(1 - ratio) <= tolerance


def hpa_pods_metric_replicas(
    current: int,
    metric_sum: Num,
    with_metrics: int,
    target: Num,
    *,
    unready: int = 0,
    missing: int = 0,
    tolerance: Num = HPA_TOLERANCE,
) -> int | None:
    """``calcPlainMetricReplicas`` for a Pods metric with an AverageValue target.

    ``metric_sum`` over the ``with_metrics`` ready pods that reported; ``unready`` pods
    (not ready, no metrics) count as using 0 on a scale-up and are ignored otherwise;
    ``missing`` pods (ready but no sample yet) count as using the target on a scale-down
    and 0 on a scale-up. The proposal is dropped (current count) when counting those pods
    would reverse the direction. None when no pod reported (the HPA does nothing).
    """
    if with_metrics <= 0:
        return None
    usage_ratio = metric_sum / with_metrics / target
    scale_up_with_unready = unready > 0 and usage_ratio > 1.0
    if not scale_up_with_unready and missing == 0:
        if hpa_within_tolerance(usage_ratio, tolerance):
            return current
        return math.ceil(usage_ratio * with_metrics)
    total, pods = metric_sum, with_metrics
    if missing > 0:
        if usage_ratio < 1.0:
            total += missing * target
        pods += missing
    if scale_up_with_unready:
        pods += unready
    new_ratio = total / pods / target
    if (
        hpa_within_tolerance(new_ratio, tolerance)
        or (usage_ratio < 1.0 and new_ratio > 1.0)
        or (usage_ratio > 1.0 and new_ratio < 1.0)
    ):
        return current
    proposal = math.ceil(new_ratio * pods)
    if (new_ratio < 1.0 and proposal > current) or (new_ratio > 1.0 and proposal < current):
        return current
    return proposal


def hpa_external_average_replicas(
    status_replicas: int, total: Num, target_per_pod: Num, *, tolerance: Num = HPA_TOLERANCE
) -> int:
    """``GetExternalPerPodMetricReplicas``: an External metric with an AverageValue target.

    The ratio is taken against all pods of the target (``status.replicas``, starting ones
    included); outside the tolerance the proposal is ``ceil(total / target)``.
    """
    ratio = total / (target_per_pod * status_replicas) if status_replicas > 0 else math.inf
    if not hpa_within_tolerance(ratio, tolerance):
        return math.ceil(total / target_per_pod)
    return status_replicas


def hpa_stabilize(
    recommendations: Sequence[tuple[float, int]],
    now: float,
    recommendation: int,
    current: int,
    behavior: HpaBehavior,
) -> int:
    """``stabilizeRecommendationWithBehaviors``: the current count pulled into
    [lowest recommendation within the scale-up window, highest within the scale-down
    window], the new recommendation included."""
    up = down = recommendation
    up_cut = now - behavior.up_stabilization_s
    down_cut = now - behavior.down_stabilization_s
    for t, r in recommendations:
        if t > up_cut:
            up = min(up, r)
        if t > down_cut:
            down = max(down, r)
    result = current
    result = max(result, up)
    return min(result, down)


def _changes_in_period(events: Sequence[tuple[float, int]], period_s: float, now: float) -> int:
    return sum(n for t, n in events if t > now - period_s)


def hpa_scale_limit(
    current: int,
    up_events: Sequence[tuple[float, int]],
    down_events: Sequence[tuple[float, int]],
    behavior: HpaBehavior,
    now: float,
    *,
    up: bool,
) -> int:
    """``calculateScaleUpLimitWithScalingRules`` (``up``: the highest count allowed now)
    and ``calculateScaleDownLimitWithBehaviors`` (the lowest)."""
    select = behavior.up_select if up else behavior.down_select
    if select == "disabled":
        return current
    proposals = []
    for rule in behavior.up_rules if up else behavior.down_rules:
        added = _changes_in_period(up_events, rule.period_s, now)
        removed = _changes_in_period(down_events, rule.period_s, now)
        start = current - added + removed
        if rule.kind == "pods":
            proposals.append(start + rule.value if up else start - rule.value)
        elif up:
            # Rounded up so a small count can always grow.
            proposals.append(math.ceil(Fraction(start * (100 + rule.value), 100)))
        else:
            proposals.append(math.floor(Fraction(start * (100 - rule.value), 100)))
    # "max" is the biggest change: the highest count up, the lowest down.
    biggest, smallest = (max, min) if up else (min, max)
    return biggest(proposals) if select == "max" else smallest(proposals)


def hpa_apply_rate_limits(
    current: int,
    desired: int,
    min_replicas: int,
    max_replicas: int,
    up_events: Sequence[tuple[float, int]],
    down_events: Sequence[tuple[float, int]],
    behavior: HpaBehavior,
    now: float,
) -> int:
    """``convertDesiredReplicasWithBehaviorRate``: rate limits, then the bounds."""
    if desired > current:
        up_limit = hpa_scale_limit(current, up_events, down_events, behavior, now, up=True)
        limit = max(current, up_limit)
        allowed_max = min(max_replicas, limit)
        return min(desired, allowed_max)
    if desired < current:
        down_limit = hpa_scale_limit(current, up_events, down_events, behavior, now, up=False)
        limit = min(current, down_limit)
        allowed_min = max(min_replicas, limit)
        return max(desired, allowed_min)
    return desired


def hpa_metrics_replicas(current: int, proposals: Sequence[int | None]) -> int | None:
    """``computeReplicasForMetrics``: the highest proposal over the metrics. None (the HPA
    does not scale and records nothing) when no metric is valid (a None proposal), or when
    some are invalid and the valid ones would scale down."""
    valid = [p for p in proposals if p is not None]
    if not valid:
        return None
    desired = max(valid)
    if len(valid) < len(proposals) and desired < current:
        return None
    return desired
