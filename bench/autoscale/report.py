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
    "reactive-ideal",
    "ours",
    "ours+standby",
    "ours-v1",
    "static-peak",
    "static-mean",
    "hpa-gpu",
    "hpa-waiting",
    "hpa-signals",
    "keda",
    "kpa",
    "apa",
)
# Sized from the whole trace's future (or, the reactive ideal, its exact past demand and a
# headroom searched on the trace itself): shown for reference, never a baseline to beat.
REFERENCES = ("oracle", "reactive-ideal", "static-peak", "static-mean")
# Non-clairvoyant baselines: they see only the delayed metrics, as ours does.
BASELINES = ("hpa-gpu", "hpa-waiting", "hpa-signals", "keda", "kpa", "apa")
BASELINE_FACTOR = 0.8
ORACLE_FACTOR = 1.15


def attainment(r: RunResult) -> float:
    """TTFT attainment over the feasible requests (every request when none is flagged)."""
    return r.ttft_ok if math.isnan(r.ttft_ok_feasible) else r.ttft_ok_feasible


def meets(r: RunResult, slo_target: float) -> bool:
    return attainment(r) >= slo_target - 1e-12


def cheapest_baseline(results: Sequence[RunResult], slo_target: float) -> RunResult | None:
    """The cheapest non-clairvoyant baseline meeting the SLO target, if any."""
    passing = [r for r in results if r.policy in BASELINES and meets(r, slo_target)]
    return min(passing, key=lambda r: r.gpu_hours) if passing else None


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
        f"| policy | TTFT ≤ {ttft_slo_s:g} s, feasible | TTFT ≤ {ttft_slo_s:g} s, all | "
        f"ITL ≤ {itl_slo_s:g} s | TTFT p50 (s) | TTFT p99 (s) | GPU-hours | scale actions | "
        "replicas | at max |"
    )
    lines = [head, "|" + "---|" * 10]
    for r in _ordered(results):
        kind = " (reference)" if r.policy in REFERENCES else ""
        standby = f" ({r.standby_gpu_hours:.2f} standby)" if r.standby_gpu_hours else ""
        lines.append(
            f"| {r.policy}{kind} | {attainment(r) * 100:.2f} % | {r.ttft_ok * 100:.2f} % | "
            f"{r.itl_ok * 100:.2f} % | {_seconds(r.ttft_p50)} | {_seconds(r.ttft_p99)} | "
            f"{r.gpu_hours:.2f}{standby} | {r.actions} | {r.replicas_min}-{r.replicas_max} | "
            f"{r.at_max * 100:.0f} % |"
        )
    return "\n".join(lines)


@dataclass(frozen=True)
class TargetCheck:
    slo_met: bool
    cheapest_baseline: str | None  # cheapest non-clairvoyant baseline reaching the target
    baseline_ratio: float | None  # ours / that baseline's GPU-hours
    oracle_ratio: float | None  # ours / oracle GPU-hours
    baseline_met: bool  # only ever True when the SLO is met
    oracle_met: bool  # only ever True when the SLO is met

    @property
    def all_met(self) -> bool:
        return self.slo_met and self.baseline_met and self.oracle_met


def check_targets(
    results: Sequence[RunResult],
    *,
    slo_target: float,
    baseline_factor: float = BASELINE_FACTOR,
    oracle_factor: float = ORACLE_FACTOR,
    policy: str = "ours",
) -> TargetCheck | None:
    """``policy`` against the targets: the SLO share on feasible requests, GPU-hours
    ``<= baseline_factor`` x the cheapest non-clairvoyant baseline reaching the SLO target
    and ``<= oracle_factor`` x the oracle. A cost target counts as met only when the SLO
    is: being cheap by missing the SLO is no success."""
    by = {r.policy: r for r in results}
    ours = by.get(policy)
    if ours is None:
        return None
    slo_met = meets(ours, slo_target)
    cheapest = cheapest_baseline(results, slo_target)
    baseline_ratio = ours.gpu_hours / cheapest.gpu_hours if cheapest else None
    oracle = by.get("oracle")
    oracle_ratio = ours.gpu_hours / oracle.gpu_hours if oracle and oracle.gpu_hours else None
    return TargetCheck(
        slo_met=slo_met,
        cheapest_baseline=cheapest.policy if cheapest else None,
        baseline_ratio=baseline_ratio,
        oracle_ratio=oracle_ratio,
        # With no baseline reaching the SLO there is nothing cheaper to beat.
        baseline_met=slo_met
        and (baseline_ratio is None or baseline_ratio <= baseline_factor + 1e-9),
        oracle_met=slo_met and oracle_ratio is not None and oracle_ratio <= oracle_factor + 1e-9,
    )


