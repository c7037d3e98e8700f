"""Command line of the autoscaling benchmark.

Usage (from the repository root)::

    .venv/bin/python -m bench.autoscale                  # the matrix, held-out seeds
    .venv/bin/python -m bench.autoscale --seeds tune     # the same on the tuning seeds
    .venv/bin/python -m bench.autoscale --gpus L4 --workloads chat,step --seeds 0
    .venv/bin/python -m bench.autoscale --trace-csv my_trace.csv --gpus H100-80GB

The evaluation matrix is GPU profiles x workloads x seeds; each (GPU, workload, seed) is
a cell. Workloads are the synthetic mixes of :data:`bench.autoscale.traces.MIXES` (one
trace per seed), the Azure conversation trace when the machine has it and any
``--trace-csv`` (one cell per GPU: a file has no seed). Seeds 0-4 are for tuning, 100-104
(the default) are held out for reporting.

For each cell it measures which requests are feasible and the replica capacity, searches
the oracle, then runs every policy (in parallel over ``--jobs`` processes) and writes to
``--out`` (``bench/results/autoscale/`` by default): ``results.md`` (the summary over the
cells, one row per cell, and the full tables when there are few cells; also printed),
``results.json`` and, with ``--plots``, one PNG per cell. Exit status 0; 1 when a trace
cannot be loaded or the arguments are wrong. A cell where no rate meets the SLO on the
feasible requests is reported as skipped, with the reason.
"""

from __future__ import annotations

import argparse
import inspect
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

from apps.autoscaling import engine
from bench.autoscale import oracle, policies, report, traces
from bench.autoscale.sim import ROUTINGS, Controller, RunResult, SimConfig, run

DEFAULT_GPUS = ("L4", "A100-80GB", "H100-80GB")
DEFAULT_WORKLOADS = (*traces.MIXES, traces.AZURE_CONV)
SEED_SETS = {"tune": (0, 1, 2, 3, 4), "report": (100, 101, 102, 103, 104)}
# Every policy the benchmark can run, in the order the report lists them.
POLICIES = report.ORDER
# The default run leaves out static-mean, a second clairvoyant reference that misses the
# SLO in most cells (``--policies`` names it to run it).
DEFAULT_POLICIES = tuple(p for p in POLICIES if p != "static-mean")
REPO = Path(__file__).resolve().parents[2]
DEFAULT_OUT = REPO / "bench" / "results" / "autoscale"
# Cells with at most this many get their full per-policy table in results.md.
FULL_TABLES_UP_TO = 12


# The replicas the capacity calibration (the operator's load test) runs on.
CALIBRATION_POOL = 4


@dataclass(frozen=True)
class Settings:
    """Policy knobs and oracle settings shared by every cell."""

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
    ours: policies.OursV2Spec = field(default_factory=policies.OursV2Spec)
    ours_v1: policies.OursSpec = field(default_factory=policies.OursSpec)
    # Shared by every adaptive policy, never derived from the trace's future.
    max_replicas: int = 32
    initial_replicas: int | None = None  # None: sized from the first warmup_s of load
    warmup_s: float = 300.0
    start_utilization: float = 0.8
    oracle_iterations: int = 4
    capacity_sample: int = 2000
    capacity_iterations: int = 10
    # A second load test at this pool size fits ours' pooling (0: none, pooling 0).
    pooling_pool: int = 8


@dataclass(frozen=True)
class Cell:
    """One (GPU, workload, seed) of the matrix; ``seed`` None for a file trace."""

    gpu: str
    workload: str
    seed: int | None

    @property
    def id(self) -> str:
        seed = "" if self.seed is None else f"/s{self.seed}"
        return f"{self.gpu}/{self.workload}{seed}"


@dataclass
class Plan:
    """Per-cell facts every policy run needs: feasibility, capacity, oracle, sizes."""

    trace: str
    feasibility: oracle.Feasibility
    infeasible: int
    capacity: oracle.Capacity | None
    factor: float
    static_peak: int
    static_mean: int
    oracle_peak: int
    initial: int
    initial_how: str
    initial_capacity: float  # requests/s per replica ours (v2) starts from
    pooling: float  # fitted to the load tests at capacity.pool and settings.pooling_pool
    max_replicas: int
    oracle_result: RunResult | None
    oracle_kind: str
    search_runs: int
    wall_s: float
    error: str | None = None


