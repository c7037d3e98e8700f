"""Command line of the autoscaling benchmark.

Usage (from the repository root)::

    .venv/bin/python -m bench.autoscale                    # all traces, all policies
    .venv/bin/python -m bench.autoscale --traces steady,bursty --policies ours,kpa,oracle
    .venv/bin/python -m bench.autoscale --trace-csv my_trace.csv --time-scale 2

For each trace it measures the replica capacity, searches the oracle, then runs every
policy (in parallel over ``--jobs`` processes) and writes to ``--out``
(``bench/results/autoscale/`` by default): ``results.md`` (the tables, also printed),
``results.json`` and one ``<trace>.png`` plot per trace. Exit status 0; 1 when a trace
cannot be loaded.
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import os
import shlex
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from bench.autoscale import oracle, policies, report, traces
from bench.autoscale.sim import Controller, RunResult, SimConfig, run

DEFAULT_TRACES = (traces.AZURE_CONV, "steady", "diurnal", "step", "bursty")
# Every policy the benchmark runs, in the order the report lists them.
POLICIES = report.ORDER
REPO = Path(__file__).resolve().parents[2]
DEFAULT_OUT = REPO / "bench" / "results" / "autoscale"


@dataclass(frozen=True)
class Settings:
    """Policy knobs and oracle settings shared by every trace."""

    slo_target: float = 0.99
    oracle_window_s: float = 60.0
    oracle_lookback_s: float = 30.0
    hpa_gpu_target: float = 80.0  # DCGM_FI_DEV_GPU_UTIL average value, percent
    hpa_waiting_target: float = 5.0
    keda_threshold: float = 5.0
    keda_polling_s: float = 30.0
    keda_cached: bool = False
    kpa_target: float | None = None  # None: 70 % of the measured per-replica concurrency
    kpa_utilization: float = 0.7
    apa_target: float = 0.5
    apa_cooldown: str = "documented"
    ours: policies.OursSpec = field(default_factory=policies.OursSpec)
    max_replicas: int | None = None  # None: twice the static peak


@dataclass
class Plan:
    """Per-trace facts every policy run needs: capacity, oracle, sizes."""

    trace: str
    capacity: oracle.Capacity
    factor: float
    static_peak: int
    static_mean: int
    initial: int
    max_replicas: int
    oracle_result: RunResult
    oracle_kind: str
    search_runs: int
    wall_s: float


# Filled before the worker processes fork, so that traces are not pickled per task.
_TRACES: dict[str, traces.Trace] = {}


def _with(cfg: SimConfig, **changes: object) -> SimConfig:
    return replace(cfg, **changes)  # type: ignore[arg-type]


def make_plan(name: str, cfg: SimConfig, settings: Settings) -> Plan:
    """Measure capacity, search the oracle and size the static baselines."""
    wall0 = time.perf_counter()
    tr = _TRACES[name]
    profile = cfg.profile()
    cap = oracle.measure_capacity(tr.requests, profile, cfg.ttft_slo_s, seed=cfg.seed)
    step = cfg.eval_period_s
    demand = oracle.demand_tokens(tr.requests, tr.duration_s, step, settings.oracle_window_s)
    runs: dict[tuple[str, float], RunResult] = {}

    def scheduled(counts: list[int], label: str) -> RunResult:
        c = _with(cfg, initial_replicas=max(1, counts[0]), max_replicas=max(max(counts), 1))
        return run(tr.name, tr.requests, tr.duration_s, policies.Scheduled(label, counts, step), c)

    def lookahead(f: float) -> list[int]:
        need = oracle.needs(demand, cap.tokens_per_s, f)
        return oracle.schedule(need, step, profile.cold_start_s, settings.oracle_lookback_s)

    def lookahead_ok(f: float) -> bool:
        key = ("lookahead", f)
        if key not in runs:
            runs[key] = scheduled(lookahead(f), "oracle")
        return runs[key].ttft_ok >= settings.slo_target

    factor = oracle.search_factor(lookahead_ok, iterations=7)
    if ("lookahead", factor) not in runs:
        lookahead_ok(factor)
    need = oracle.needs(demand, cap.tokens_per_s, factor)
    peak = max(need)
    mean_demand = sum(demand) / len(demand)
    mean = max(1, math.ceil(mean_demand / (cap.tokens_per_s * factor) - 1e-9))

    def constant_ok(n: int) -> bool:
        key = ("constant", float(n))
        if key not in runs:
            runs[key] = scheduled([n], "oracle")
        return runs[key].ttft_ok >= settings.slo_target

    # Smallest constant count meeting the target (bisection between 1 and a passing count).
    hi = peak
    while not constant_ok(hi) and hi < 4 * peak:
        hi *= 2
    lo = 0
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if constant_ok(mid):
            hi = mid
        else:
            lo = mid
    candidates = [
        (runs[("lookahead", factor)], "look-ahead schedule"),
        (runs[("constant", float(hi))], f"constant {hi}"),
    ]
    passing = [c for c in candidates if c[0].ttft_ok >= settings.slo_target]
    best, kind = (
        min(passing, key=lambda c: c[0].gpu_hours)
        if passing
        else max(candidates, key=lambda c: c[0].ttft_ok)
    )
    max_replicas = settings.max_replicas or max(2 * peak, peak + 4)
    initial = max(1, min(lookahead(factor)[0], max_replicas))
    return Plan(
        trace=name,
        capacity=cap,
        factor=factor,
        static_peak=peak,
        static_mean=mean,
        initial=initial,
        max_replicas=max_replicas,
        oracle_result=best,
        oracle_kind=kind,
        search_runs=len(runs),
        wall_s=time.perf_counter() - wall0,
    )


def make_controller(name: str, plan: Plan, cfg: SimConfig, settings: Settings) -> Controller:
    if name == "static-peak":
        return policies.Static(name, plan.static_peak)
    if name == "static-mean":
        return policies.Static(name, plan.static_mean)
    if name == "hpa-gpu":
        return policies.Hpa(name, metric="util_avg", target=settings.hpa_gpu_target)
    if name == "hpa-waiting":
        return policies.Hpa(name, metric="waiting", target=settings.hpa_waiting_target)
    if name == "keda":
        return policies.keda(
            threshold=settings.keda_threshold,
            polling_interval_s=settings.keda_polling_s,
            use_cached_metrics=settings.keda_cached,
        )
    if name == "kpa":
        target = settings.kpa_target or settings.kpa_utilization * plan.capacity.concurrency
        return policies.Kpa(policies.KpaSpec(target=target))
    if name == "apa":
        return policies.Apa(
            policies.ApaSpec(target=settings.apa_target, cooldown=settings.apa_cooldown)  # type: ignore[arg-type]
        )
    if name == "ours":
        policy = policies.ours_policy(
            settings.ours,
            min_replicas=cfg.min_replicas,
            max_replicas=plan.max_replicas,
            cold_start_s=cfg.cold_start,
            eval_period_s=cfg.eval_period_s,
        )
        return policies.Ours(policy)
    raise ValueError(f"unknown policy {name!r}; use one of {', '.join(POLICIES)}")


def run_policy(name: str, plan: Plan, cfg: SimConfig, settings: Settings) -> RunResult:
    """One policy on one planned trace (the oracle's run is the plan's)."""
    if name == "oracle":
        return plan.oracle_result
    tr = _TRACES[plan.trace]
    initial = plan.initial
    if name == "static-peak":
        initial = plan.static_peak
    elif name == "static-mean":
        initial = plan.static_mean
    c = _with(cfg, initial_replicas=min(initial, plan.max_replicas), max_replicas=plan.max_replicas)
    result = run(tr.name, tr.requests, tr.duration_s, make_controller(name, plan, c, settings), c)
    return result


def _plan_task(args: tuple[str, SimConfig, Settings]) -> Plan:
    return make_plan(*args)


def _run_task(args: tuple[str, Plan, SimConfig, Settings]) -> RunResult:
    return run_policy(*args)


def load_traces(names: Sequence[str], csvs: Sequence[str], args: argparse.Namespace) -> list[str]:
    """Fill :data:`_TRACES`; returns the names loaded, in order. Missing Azure: skipped."""
    loaded = []
    for name in names:
        if name == traces.AZURE_CONV:
            tr = traces.azure_conv(args.azure_trace, time_scale=args.time_scale)
            if tr is None:
                print(
                    "note: Azure LLM conv trace not found (/work/shared/traces or "
                    "../shared/traces); running the synthetic traces only",
                    file=sys.stderr,
                )
                continue
        else:
            tr = traces.synthetic(name, seed=args.seed, time_scale=args.time_scale)
        _TRACES[tr.name] = tr
        loaded.append(tr.name)
    for path in csvs:
        tr = traces.from_csv(path, time_scale=args.time_scale)
        _TRACES[tr.name] = tr
        loaded.append(tr.name)
    return loaded


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m bench.autoscale",
        description="Autoscaling quality benchmark: replay request traces through the "
        "replica model with each policy in charge of the replica count.",
    )
    p.add_argument(
        "--traces",
        default=",".join(DEFAULT_TRACES),
        help=f"comma-separated, from {', '.join(DEFAULT_TRACES)} (default: all)",
    )
    p.add_argument("--trace-csv", action="append", default=[], help="extra CSV trace (repeat)")
    p.add_argument("--azure-trace", help="path of AzureLLMInferenceTrace_conv.csv")
    p.add_argument("--time-scale", type=float, default=1.0, help="2 = twice as fast (1)")
    p.add_argument("--policies", default=",".join(POLICIES), help="comma-separated (all)")
    p.add_argument("--gpu", default="L4", help="GPU profile (L4)")
    p.add_argument("--cold-start", type=float, help="seconds (default: the profile's)")
    p.add_argument("--eval-period", type=float, default=15.0, help="seconds (15)")
    p.add_argument("--scrape-delay", type=float, default=15.0, help="seconds (15)")
    p.add_argument("--drain", type=float, default=45.0, help="drain time on removal, s (45)")
    p.add_argument("--ttft-slo", type=float, default=2.0, help="seconds (2)")
    p.add_argument("--itl-slo", type=float, default=0.2, help="mean inter-token, s (0.2)")
    p.add_argument("--slo-target", type=float, default=0.99, help="share within SLO (0.99)")
    p.add_argument("--price", type=float, default=1.0, help="$ per GPU-hour (1.00)")
    p.add_argument("--max-replicas", type=int, help="default: twice the static peak")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="processes")
    p.add_argument("--out", default=str(DEFAULT_OUT), help="results folder")
    p.add_argument("--no-plots", action="store_true")
    g = p.add_argument_group("policy settings")
    g.add_argument("--ours-queue", type=float, default=policies.OursSpec.queue_per_replica)
    g.add_argument("--ours-kv", type=float, default=policies.OursSpec.kv_target)
    g.add_argument(
        "--ours-scale-down-window",
        type=float,
        default=policies.OursSpec.scale_down_stabilization_s,
    )
    g.add_argument("--hpa-gpu-target", type=float, default=80.0, help="percent (80)")
    g.add_argument("--hpa-waiting-target", type=float, default=5.0)
    g.add_argument("--keda-threshold", type=float, default=5.0)
    g.add_argument("--keda-cached-metrics", action="store_true")
    g.add_argument("--kpa-target", type=float, help="per-pod concurrency (default: measured)")
    g.add_argument("--apa-target", type=float, default=0.5)
    g.add_argument("--apa-cooldown", choices=("documented", "controller"), default="documented")
    return p


def _markdown(
    names: Sequence[str],
    plans: dict[str, Plan],
    results: dict[str, list[RunResult]],
    cfg: SimConfig,
    settings: Settings,
    command: str,
    wall_s: float,
    jobs: int,
) -> str:
    out = [
        "# Autoscaling benchmark results",
        "",
        f"Command: `{command}`",
        "",
        f"GPU {cfg.gpu} (cold start {cfg.cold_start:g} s), evaluation every "
        f"{cfg.eval_period_s:g} s, scrape delay {cfg.scrape_delay_s:g} s, drain "
        f"{cfg.drain_s:g} s, TTFT SLO {cfg.ttft_slo_s:g} s, ITL SLO {cfg.itl_slo_s:g} s, "
        f"SLO target {settings.slo_target * 100:g} %, ${cfg.price_per_gpu_hour:.2f}/GPU-hour, "
        f"seed {cfg.seed}. Wall time {wall_s:.1f} s with {jobs} processes.",
    ]
    for name in names:
        plan, tr = plans[name], _TRACES[name]
        c = plan.capacity
        out += [
            "",
            f"## {name}",
            "",
            f"{tr.description}: {len(tr.requests)} requests over {tr.duration_s:.0f} s "
            f"({tr.mean_rate:.2f} req/s). Capacity per replica {c.requests_per_s:.2f} req/s "
            f"({c.tokens_per_s:.0f} tokens/s, {c.concurrency:.1f} in flight); oracle "
            f"{plan.oracle_kind} (look-ahead factor {plan.factor:.2f}, {plan.search_runs} "
            f"search runs); static-peak {plan.static_peak}, static-mean "
            f"{plan.static_mean}; start at {plan.initial}, max {plan.max_replicas} replicas.",
            "",
            report.table(results[name], cfg.ttft_slo_s, cfg.itl_slo_s),
        ]
        check = report.check_targets(results[name], slo_target=settings.slo_target)
        if check is not None:
            out += ["", "Targets for ours: " + report.describe_check(check, settings.slo_target)]
        out += ["", f"![{name}]({name}.png)"]
    return "\n".join(out) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    started = time.perf_counter()
    wanted = [n.strip() for n in args.traces.split(",") if n.strip()]
    unknown = [n for n in wanted if n != traces.AZURE_CONV and n not in traces.SYNTHETIC]
    chosen = [n.strip() for n in args.policies.split(",") if n.strip()]
    bad = [n for n in chosen if n not in POLICIES]
    if unknown or bad:
        print(f"unknown trace(s) {unknown} or policy(ies) {bad}", file=sys.stderr)
        return 1
    cfg = SimConfig(
        gpu=args.gpu,
        cold_start_s=args.cold_start,
        eval_period_s=args.eval_period,
        scrape_delay_s=args.scrape_delay,
        ttft_slo_s=args.ttft_slo,
        itl_slo_s=args.itl_slo,
        price_per_gpu_hour=args.price,
        drain_s=args.drain,
        max_replicas=10_000,
        seed=args.seed,
    )
    settings = Settings(
        slo_target=args.slo_target,
        hpa_gpu_target=args.hpa_gpu_target,
        hpa_waiting_target=args.hpa_waiting_target,
        keda_threshold=args.keda_threshold,
        keda_cached=args.keda_cached_metrics,
        kpa_target=args.kpa_target,
        apa_target=args.apa_target,
        apa_cooldown=args.apa_cooldown,
        ours=policies.OursSpec(
            queue_per_replica=args.ours_queue,
            kv_target=args.ours_kv,
            scale_down_stabilization_s=args.ours_scale_down_window,
        ),
        max_replicas=args.max_replicas,
    )
    try:
        names = load_traces(wanted, args.trace_csv, args)
    except (OSError, ValueError) as exc:
        print(f"cannot load a trace: {exc}", file=sys.stderr)
        return 1
    if not names:
        print("no trace to run", file=sys.stderr)
        return 1
    jobs = max(1, args.jobs)
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(jobs) as pool:
        plan_list = pool.map(_plan_task, [(n, cfg, settings) for n in names], chunksize=1)
        plans = {p.trace: p for p in plan_list}
        tasks = [(p, plans[n], cfg, settings) for n in names for p in chosen]
        done = pool.map(_run_task, tasks, chunksize=1)
    results: dict[str, list[RunResult]] = {n: [] for n in names}
    for result in done:
        results[result.trace].append(result)

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    given = list(sys.argv[1:] if argv is None else argv)
    command = " ".join(["python -m bench.autoscale", *(shlex.quote(a) for a in given)])
    if not args.no_plots:
        for n in names:
            tr = _TRACES[n]
            report.plot(
                out / f"{n}.png", f"{n}: {tr.description}", tr.requests, tr.duration_s, results[n]
            )
    wall = time.perf_counter() - started
    text = _markdown(names, plans, results, cfg, settings, command, wall, jobs)
    (out / "results.md").write_text(text, encoding="utf-8")
    payload = {
        "config": asdict(cfg),
        "settings": {k: (asdict(v) if k == "ours" else v) for k, v in settings.__dict__.items()},
        "wall_s": wall,
        "traces": {
            n: {
                "description": _TRACES[n].description,
                "requests": len(_TRACES[n].requests),
                "duration_s": _TRACES[n].duration_s,
                "capacity": asdict(plans[n].capacity),
                "oracle": plans[n].oracle_kind,
                "factor": plans[n].factor,
                "static_peak": plans[n].static_peak,
                "static_mean": plans[n].static_mean,
                "initial": plans[n].initial,
                "max_replicas": plans[n].max_replicas,
                "plan_wall_s": plans[n].wall_s,
                "results": [r.as_dict(timeline=False) for r in results[n]],
            }
            for n in names
        },
    }
    (out / "results.json").write_text(json.dumps(_finite(payload), indent=2), encoding="utf-8")
    print(text)
    print(f"written to {out} in {wall:.1f} s")
    return 0


def _finite(value: object) -> object:
    """JSON has no infinity: an infinite TTFT percentile (requests never served) is null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value