def describe_check(check: TargetCheck, slo_target: float) -> str:
    def mark(ok: bool) -> str:
        if not check.slo_met:
            return "not met (the SLO is missed)"
        return "met" if ok else "MISSED"

    parts = [
        f"SLO share on feasible requests ≥ {slo_target * 100:g} %: "
        + ("met" if check.slo_met else "MISSED")
    ]
    bf, of = BASELINE_FACTOR, ORACLE_FACTOR
    if check.cheapest_baseline is None:
        parts.append(f"≤ {bf:g}x the cheapest baseline reaching the SLO: no baseline reaches it")
    else:
        parts.append(
            f"≤ {bf:g}x the cheapest baseline reaching the SLO ({check.cheapest_baseline}): "
            f"{check.baseline_ratio:.2f}x, {mark(check.baseline_met)}"
        )
    if check.oracle_ratio is not None:
        parts.append(f"≤ {of:g}x the oracle: {check.oracle_ratio:.2f}x, {mark(check.oracle_met)}")
    return "; ".join(parts)


def geomean(values: Sequence[float]) -> float | None:
    good = [v for v in values if v > 0 and math.isfinite(v)]
    if not good:
        return None
    return math.exp(sum(math.log(v) for v in good) / len(good))


@dataclass(frozen=True)
class PolicySummary:
    """One policy over the cells of a matrix."""

    policy: str
    cells: int
    min_attainment: float
    cells_meeting: int
    vs_oracle: float | None  # geometric mean of GPU-hours / oracle, cells the oracle meets
    oracle_cells: int
    vs_baseline: float | None  # ... / cheapest baseline meeting the target in that cell
    baseline_cells: int
    vs_reactive: float | None  # ... / the reactive ideal, cells where it meets the target
    reactive_cells: int
    at_max_mean: float
    at_max_worst: float


def summarize_matrix(
    cells: Sequence[Sequence[RunResult]], slo_target: float
) -> list[PolicySummary]:
    """Summary rows per policy over ``cells`` (each one cell's results)."""
    names: set[str] = set()
    for results in cells:
        names.update(r.policy for r in results)
    out = []
    for name in _ordered_names(names):
        rows: list[RunResult] = []
        vs_oracle: list[float] = []
        vs_base: list[float] = []
        vs_reactive: list[float] = []
        for results in cells:
            by = {r.policy: r for r in results}
            r = by.get(name)
            if r is None:
                continue
            rows.append(r)
            oracle = by.get("oracle")
            if oracle is not None and meets(oracle, slo_target) and oracle.gpu_hours > 0:
                vs_oracle.append(r.gpu_hours / oracle.gpu_hours)
            base = cheapest_baseline(results, slo_target)
            if base is not None and base.gpu_hours > 0:
                vs_base.append(r.gpu_hours / base.gpu_hours)
            ideal = by.get("reactive-ideal")
            if ideal is not None and meets(ideal, slo_target) and ideal.gpu_hours > 0:
                vs_reactive.append(r.gpu_hours / ideal.gpu_hours)
        if not rows:
            continue
        out.append(
            PolicySummary(
                policy=name,
                cells=len(rows),
                min_attainment=min(attainment(r) for r in rows),
                cells_meeting=sum(1 for r in rows if meets(r, slo_target)),
                vs_oracle=geomean(vs_oracle),
                oracle_cells=len(vs_oracle),
                vs_baseline=geomean(vs_base),
                baseline_cells=len(vs_base),
                vs_reactive=geomean(vs_reactive),
                reactive_cells=len(vs_reactive),
                at_max_mean=sum(r.at_max for r in rows) / len(rows),
                at_max_worst=max(r.at_max for r in rows),
            )
        )
    return out


def _ordered_names(names: set[str]) -> list[str]:
    rank = {name: i for i, name in enumerate(ORDER)}
    return sorted(names, key=lambda n: (rank.get(n, len(ORDER)), n))


def summary_table(rows: Sequence[PolicySummary], slo_target: float) -> str:
    def ratio(x: float | None, n: int) -> str:
        return "n/a" if x is None else f"{x:.2f}x ({n})"

    # The reactive ideal's column only when it ran.
    reactive = any(s.reactive_cells for s in rows)
    lines = [
        f"| policy | min attainment (feasible) | cells ≥ {slo_target * 100:g} % | "
        "GPU-h vs oracle, geomean (cells) | GPU-h vs cheapest baseline meeting the target, "
        "geomean (cells) | "
        + ("GPU-h vs reactive ideal, geomean (cells) | " if reactive else "")
        + "time at max, mean | time at max, worst cell |",
        "|" + "---|" * (8 if reactive else 7),
    ]
    for s in rows:
        kind = " (reference)" if s.policy in REFERENCES else ""
        lines.append(
            f"| {s.policy}{kind} | {s.min_attainment * 100:.2f} % | "
            f"{s.cells_meeting}/{s.cells} | {ratio(s.vs_oracle, s.oracle_cells)} | "
            f"{ratio(s.vs_baseline, s.baseline_cells)} | "
            + (f"{ratio(s.vs_reactive, s.reactive_cells)} | " if reactive else "")
            + f"{s.at_max_mean * 100:.1f} % | {s.at_max_worst * 100:.0f} % |"
        )
    return "\n".join(lines)


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
            label=f"{r.policy} ({attainment(r) * 100:.1f} %, {r.gpu_hours:.1f} GPU-h)",
        )
    bottom.set_xlabel("minutes")
    bottom.set_ylabel("replicas (spec)")
    bottom.grid(alpha=0.3)
    bottom.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