# Filled before the worker processes fork, so that traces are not pickled per task.
_TRACES: dict[str, traces.Trace] = {}
_FLAGS: dict[str, list[bool]] = {}


def _with(cfg: SimConfig, **changes: object) -> SimConfig:
    return replace(cfg, **changes)  # type: ignore[arg-type]


def initial_count(
    requests: Sequence[traces.Request],
    capacity_tps: float,
    warmup_s: float,
    max_replicas: int,
    utilization: float = 0.8,
) -> int:
    """The starting count every adaptive policy shares: the tokens/s arriving in the first
    ``warmup_s`` over ``utilization`` of one replica's capacity, rounded up, within
    ``[1, max_replicas]``. It is what an operator would deploy after watching the first
    minutes of traffic, with some headroom; it uses no later arrival."""
    tokens = sum(r.prompt_tokens + r.output_tokens for r in requests if r.arrival_s < warmup_s)
    per_replica = capacity_tps * utilization
    need = math.ceil(tokens / warmup_s / per_replica - 1e-9) if per_replica > 0 else 1
    return max(1, min(max_replicas, need))


def initial_capacity(
    requests: Sequence[traces.Request], capacity_tps: float, warmup_s: float
) -> float:
    """Ours' starting capacity per replica, requests/s: one replica's capacity at the SLO
    in tokens/s (the replica model's, what a load test of the model on the GPU gives:
    :func:`oracle.measure_capacity`) over the mean prompt + output tokens of the requests
    arriving in the first ``warmup_s`` (all of them when none does). Like the starting
    count it uses no later arrival; the engine then learns the real figure online."""
    early = [r for r in requests if r.arrival_s < warmup_s] or list(requests)
    if not early:
        return capacity_tps
    mean_tokens = sum(r.prompt_tokens + r.output_tokens for r in early) / len(early)
    return capacity_tps / max(mean_tokens, 1.0)


def replay_schedule(
    name: str, counts: list[int], label: str, cfg: SimConfig, settings: Settings
) -> RunResult:
    """The trace ``name`` replayed under a precomputed schedule (the references'): from
    ``counts[0]``, with a maximum no lower than the schedule's own top."""
    tr = _TRACES[name]
    top = max(max(counts), settings.max_replicas)
    c = _with(cfg, initial_replicas=max(1, counts[0]), max_replicas=top)
    controller = policies.Scheduled(label, counts, cfg.eval_period_s)
    return run(tr.name, tr.requests, tr.duration_s, controller, c, _FLAGS[name])


