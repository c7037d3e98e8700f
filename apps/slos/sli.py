"""PromQL for the good and total event counts of each SLI kind, batched per deployment group.

Counts come from ``increase()`` over each window, summed ``by`` the deployments' identity
labels (see apps.metrics.collection.group_targets), so one query per window and count type
serves every deployment of a group. An SLO over several deployments adds their counts.
"""

from __future__ import annotations

import string
from dataclasses import dataclass

from prometheus_client.utils import floatToGoString

# Latency histograms and their bucket boundaries, per framework. A latency SLI counts the
# requests under a threshold from the bucket whose upper bound is the threshold, so the
# threshold must be one of these bounds (vLLM ≥ 0.10, vllm/v1/metrics/loggers.py).
LATENCY_HISTOGRAMS: dict[tuple[str, str], tuple[str, tuple[float, ...]]] = {
    ("vllm", "ttft"): (
        "vllm:time_to_first_token_seconds",
        (0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0,
         7.5, 10.0, 20.0, 40.0, 80.0, 160.0, 640.0, 2560.0),
    ),
    ("vllm", "itl"): (
        "vllm:inter_token_latency_seconds",
        (0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5,
         10.0, 20.0, 40.0, 80.0),
    ),
    ("vllm", "e2e"): (
        "vllm:e2e_request_latency_seconds",
        (0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0,
         120.0, 240.0, 480.0, 960.0, 1920.0, 7680.0),
    ),
}  # fmt: skip

# (all finished requests, failed requests) counters per framework, for error-ratio SLIs.
ERROR_COUNTERS: dict[str, tuple[str, str]] = {
    "vllm": (
        "vllm:request_success_total",
        'vllm:request_success_total{$sel finished_reason="abort"}',
    ),
    "tgi": ("tgi_request_count", "tgi_request_failure{$sel}"),
    "sglang": ("sglang:num_requests_total", "sglang:num_aborted_requests_total{$sel}"),
}

# Availability is time-based: the share of 30-second steps in which at least one replica of
# the deployment was available, from kube-state-metrics' Deployment status.
AVAILABILITY_METRIC = "kube_deployment_status_replicas_available"
AVAILABILITY_STEP = "30s"


class SliError(ValueError):
    pass


def bucket_bounds(framework: str, metric: str) -> tuple[float, ...]:
    entry = LATENCY_HISTOGRAMS.get((framework, metric))
    if entry is None:
        known = ", ".join(sorted({f for f, _ in LATENCY_HISTOGRAMS}))
        raise SliError(
            f"no {metric} histogram is known for {framework} (latency SLIs support: {known}); "
            "use a custom ratio SLI with your own good/total queries"
        )
    return entry[1]


def check_threshold(framework: str, metric: str, threshold_s: float) -> None:
    bounds = bucket_bounds(framework, metric)
    if any(abs(b - threshold_s) < 1e-9 for b in bounds):
        return
    below = [b for b in bounds if b < threshold_s]
    above = [b for b in bounds if b > threshold_s]
    nearest = [f"{x:g}" for x in ([below[-1]] if below else []) + ([above[0]] if above else [])]
    raise SliError(
        f"{threshold_s:g}s is not a bucket boundary of the {metric} histogram; "
        f"the nearest are {' and '.join(nearest)} (all: {', '.join(f'{b:g}' for b in bounds)})"
    )


@dataclass(frozen=True)
class SliSpec:
    kind: str  # latency | error_ratio | availability
    metric: str = ""  # ttft | itl | e2e for latency
    threshold_s: float = 0.0


def count_queries(
    spec: SliSpec, framework: str, *, sel: str, by: str, window: str
) -> tuple[str, str]:
    """(good, total) PromQL for one group and one window."""

    def fill(template: str) -> str:
        return (
            string.Template(template)
            .substitute(sel=sel, by=by, w=window)
            .replace("by (le, )", "by (le)")
        )

    if spec.kind == "latency":
        name, _ = LATENCY_HISTOGRAMS[(framework, spec.metric)]
        le = floatToGoString(spec.threshold_s)
        good = f'sum by ($by) (increase({name}_bucket{{$sel le="{le}"}}[$w]))'
        total = f"sum by ($by) (increase({name}_count{{$sel}}[$w]))"
        return fill(good), fill(total)
    if spec.kind == "error_ratio":
        if framework not in ERROR_COUNTERS:
            raise SliError(f"no error counters are known for {framework}")
        all_name, failed = ERROR_COUNTERS[framework]
        total = f"sum by ($by) (increase({all_name}{{$sel}}[$w]))"
        bad = f"sum by ($by) (increase({failed}[$w]))"
        # Deployments with no failure series at all count zero failures, not "no data".
        good = f"{total} - ({bad} or {total} * 0)"
        return fill(good), fill(total)
    if spec.kind == "availability":
        up = f"sum by ($by) ({AVAILABILITY_METRIC}{{$sel}})"
        good = f"sum_over_time((clamp_max({up}, 1))[$w:{AVAILABILITY_STEP}])"
        total = f"count_over_time(({up})[$w:{AVAILABILITY_STEP}])"
        return fill(good), fill(total)
    raise SliError(f"unknown SLI kind {spec.kind!r}")
