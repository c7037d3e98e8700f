"""Markdown tables, target checks and plots for the benchmark results."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from apps.fleetsim.workload import Request, demand_series
from bench.autoscale.sim import RunResult

# Rows in this order; the rest after them, sorted.
ORDER = (
    "oracle",
    "ours",
    "static-peak",
    "static-mean",
    "hpa-gpu",
    "hpa-waiting",
    "keda",
    "kpa",
    "apa",
)
BASELINES = ("static-peak", "static-mean", "hpa-gpu", "hpa-waiting", "keda", "kpa", "apa")


def _ordered(results: Sequence[RunResult]) -> list[RunResult]:
    rank = {name: i for i, name in enumerate(ORDER)}
    return sorted(results, key=lambda r: (rank.get(r.policy, len(ORDER)), r.policy))


def _seconds(x: float) -> str:
    if math.isinf(x):
        return "∞"
    if x >= 100:
        return f"{x:.0f}"
    return f"{x:.2f}"


def table(results: Sequence[RunResult], ttft_slo_s: float, itl_slo_s: float) -> str:
    """One trace's results as a Markdown table."""
    head = (
        f"| policy | TTFT ≤ {ttft_slo_s:g} s | ITL ≤ {itl_slo_s:g} s | TTFT p50 (s) | "
        "TTFT p95 (s) | TTFT p99 (s) | GPU-hours | cost ($) | scale actions | replicas |"
    )
    lines = [head, "|" + "---|" * 10]
    for r in _ordered(results):
        lines.append(
            f"| {r.policy} | {r.ttft_ok * 100:.2f} % | {r.itl_ok * 100:.2f} % | "
            f"{_seconds(r.ttft_p50)} | {_seconds(r.ttft_p95)} | {_seconds(r.ttft_p99)} | "
            f"{r.gpu_hours:.2f} | {r.cost:.2f} | {r.actions} | "
            f"{r.replicas_min}-{r.replicas_max} |"
        )
    return "\n".join(lines)


@dataclass(frozen=True)
class TargetCheck:
    slo_met: bool
    cheapest_baseline: str | None  # cheapest baseline reaching the SLO target
    baseline_ratio: float | None  # ours / that baseline's GPU-hours
    oracle_ratio: float | None  # ours / oracle GPU-hours
    baseline_met: bool
    oracle_met: bool

    @property
    def all_met(self) -> bool:
        return self.slo_met and self.baseline_met and self.oracle_met


def check_targets(
    results: Sequence[RunResult],
    *,
    slo_target: float,
    baseline_factor: float = 0.9,
    oracle_factor: float = 1.25,
) -> TargetCheck | None:
    """Our policy against the targets: SLO share, ``<= baseline_factor`` x the cheapest
    baseline that reaches the SLO target, ``<= oracle_factor`` x the oracle."""
    by = {r.policy: r for r in results}
    ours = by.get("ours")
    if ours is None:
        return None
    passing = [by[b] for b in BASELINES if b in by and by[b].ttft_ok >= slo_target]
    cheapest = min(passing, key=lambda r: r.gpu_hours) if passing else None
    baseline_ratio = ours.gpu_hours / cheapest.gpu_hours if cheapest else None
    oracle = by.get("oracle")
    oracle_ratio = ours.gpu_hours / oracle.gpu_hours if oracle and oracle.gpu_hours else None
    return TargetCheck(
        slo_met=ours.ttft_ok >= slo_target,
        cheapest_baseline=cheapest.policy if cheapest else None,
        baseline_ratio=baseline_ratio,
        oracle_ratio=oracle_ratio,
        # With no baseline reaching the SLO there is nothing cheaper to beat.
        baseline_met=baseline_ratio is None or baseline_ratio <= baseline_factor + 1e-9,
        oracle_met=oracle_ratio is not None and oracle_ratio <= oracle_factor + 1e-9,
    )


def describe_check(check: TargetCheck, slo_target: float) -> str:
    def mark(ok: bool) -> str:
        return "met" if ok else "MISSED"

    parts = [f"SLO share ≥ {slo_target * 100:g} %: {mark(check.slo_met)}"]
    if check.cheapest_baseline is None:
        parts.append("≤ 0.9x the cheapest baseline reaching the SLO: no baseline reaches it")
    else:
        parts.append(
            f"≤ 0.9x the cheapest baseline reaching the SLO ({check.cheapest_baseline}): "
            f"{check.baseline_ratio:.2f}x, {mark(check.baseline_met)}"
        )
    if check.oracle_ratio is not None:
        parts.append(f"≤ 1.25x the oracle: {check.oracle_ratio:.2f}x, {mark(check.oracle_met)}")
    return "; ".join(parts)


def plot(
    path: Path,
    title: str,
    requests: Sequence[Request],
    duration_s: float,
    results: Sequence[RunResult],
) -> None:
    """Demand (requests/s per minute) above, replicas per policy below, one PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    series = demand_series(list(requests), step_s=60.0, end_s=duration_s)
    fig, (top, bottom) = plt.subplots(
        2, 1, figsize=(13, 7), sharex=True, gridspec_kw={"height_ratios": [1, 2]}
    )
    top.plot([t / 60 for t, _, _ in series], [rps for _, rps, _ in series], color="black")
    top.set_ylabel("requests/s (1 min)")
    top.set_title(title)
    top.grid(alpha=0.3)
    styles = ["-", "--", "-.", ":"]
    for i, r in enumerate(_ordered(results)):
        xs = [t / 60 for t, _, _ in r.timeline]
        ys = [spec for _, spec, _ in r.timeline]
        width = 2.2 if r.policy in ("ours", "oracle") else 1.2
        bottom.step(
            xs,
            ys,
            where="post",
            linestyle=styles[i % len(styles)] if r.policy not in ("ours", "oracle") else "-",
            linewidth=width,
            label=f"{r.policy} ({r.ttft_ok * 100:.1f} %, {r.gpu_hours:.1f} GPU-h)",
        )
    bottom.set_xlabel("minutes")
    bottom.set_ylabel("replicas (spec)")
    bottom.grid(alpha=0.3)
    bottom.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