def make_plan(name: str, cfg: SimConfig, settings: Settings) -> Plan:
    """Feasibility, capacity and the oracle search; the statics' sizes (references)."""
    wall0 = time.perf_counter()
    tr = _TRACES[name]
    profile = cfg.profile()
    feas = oracle.feasibility(profile, cfg.ttft_slo_s)
    flags = _FLAGS[name]
    infeasible = len(flags) - sum(flags)

    def load_test(pool: int) -> oracle.Capacity:
        return oracle.measure_capacity(
            tr.requests,
            profile,
            cfg.ttft_slo_s,
            pool=pool,
            seed=cfg.seed,
            feasible=feas,
            sample=settings.capacity_sample,
            iterations=settings.capacity_iterations,
        )

    try:
        cap = load_test(CALIBRATION_POOL)
    except oracle.NoCapacity as exc:
        return Plan(
            name, feas, infeasible, None, 0.0, 0, 0, 0, 0, "", 0.0, 0.0, settings.max_replicas,
            None, "", 0, time.perf_counter() - wall0, error=str(exc),
        )  # fmt: skip
    pooling = 0.0
    if settings.pooling_pool and settings.pooling_pool != cap.pool:
        try:
            second = load_test(settings.pooling_pool)
            pooling = engine.pooling_from(
                cap.pool, cap.tokens_per_s, second.pool, second.tokens_per_s
            )
        except oracle.NoCapacity:
            pass  # no rate met the SLO on the other pool: assume no gain rather than guess
    step = cfg.eval_period_s
    demand = oracle.demand_tokens(tr.requests, tr.duration_s, step, settings.oracle_window_s)
    runs: dict[tuple[str, float], RunResult] = {}

    def lookahead(f: float) -> list[int]:
        need = oracle.needs(demand, cap.tokens_per_s, f)
        return oracle.schedule(need, step, profile.cold_start_s, settings.oracle_lookback_s)

    def lookahead_ok(f: float) -> bool:
        key = ("lookahead", f)
        if key not in runs:
            runs[key] = replay_schedule(name, lookahead(f), "oracle", cfg, settings)
        return report.meets(runs[key], settings.slo_target)

    factor = oracle.search_factor(lookahead_ok, iterations=settings.oracle_iterations)
    if ("lookahead", factor) not in runs:
        lookahead_ok(factor)
    need = oracle.needs(demand, cap.tokens_per_s, factor)
    peak = max(need)
    mean_demand = sum(demand) / len(demand)
    mean = max(1, math.ceil(mean_demand / (cap.tokens_per_s * factor) - 1e-9))

    def constant_ok(n: int) -> bool:
        key = ("constant", float(n))
        if key not in runs:
            runs[key] = replay_schedule(name, [n], "oracle", cfg, settings)
        return report.meets(runs[key], settings.slo_target)

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
    passing = [c for c in candidates if report.meets(c[0], settings.slo_target)]
    best, kind = (
        min(passing, key=lambda c: c[0].gpu_hours)
        if passing
        else max(candidates, key=lambda c: report.attainment(c[0]))
    )
    max_replicas = settings.max_replicas
    if settings.initial_replicas is not None:
        initial = max(1, min(settings.initial_replicas, max_replicas))
        how = "stated"
    else:
        initial = initial_count(
            tr.requests,
            cap.tokens_per_s,
            settings.warmup_s,
            max_replicas,
            settings.start_utilization,
        )
        how = (
            f"the first {settings.warmup_s:g} s of load at "
            f"{settings.start_utilization * 100:g} % of capacity"
        )
    return Plan(
        trace=name,
        feasibility=feas,
        infeasible=infeasible,
        capacity=cap,
        factor=factor,
        static_peak=peak,
        static_mean=mean,
        oracle_peak=max(lookahead(factor)),
        initial=initial,
        initial_how=how,
        initial_capacity=initial_capacity(tr.requests, cap.tokens_per_s, settings.warmup_s),
        pooling=pooling,
        max_replicas=max_replicas,
        oracle_result=best,
        oracle_kind=kind,
        search_runs=len(runs),
        wall_s=time.perf_counter() - wall0,
    )


def make_controller(name: str, plan: Plan, cfg: SimConfig, settings: Settings) -> Controller:
    assert plan.capacity is not None
    if name == "static-peak":
        return policies.Static(name, plan.static_peak)
    if name == "static-mean":
        return policies.Static(name, plan.static_mean)
    if name == "hpa-gpu":
        return policies.Hpa(name, metric="util_avg", target=settings.hpa_gpu_target)
    if name == "hpa-waiting":
        return policies.Hpa(name, metric="waiting", target=settings.hpa_waiting_target)
    if name == "hpa-signals":
        return policies.HpaOnSignals(
            name,
            queue_target=settings.ours_v1.queue_per_replica,
            kv_target=settings.ours_v1.kv_target,
        )
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
    if name in ("ours", "ours+standby"):
        v2 = policies.ours_v2_policy(
            settings.ours,
            min_replicas=cfg.min_replicas,
            max_replicas=plan.max_replicas,
            initial_capacity=plan.initial_capacity,
            cold_start_s=cfg.cold_start,
            latency_slo_s=cfg.ttft_slo_s,
            pooling=plan.pooling,
            pool_size=plan.capacity.pool,
            warm=name == "ours+standby",
        )
        return policies.OursV2(v2, cfg.eval_period_s, name)
    if name == "ours-v1":
        policy = policies.ours_policy(
            settings.ours_v1,
            min_replicas=cfg.min_replicas,
            max_replicas=plan.max_replicas,
            cold_start_s=cfg.cold_start,
            eval_period_s=cfg.eval_period_s,
        )
        return policies.Ours(policy, name)
    raise ValueError(f"unknown policy {name!r}; use one of {', '.join(POLICIES)}")


def run_policy(name: str, plan: Plan, cfg: SimConfig, settings: Settings) -> RunResult:
    """One policy on one planned cell (the oracle's run is the plan's). Adaptive policies
    all start at the plan's non-clairvoyant count and share its maximum; the statics
    (references) hold their count throughout."""
    if name == "oracle":
        assert plan.oracle_result is not None
        return plan.oracle_result
    if name == "reactive-ideal":
        return reactive_ideal(plan, cfg, settings)
    tr = _TRACES[plan.trace]
    initial, top = plan.initial, plan.max_replicas
    if name in ("static-peak", "static-mean"):
        initial = plan.static_peak if name == "static-peak" else plan.static_mean
        top = max(top, initial)
    standby = settings.ours.standby if name == "ours+standby" else 0
    c = _with(cfg, initial_replicas=min(initial, top), max_replicas=top, standby=standby)
    controller = make_controller(name, plan, c, settings)
    return run(tr.name, tr.requests, tr.duration_s, controller, c, _FLAGS[plan.trace])


def reactive_ideal(plan: Plan, cfg: SimConfig, settings: Settings) -> RunResult:
    """The reactive ideal (a reference, :func:`oracle.reactive_schedule`): the oracle's
    windows seen only once they have ended, from the shared starting count, at the largest
    factor (searched below the oracle's, which look-ahead makes the larger) that meets the
    SLO target when replayed; the best attainment when none does."""
    cap = plan.capacity
    assert cap is not None
    tr = _TRACES[plan.trace]
    step = cfg.eval_period_s
    demand = oracle.demand_tokens(tr.requests, tr.duration_s, step, settings.oracle_window_s)
    runs: dict[float, RunResult] = {}

    def replay(f: float) -> RunResult:
        if f not in runs:
            need = oracle.needs(demand, cap.tokens_per_s, f)
            counts = oracle.reactive_schedule(
                need, step, settings.oracle_window_s, settings.oracle_lookback_s, plan.initial
            )
            runs[f] = replay_schedule(plan.trace, counts, "reactive-ideal", cfg, settings)
        return runs[f]

    oracle.search_factor(
        lambda f: report.meets(replay(f), settings.slo_target),
        lo=plan.factor / 2,
        hi=plan.factor,
        iterations=settings.oracle_iterations,
    )
    passing = [r for r in runs.values() if report.meets(r, settings.slo_target)]
    if passing:
        return min(passing, key=lambda r: r.gpu_hours)
    return max(runs.values(), key=report.attainment)


def _plan_task(args: tuple[str, SimConfig, Settings]) -> Plan:
    return make_plan(*args)


def _run_task(args: tuple[str, Plan, SimConfig, Settings]) -> RunResult:
    return run_policy(*args)


def parse_ours_settings(items: Sequence[str]) -> tuple[tuple[str, float], ...]:
    """``NAME=VALUE`` pairs of :func:`engine.presets.demand_capacity_policy` keyword
    arguments (numbers); ValueError with the reason for anything else."""
    allowed = set(inspect.signature(engine.demand_capacity_policy).parameters) - {
        "min_replicas",
        "max_replicas",
        "initial_capacity",
        "cold_start_s",
        "latency_slo_s",
        "overrides",
        "demand_signal",
        "latency_signal",
        "backlog_signal",
        "forecast_periods_s",
    }
    out = []
    for item in items:
        name, sep, value = item.partition("=")
        name = name.strip()
        if not sep or name not in allowed:
            raise ValueError(
                f"--ours-set {item!r}: expected NAME=VALUE with NAME one of "
                f"{', '.join(sorted(allowed))}"
            )
        try:
            number = float(value)
        except ValueError:
            raise ValueError(f"--ours-set {item!r}: the value is not a number") from None
        whole = "percent" in name or name == "pool_size"
        out.append((name, int(number) if number.is_integer() and whole else number))
    return tuple(out)


def _seeds(text: str) -> list[int]:
    if text in SEED_SETS:
        return list(SEED_SETS[text])
    return [int(x) for x in text.split(",") if x.strip()]


def build_cells(args: argparse.Namespace) -> list[tuple[Cell, SimConfig]]:
    """Make every cell's trace (into :data:`_TRACES`) and its configuration. Raises
    OSError or ValueError when a trace cannot be loaded."""
    base = SimConfig(
        cold_start_s=args.cold_start,
        eval_period_s=args.eval_period,
        scrape_delay_s=args.scrape_delay,
        ttft_slo_s=args.ttft_slo,
        itl_slo_s=args.itl_slo,
        price_per_gpu_hour=args.price,
        drain_s=args.drain,
        max_replicas=10_000,
        routing=args.routing,
        fast_period_s=args.fast_path,
    )
    cells: list[tuple[Cell, SimConfig]] = []
    workloads = [w.strip() for w in args.workloads.split(",") if w.strip()]
    seeds = _seeds(args.seeds)
    for gpu in [g.strip() for g in args.gpus.split(",") if g.strip()]:
        profile = _with(base, gpu=gpu).profile()
        feas = oracle.feasibility(profile, base.ttft_slo_s)
        load = traces.LOAD_SCALE.get(profile.name, 1.0)
        found: list[tuple[Cell, traces.Trace]] = []
        for w in workloads:
            if w == traces.AZURE_CONV:
                tr = traces.azure_conv(args.azure_trace, time_scale=args.time_scale * load)
                if tr is None:
                    print(
                        "note: Azure LLM conv trace not found (/work/shared/traces or "
                        "../shared/traces); running the synthetic workloads only",
                        file=sys.stderr,
                    )
                    continue
                found.append((Cell(profile.name, w, None), tr))
            elif w in traces.MIXES:
                for seed in seeds:
                    tr = traces.mix(w, profile.name, seed=seed, duration_s=args.duration)
                    found.append((Cell(profile.name, w, seed), tr))
            else:  # the earlier single-GPU synthetic traces (one hour, L4-sized)
                for seed in seeds:
                    tr = traces.synthetic(w, seed=seed, time_scale=args.time_scale)
                    found.append((Cell(profile.name, w, seed), tr))
        for path in args.trace_csv:
            tr = traces.from_csv(path, time_scale=args.time_scale, time_unit=args.csv_time_unit)
            found.append((Cell(profile.name, Path(path).stem, None), tr))
        for cell, tr in found:
            tr = replace(tr, name=cell.id)
            _TRACES[cell.id] = tr
            _FLAGS[cell.id] = feas.flags(tr.requests)
            seed = 0 if cell.seed is None else cell.seed
            cells.append((cell, _with(base, gpu=profile.name, seed=seed)))
    return cells


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m bench.autoscale",
        description="Autoscaling quality benchmark: replay request traces through the "
        "replica model with each policy in charge of the replica count, over a matrix of "
        "GPU profiles x workloads x seeds.",
    )
    known = ", ".join([*traces.MIXES, traces.AZURE_CONV, *traces.SYNTHETIC])
    p.add_argument(
        "--gpus", default=",".join(DEFAULT_GPUS), help="GPU profiles (L4,A100-80GB,H100-80GB)"
    )
    p.add_argument(
        "--workloads", default=",".join(DEFAULT_WORKLOADS), help=f"comma-separated, from {known}"
    )
    p.add_argument("--seeds", default="report", help="report (100-104), tune (0-4) or a list")
    p.add_argument("--duration", type=float, default=600.0, help="synthetic mix length, s (600)")
    p.add_argument("--trace-csv", action="append", default=[], help="extra CSV trace (repeat)")
    p.add_argument(
        "--csv-time-unit", choices=traces.TIME_UNITS, default="auto", help="CSV TIMESTAMP unit"
    )
    p.add_argument("--azure-trace", help="path of AzureLLMInferenceTrace_conv.csv")
    p.add_argument("--time-scale", type=float, default=1.0, help="2 = twice as fast (1)")
    p.add_argument(
        "--policies",
        default=",".join(DEFAULT_POLICIES),
        help=f"comma-separated, from {', '.join(POLICIES)} (all but static-mean)",
    )
    p.add_argument("--routing", choices=ROUTINGS, default="queue", help="gateway (queue)")
    p.add_argument("--cold-start", type=float, help="seconds (default: the profile's)")
    p.add_argument("--eval-period", type=float, default=15.0, help="seconds (15)")
    p.add_argument("--scrape-delay", type=float, default=15.0, help="seconds (15)")
    p.add_argument("--drain", type=float, default=45.0, help="drain time on removal, s (45)")
    p.add_argument(
        "--fast-path",
        type=float,
        default=0.0,
        help="ours' fast path: replica metrics read every this many s, 0 = off (0)",
    )
    p.add_argument("--ttft-slo", type=float, default=2.0, help="seconds (2)")
    p.add_argument("--itl-slo", type=float, default=0.2, help="mean inter-token, s (0.2)")
    p.add_argument("--slo-target", type=float, default=0.99, help="share within SLO (0.99)")
    p.add_argument("--price", type=float, default=1.0, help="$ per GPU-hour (1.00)")
    p.add_argument("--max-replicas", type=int, default=32, help="for every policy (32)")
    p.add_argument("--initial-replicas", type=int, help="default: sized from the first minutes")
    p.add_argument("--warmup", type=float, default=300.0, help="s of load sizing the start (300)")
    p.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="processes")
    p.add_argument("--out", default=str(DEFAULT_OUT), help="results folder")
    p.add_argument("--plots", action="store_true", help="one PNG per cell")
    g = p.add_argument_group("policy settings")
    g.add_argument(
        "--ours-set",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="ours (engine v2): a demand_capacity_policy setting other than the product "
        "default, e.g. utilization_target=0.75 (repeat)",
    )
    g.add_argument(
        "--standby",
        type=int,
        default=policies.OursV2Spec.standby,
        help="standby replicas of ours+standby (2)",
    )
    g.add_argument(
        "--standby-utilization",
        type=float,
        default=policies.OursV2Spec.standby_utilization,
        help="ours+standby's utilisation target (0: ours' own, the default)",
    )
    g.add_argument(
        "--pooling-pool",
        type=int,
        default=Settings.pooling_pool,
        help="pool size of the second load test that fits ours' pooling, beside the "
        f"{CALIBRATION_POOL}-replica one (8; 0: no second test, pooling 0)",
    )
    g.add_argument("--ours-v1-queue", type=float, default=policies.OursSpec.queue_per_replica)
    g.add_argument("--ours-v1-kv", type=float, default=policies.OursSpec.kv_target)
    g.add_argument(
        "--ours-v1-scale-down-window",
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


def _cell_line(cell: Cell, plan: Plan, results: list[RunResult], slo_target: float) -> str:
    tr = _TRACES[cell.id]
    share = plan.infeasible / max(len(tr.requests), 1)
    head = f"| {cell.id} | {len(tr.requests)} | {plan.infeasible} ({share * 100:.1f} %) |"
    if plan.error is not None:
        return head + f" skipped: {plan.error} |" + " |" * 5
    by = {r.policy: r for r in results}
    orc, ours = by.get("oracle"), by.get("ours")
    base = report.cheapest_baseline(results, slo_target)

    def att(r: RunResult | None) -> str:
        return "" if r is None else f"{report.attainment(r) * 100:.2f} %"

    def ratio(a: RunResult | None, b: RunResult | None) -> str:
        if a is None or b is None or not b.gpu_hours:
            return ""
        return f"{a.gpu_hours / b.gpu_hours:.2f}x"

    base_text = "none meets" if base is None else f"{base.policy} {ratio(ours, base)}"
    at_max = "" if ours is None else f"{ours.at_max * 100:.0f} %"
    return (
        head + f" {plan.initial} / {plan.oracle_peak} | {att(orc)} | {att(ours)} | "
        f"{ratio(ours, orc)} | {base_text} | {at_max} |"
    )


def _markdown(
    cells: Sequence[tuple[Cell, SimConfig]],
    plans: dict[str, Plan],
    results: dict[str, list[RunResult]],
    settings: Settings,
    command: str,
    wall_s: float,
    jobs: int,
) -> str:
    cfg = cells[0][1]
    gpus = sorted({c.gpu for c, _ in cells})
    colds = ", ".join(f"{g} {_with(cfg, gpu=g).cold_start:g} s" for g in gpus)
    routing = (
        "gateway queueing (requests wait at the router until a replica has room)"
        if cfg.routing == "queue"
        else "bound routing (each request bound to a replica on arrival)"
    )
    out = [
        "# Autoscaling benchmark results",
        "",
        f"Command: `{command}`",
        "",
        f"{len(cells)} cells. Cold start {colds}; evaluation every {cfg.eval_period_s:g} s, "
        f"scrape delay {cfg.scrape_delay_s:g} s, drain {cfg.drain_s:g} s, TTFT SLO "
        f"{cfg.ttft_slo_s:g} s, ITL SLO {cfg.itl_slo_s:g} s, SLO target "
        f"{settings.slo_target * 100:g} % of the feasible requests. Routing: {routing}. "
        f"Adaptive policies start at a count sized from the first {settings.warmup_s:g} s "
        f"of load at {settings.start_utilization * 100:g} % of a replica's capacity (or "
        f"stated) and share a maximum of {settings.max_replicas} replicas. "
        f"Wall time {wall_s:.1f} s with {jobs} processes.",
        "",
        "## Summary",
        "",
        "Attainment is the TTFT SLO share over the feasible requests. Ratios are geometric "
        "means of GPU-hours over the cells where the denominator exists: the oracle where "
        "it meets the target, the cheapest non-clairvoyant baseline meeting the target in "
        "that cell. The oracle and the statics are sized from the whole trace (references, "
        "never baselines).",
        "",
    ]
    done = [results[c.id] for c, _ in cells if plans[c.id].error is None]
    if done:
        out.append(
            report.summary_table(
                report.summarize_matrix(done, settings.slo_target), settings.slo_target
            )
        )
    skipped = [c.id for c, _ in cells if plans[c.id].error is not None]
    if skipped:
        out += ["", f"Skipped cells (no capacity at the SLO): {', '.join(skipped)}."]
    out += [
        "",
        "## Cells",
        "",
        "| cell | requests | infeasible | start / oracle peak | oracle | ours | ours vs "
        "oracle | cheapest baseline meeting the target: ours vs it | ours at max |",
        "|" + "---|" * 9,
    ]
    for cell, _ in cells:
        plan = plans[cell.id]
        out.append(_cell_line(cell, plan, results.get(cell.id, []), settings.slo_target))
    over = [
        c.id
        for c, _ in cells
        if plans[c.id].error is None and plans[c.id].oracle_peak > plans[c.id].max_replicas
    ]
    if over:
        out += ["", f"The oracle needs more than the maximum in: {', '.join(over)}."]
    if len(cells) <= FULL_TABLES_UP_TO:
        for cell, c in cells:
            plan, tr = plans[cell.id], _TRACES[cell.id]
            out += [
                "",
                f"## {cell.id}",
                "",
                (
                    f"{tr.description}: {len(tr.requests)} requests over {tr.duration_s:.0f} s "
                    f"({tr.mean_rate:.2f} req/s). {plan.feasibility.describe()}: "
                    f"{plan.infeasible} infeasible."
                ),
            ]
            if plan.error is not None:
                out += ["", f"Skipped: {plan.error}."]
                continue
            cap = plan.capacity
            assert cap is not None
            out += [
                "",
                f"Capacity per replica {cap.requests_per_s:.2f} req/s ({cap.tokens_per_s:.0f} "
                f"tokens/s, {cap.concurrency:.1f} in flight); oracle {plan.oracle_kind} "
                f"(look-ahead factor {plan.factor:.2f}, {plan.search_runs} search runs, peak "
                f"{plan.oracle_peak}); static-peak {plan.static_peak}, static-mean "
                f"{plan.static_mean}; adaptive policies start at {plan.initial} "
                f"({plan.initial_how}), max {plan.max_replicas}.",
                "",
                report.table(results[cell.id], c.ttft_slo_s, c.itl_slo_s),
            ]
            check = report.check_targets(results[cell.id], slo_target=settings.slo_target)
            if check is not None:
                out += [
                    "",
                    "Targets for ours: " + report.describe_check(check, settings.slo_target),
                ]
    return "\n".join(out) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    started = time.perf_counter()
    workloads = [w.strip() for w in args.workloads.split(",") if w.strip()]
    known = {*traces.MIXES, traces.AZURE_CONV, *traces.SYNTHETIC}
    unknown = [w for w in workloads if w not in known]
    chosen = [n.strip() for n in args.policies.split(",") if n.strip()]
    bad = [n for n in chosen if n not in POLICIES]
    if unknown or bad:
        print(f"unknown workload(s) {unknown} or policy(ies) {bad}", file=sys.stderr)
        return 1
    if args.trace_csv and args.workloads == ",".join(DEFAULT_WORKLOADS):
        workloads = []  # a CSV alone runs only that trace
        args.workloads = ""
    try:
        seeds = _seeds(args.seeds)
    except ValueError:
        seeds = []
    problem = None
    if not seeds:
        problem = "--seeds must be report, tune or a comma-separated list of integers"
    elif args.max_replicas < 1 or (args.initial_replicas or 1) < 1:
        problem = "--max-replicas and --initial-replicas must be at least 1"
    elif not args.warmup > 0 or not args.duration > 0 or not args.time_scale > 0:
        problem = "--warmup, --duration and --time-scale must be positive"
    elif args.standby < 0:
        problem = "--standby must be at least 0"
    elif not 0 <= args.standby_utilization <= 1:
        problem = "--standby-utilization must be between 0 and 1"
    elif args.pooling_pool < 0:
        problem = "--pooling-pool must be at least 0"
    ours_settings: tuple[tuple[str, float], ...] = ()
    if problem is None:
        try:
            ours_settings = parse_ours_settings(args.ours_set)
        except ValueError as exc:
            problem = str(exc)
    if problem is not None:
        print(f"bad argument: {problem}", file=sys.stderr)
        return 1
    try:
        cells = build_cells(args)
    except KeyError as exc:
        print(f"bad argument: {exc.args[0]}", file=sys.stderr)
        return 1
    except (OSError, ValueError) as exc:
        print(f"cannot load a trace: {exc}", file=sys.stderr)
        return 1
    if not cells:
        print("no trace to run", file=sys.stderr)
        return 1
    settings = Settings(
        slo_target=args.slo_target,
        hpa_gpu_target=args.hpa_gpu_target,
        hpa_waiting_target=args.hpa_waiting_target,
        keda_threshold=args.keda_threshold,
        keda_cached=args.keda_cached_metrics,
        kpa_target=args.kpa_target,
        apa_target=args.apa_target,
        apa_cooldown=args.apa_cooldown,
        ours=policies.OursV2Spec(
            settings=ours_settings,
            standby=args.standby,
            standby_utilization=args.standby_utilization,
        ),
        ours_v1=policies.OursSpec(
            queue_per_replica=args.ours_v1_queue,
            kv_target=args.ours_v1_kv,
            scale_down_stabilization_s=args.ours_v1_scale_down_window,
        ),
        max_replicas=args.max_replicas,
        initial_replicas=args.initial_replicas,
        warmup_s=args.warmup,
        pooling_pool=args.pooling_pool,
    )
    jobs = max(1, args.jobs)
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(jobs) as pool:
        plan_list = pool.map(_plan_task, [(c.id, cfg, settings) for c, cfg in cells], chunksize=1)
        plans = {p.trace: p for p in plan_list}
        tasks = [
            (p, plans[c.id], cfg, settings)
            for c, cfg in cells
            if plans[c.id].error is None
            for p in chosen
        ]
        done = pool.map(_run_task, tasks, chunksize=1)
    results: dict[str, list[RunResult]] = {c.id: [] for c, _ in cells}
    for result in done:
        results[result.trace].append(result)

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    given = list(sys.argv[1:] if argv is None else argv)
    command = " ".join(["python -m bench.autoscale", *(shlex.quote(a) for a in given)])
    if args.plots:
        for c, _ in cells:
            if plans[c.id].error is None:
                tr = _TRACES[c.id]
                name = c.id.replace("/", "_")
                report.plot(
                    out / f"{name}.png", f"{c.id}: {tr.description}", tr.requests,
                    tr.duration_s, results[c.id],
                )  # fmt: skip
    wall = time.perf_counter() - started
    text = _markdown(cells, plans, results, settings, command, wall, jobs)
    (out / "results.md").write_text(text, encoding="utf-8")
    done_cells = [results[c.id] for c, _ in cells if plans[c.id].error is None]
    payload = {
        "config": asdict(cells[0][1]),
        "settings": asdict(settings),
        "wall_s": wall,
        "jobs": jobs,
        "summary": [asdict(s) for s in report.summarize_matrix(done_cells, settings.slo_target)],
        "cells": {c.id: _cell_payload(c, plans[c.id], results[c.id]) for c, _ in cells},
    }
    (out / "results.json").write_text(json.dumps(_finite(payload), indent=2), encoding="utf-8")
    print(text)
    print(f"written to {out} in {wall:.1f} s")
    return 0


def _cell_payload(c: Cell, plan: Plan, results: list[RunResult]) -> dict[str, object]:
    tr = _TRACES[c.id]
    return {
        "gpu": c.gpu,
        "workload": c.workload,
        "seed": c.seed,
        "description": tr.description,
        "requests": len(tr.requests),
        "duration_s": tr.duration_s,
        "infeasible": plan.infeasible,
        "feasibility": asdict(plan.feasibility),
        "error": plan.error,
        "capacity": None if plan.capacity is None else asdict(plan.capacity),
        "oracle": plan.oracle_kind,
        "factor": plan.factor,
        "oracle_peak": plan.oracle_peak,
        "static_peak": plan.static_peak,
        "static_mean": plan.static_mean,
        "initial": plan.initial,
        "initial_capacity": plan.initial_capacity,
        "pooling": plan.pooling,
        "max_replicas": plan.max_replicas,
        "plan_wall_s": plan.wall_s,
        "results": [r.as_dict(timeline=False) for r in results],
    }


def _finite(value: object) -> object:
    """JSON has no infinity: an infinite TTFT percentile (requests never served) is null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value
