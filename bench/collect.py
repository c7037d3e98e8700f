"""Time batched metric collection against a real Prometheus holding N deployments' series.

Usage::

    .venv/bin/python bench/collect.py [--sizes 1000,10000] [--per-deployment-sample 300]
        [--keep] [--cycles 5] [--parallelism 4] [--step 30] [--minutes 12] [--seed 7]

For each size N it writes an OpenMetrics file with the series one vLLM pod and its GPU
(DCGM exporter) expose per deployment, backfills it with ``promtool tsdb
create-blocks-from openmetrics``, starts Prometheus (``EmbeddedPrometheus``, 127.0.0.1 only)
on those blocks and then times, in the same run:

- the batched cycle: ``metrics_collect`` over all N targets (one query per signal), after
  one warm-up cycle, checking every deployment's values against the generated data;
- one query per deployment: ``metrics_collect`` called with one target at a time (15
  queries each) over a random sample of deployments, extrapolated linearly to N, or over
  all of them when N <= 1000 and that takes under a minute.

It prints a Markdown table (also written to bench/results/collect.md) and exits non-zero
when a batched answer is wrong. The histograms use 8 finite buckets each (a subset of
vLLM's own bucket bounds) to keep the series count manageable.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "controlplane.settings")

import django  # noqa: E402

django.setup()

from apps.devstack.prometheus import EmbeddedPrometheus, find_binary  # noqa: E402
from apps.integrations.prometheus import PrometheusClient  # noqa: E402
from apps.metrics.collection import Target  # noqa: E402
from apps.metrics.services import ALL_SIGNALS, CycleReport, metrics_collect  # noqa: E402

NAMESPACE = "bench"
WINDOW = "1m"
WINDOW_S = 60
STALENESS_S = 60.0
PER_DEPLOYMENT_FULL_BUDGET_S = 60.0
TARGET_SECONDS_AT_10K = 5.0
TARGET_SPEEDUP = 20.0
QUERIES_PER_DEPLOYMENT = 1 + len(ALL_SIGNALS)  # freshness + one per signal

MODELS = (
    "meta-llama/Llama-3.1-8B-Instruct",
    "meta-llama/Llama-3.1-70B-Instruct",
    "Qwen/Qwen2.5-7B-Instruct",
    "mistralai/Mistral-7B-Instruct-v0.3",
)
GPU_MODEL = "NVIDIA A100-SXM4-80GB"
GPU_MEMORY_MIB = 81920

# Subsets of the bucket bounds vLLM itself uses for these histograms (+Inf is added).
TTFT_BUCKETS = (0.02, 0.06, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0)
ITL_BUCKETS = (0.01, 0.025, 0.05, 0.075, 0.1, 0.2, 0.5, 1.0)
E2E_BUCKETS = (0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 40.0, 60.0)

# (family, OpenMetrics type) in the order they are written.
FAMILIES = (
    ("vllm:num_requests_waiting", "gauge"),
    ("vllm:num_requests_running", "gauge"),
    ("vllm:kv_cache_usage_perc", "gauge"),
    ("vllm:time_to_first_token_seconds", "histogram"),
    ("vllm:inter_token_latency_seconds", "histogram"),
    ("vllm:e2e_request_latency_seconds", "histogram"),
    ("vllm:request_success", "counter"),
    ("vllm:prompt_tokens", "counter"),
    ("vllm:generation_tokens", "counter"),
    ("DCGM_FI_DEV_GPU_UTIL", "gauge"),
    ("DCGM_FI_DEV_FB_USED", "gauge"),
    ("DCGM_FI_DEV_FB_FREE", "gauge"),
)
HISTOGRAMS = frozenset(family for family, kind in FAMILIES if kind == "histogram")
SERIES_PER_DEPLOYMENT = (
    3  # vLLM gauges
    + sum(len(b) + 3 for b in (TTFT_BUCKETS, ITL_BUCKETS, E2E_BUCKETS))  # +Inf, _sum, _count
    + 4  # request_success{stop,abort}, prompt and generation tokens
    + 3  # DCGM gauges
)


def deployment_name(i: int) -> str:
    return f"d-{i:05d}"


# --------------------------------------------------------------------------- data


def _phi(x: float) -> float:
    return 0.5 * (1.0 + math.erf(x / math.sqrt(2.0)))


def _cdf(bound: float, median: float, sigma: float) -> float:
    return _phi((math.log(bound) - math.log(median)) / sigma)


def _histogram(
    counts: list[int], medians: list[float], sigma: float, bounds: tuple[float, ...], start: int
) -> tuple[list[list[int]], list[int], list[float]]:
    """Cumulative bucket counters, _count and _sum over time for lognormal observations."""
    cum = [int(start * _cdf(b, medians[0], sigma) + 0.5) for b in bounds]
    total = start
    total_sum = start * medians[0] * math.exp(sigma * sigma / 2)
    buckets: list[list[int]] = [[] for _ in bounds]
    count_series: list[int] = []
    sum_series: list[float] = []
    for n, median in zip(counts, medians, strict=True):
        for j, b in enumerate(bounds):
            cum[j] += int(n * _cdf(b, median, sigma) + 0.5)
            buckets[j].append(cum[j])
        total += n
        total_sum += n * median * math.exp(sigma * sigma / 2)
        count_series.append(total)
        sum_series.append(round(total_sum, 3))
    return buckets, count_series, sum_series


def bucket_quantile(q: float, bounds: list[float], counts: list[float]) -> float:
    """Prometheus 2.x ``bucketQuantile`` for sorted, monotonic buckets ending in +Inf."""
    observations = counts[-1]
    if observations == 0:
        return math.nan
    rank = q * observations
    b = next((i for i in range(len(bounds) - 1) if counts[i] >= rank), len(bounds) - 1)
    if b == len(bounds) - 1:
        return bounds[-2]
    if b == 0 and bounds[0] <= 0:
        return bounds[0]
    start, end, count = 0.0, bounds[b], counts[b]
    if b > 0:
        start = bounds[b - 1]
        count -= counts[b - 1]
        rank -= counts[b - 1]
    return start + (end - start) * (rank / count)


@dataclass
class Expected:
    queue_length: float
    running_requests: float
    kv_cache_usage: float
    gpu_utilization: float
    ttft_p95: float


@dataclass
class Dataset:
    path: Path
    deployments: int
    series: int
    samples: int
    end: int  # unix seconds of the last sample
    bytes: int
    seconds: float
    expected: dict[int, Expected] = field(default_factory=dict)


def _deployment_series(
    i: int, seed: int, points: int, step: int
) -> tuple[dict[str, list[tuple[str, str, list]]], Expected]:
    """family -> [(sample name, label string, values)] for deployment i, and its answers."""
    rng = random.Random(seed * 1_000_003 + i)
    name = deployment_name(i)
    pod = f"{name}-{rng.getrandbits(36):09x}-{rng.getrandbits(20):05x}"
    model = MODELS[rng.randrange(len(MODELS))]
    base = f'namespace="{NAMESPACE}",deployment="{name}",pod="{pod}"'
    vllm = f'{base},model_name="{model}",engine="0"'
    dcgm = f'{base},gpu="0",UUID="GPU-{rng.getrandbits(64):016x}",modelName="{GPU_MODEL}"'

    rps = rng.uniform(0.2, 8.0)
    abort_p = rng.uniform(0.0, 0.03)
    prompt_len = rng.uniform(200, 2000)
    gen_len = rng.uniform(100, 600)
    ttft_median = rng.uniform(0.05, 0.6)
    itl_median = rng.uniform(0.015, 0.06)
    uptime = rng.uniform(3600, 86400)

    stop, abort, prompt, gen = [], [], [], []
    reqs_per_step, itl_per_step = [], []
    ttft_m, itl_m, e2e_m = [], [], []
    waiting, running, kv, util, fb_used, fb_free = [], [], [], [], [], []
    c_stop = int(rps * uptime)
    c_abort = int(c_stop * abort_p)
    c_prompt = int(c_stop * prompt_len)
    c_gen = int(c_stop * gen_len)
    start_reqs = c_stop + c_abort
    start_gen = c_gen
    for _ in range(points):
        load = rng.uniform(0.7, 1.3)
        reqs = max(1, round(rps * step * load))
        aborted = min(reqs - 1, round(reqs * abort_p * rng.uniform(0.0, 2.0)))
        new_prompt = round(reqs * prompt_len * rng.uniform(0.8, 1.2))
        new_gen = round(reqs * gen_len * rng.uniform(0.8, 1.2))
        c_stop += reqs - aborted
        c_abort += aborted
        c_prompt += new_prompt
        c_gen += new_gen
        stop.append(c_stop)
        abort.append(c_abort)
        prompt.append(c_prompt)
        gen.append(c_gen)
        reqs_per_step.append(reqs)
        itl_per_step.append(max(1, new_gen - reqs))
        ttft_m.append(ttft_median * load * rng.uniform(0.9, 1.1))
        itl_m.append(itl_median * (0.8 + 0.2 * load))
        e2e_m.append(ttft_m[-1] + gen_len * itl_m[-1])
        run = min(256, round(rps * e2e_m[-1] * rng.uniform(0.8, 1.2)))
        running.append(run)
        waiting.append(max(0, round(rng.gauss(rps * load - 4.0, 2.0))))
        kv.append(round(min(1.0, run / 256 * rng.uniform(0.6, 1.4)), 4))
        util.append(min(100, int(20 + 50 * load * rng.uniform(0.8, 1.1))))
        used = int(GPU_MEMORY_MIB * rng.uniform(0.85, 0.93))
        fb_used.append(used)
        fb_free.append(GPU_MEMORY_MIB - used)

    series: dict[str, list[tuple[str, str, list]]] = {
        "vllm:num_requests_waiting": [("vllm:num_requests_waiting", vllm, waiting)],
        "vllm:num_requests_running": [("vllm:num_requests_running", vllm, running)],
        "vllm:kv_cache_usage_perc": [("vllm:kv_cache_usage_perc", vllm, kv)],
        "vllm:request_success": [
            ("vllm:request_success_total", vllm + ',finished_reason="stop"', stop),
            ("vllm:request_success_total", vllm + ',finished_reason="abort"', abort),
        ],
        "vllm:prompt_tokens": [("vllm:prompt_tokens_total", vllm, prompt)],
        "vllm:generation_tokens": [("vllm:generation_tokens_total", vllm, gen)],
        "DCGM_FI_DEV_GPU_UTIL": [("DCGM_FI_DEV_GPU_UTIL", dcgm, util)],
        "DCGM_FI_DEV_FB_USED": [("DCGM_FI_DEV_FB_USED", dcgm, fb_used)],
        "DCGM_FI_DEV_FB_FREE": [("DCGM_FI_DEV_FB_FREE", dcgm, fb_free)],
    }
    ttft_buckets: list[list[int]] = []
    for family, bounds, counts, medians, sigma, initial in (
        ("vllm:time_to_first_token_seconds", TTFT_BUCKETS, reqs_per_step, ttft_m, 0.6, start_reqs),
        ("vllm:inter_token_latency_seconds", ITL_BUCKETS, itl_per_step, itl_m, 0.35, start_gen),
        ("vllm:e2e_request_latency_seconds", E2E_BUCKETS, reqs_per_step, e2e_m, 0.5, start_reqs),
    ):
        buckets, count_series, sum_series = _histogram(counts, medians, sigma, bounds, initial)
        rows: list[tuple[str, str, list]] = []
        for j, b in enumerate(bounds):
            rows.append((f"{family}_bucket", f'{vllm},le="{b!r}"', buckets[j]))
        rows.append((f"{family}_bucket", f'{vllm},le="+Inf"', count_series))
        rows.append((f"{family}_count", vllm, count_series))
        rows.append((f"{family}_sum", vllm, sum_series))
        series[family] = rows
        if family == "vllm:time_to_first_token_seconds":
            ttft_buckets = [*buckets, count_series]

    # What Prometheus must answer at the last sample time with a 1m window: samples at
    # T-60s..T lie in the closed range, so rate() extrapolates by exactly 1 (none needed).
    back = WINDOW_S // step
    rates = [(b[-1] - b[-1 - back]) * 1.0 / float(WINDOW_S) for b in ttft_buckets]
    p95 = bucket_quantile(0.95, [*TTFT_BUCKETS, math.inf], rates)
    expected = Expected(
        queue_length=float(waiting[-1]),
        running_requests=float(running[-1]),
        kv_cache_usage=kv[-1],
        gpu_utilization=util[-1] / 100,
        ttft_p95=p95,
    )
    return series, expected


def generate(path: Path, n: int, *, seed: int, step: int, points: int, end: int) -> Dataset:
    """Write the OpenMetrics file (families contiguous, as the format requires)."""
    started = time.perf_counter()
    stamps = [str(end - (points - 1 - k) * step) for k in range(points)]
    parts_dir = path.parent / f"{path.stem}.parts"
    parts_dir.mkdir(parents=True, exist_ok=True)
    parts = {family: open(parts_dir / f"{k:02d}", "w") for k, (family, _) in enumerate(FAMILIES)}
    expected: dict[int, Expected] = {}
    series_count = 0
    try:
        for i in range(1, n + 1):
            per_family, expected[i] = _deployment_series(i, seed, points, step)
            for family, rows in per_family.items():
                prefixed = [(f"{name}{{{labels}}} ", values) for name, labels, values in rows]
                series_count += len(rows)
                if family in HISTOGRAMS:
                    # One MetricPoint per timestamp: its buckets, then _count and _sum.
                    text = "".join(
                        f"{prefix}{values[k]} {stamp}\n"
                        for k, stamp in enumerate(stamps)
                        for prefix, values in prefixed
                    )
                else:
                    text = "".join(
                        f"{prefix}{v} {stamp}\n"
                        for prefix, values in prefixed
                        for v, stamp in zip(values, stamps, strict=True)
                    )
                parts[family].write(text)
    finally:
        for handle in parts.values():
            handle.close()
    with open(path, "w") as out:
        for k, (family, kind) in enumerate(FAMILIES):
            out.write(f"# TYPE {family} {kind}\n")
            out.flush()
            with open(parts_dir / f"{k:02d}") as part:
                shutil.copyfileobj(part, out, 1 << 20)
        out.write("# EOF\n")
    shutil.rmtree(parts_dir, ignore_errors=True)
    return Dataset(
        path=path,
        deployments=n,
        series=series_count,
        samples=series_count * points,
        end=end,
        bytes=path.stat().st_size,
        seconds=time.perf_counter() - started,
        expected=expected,
    )


# --------------------------------------------------------------------------- measuring


@dataclass
class SizeResult:
    n: int
    series: int
    samples: int
    file_mb: float
    generate_s: float
    backfill_s: float
    load_s: float
    cold_cycle_s: float
    cycles_s: list[float]
    query_s: list[float]
    queries: int
    failed_queries: int
    checked: int
    wrong: list[str]
    max_rel_error_ttft: float
    per_dep_s: float  # for all N deployments, measured or extrapolated
    per_dep_measured: int  # how many deployments were actually queried one by one
    per_dep_wall_s: float
    per_dep_mismatch: int
    own_cpu_s: list[float]
    prom_cpu_s: list[float]
    other_cpu_s: list[float]
    load: str

    @property
    def median_s(self) -> float:
        return statistics.median(self.cycles_s)

    @property
    def speedup(self) -> float:
        return self.per_dep_s / self.median_s


def shared_client_factory(timeout_s: float):
    """One client (one HTTP session) per Prometheus, for both the batched and the
    per-deployment runs, so neither pays for new connections the other does not."""
    clients: dict[str, PrometheusClient] = {}

    def factory(url: str) -> PrometheusClient:
        if url not in clients:
            clients[url] = PrometheusClient(url, timeout_s=timeout_s, trusted=True)
        return clients[url]

    return factory


def process_cpu() -> float:
    """CPU seconds of this process so far (all threads)."""
    t = os.times()
    return t.user + t.system


def prometheus_cpu(prom: EmbeddedPrometheus) -> float:
    """CPU seconds of the Prometheus process so far (Linux /proc), 0 when unknown."""
    proc = prom._proc
    try:
        fields = Path(f"/proc/{proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (AttributeError, OSError):
        return 0.0
    # utime and stime are fields 14 and 15 of stat(5); the split starts at field 3.
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_busy_cpu() -> float:
    """CPU seconds all processes of the machine have used so far (Linux /proc/stat)."""
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    except (OSError, IndexError):
        return 0.0
    # user nice system idle iowait irq softirq steal ...: everything but idle and iowait.
    ticks = [int(f) for f in fields[:8]]
    return (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")


def load_average() -> str:
    try:
        return Path("/proc/loadavg").read_text().split()[0]
    except OSError:
        return "?"


def wait_for_data(prom: EmbeddedPrometheus, n: int, at: int, timeout_s: float = 180) -> float:
    started = time.perf_counter()
    client = PrometheusClient(prom.url, timeout_s=30, trusted=True)
    query = f'count(count by (deployment) (vllm:num_requests_running{{namespace="{NAMESPACE}"}}))'
    seen = 0.0
    while time.perf_counter() - started < timeout_s:
        try:
            samples = client.query(query, at=at)
            seen = samples[0].value if samples else 0.0
        except Exception:  # noqa: BLE001 - still starting; try again
            seen = 0.0
        if seen >= n:
            return time.perf_counter() - started
        time.sleep(0.5)
    raise TimeoutError(f"Prometheus shows {seen:.0f} of {n} deployments after {timeout_s:.0f}s")


def check(report: CycleReport, expected: dict[int, Expected]) -> tuple[int, list[str], float]:
    """Every deployment: status ok and the generated value for the checked signals."""
    wrong: list[str] = []
    max_rel = 0.0
    for dep, exp in expected.items():
        obs = report.observations.get(dep, {})
        for signal in (
            "queue_length",
            "running_requests",
            "kv_cache_usage",
            "gpu_utilization",
            "ttft_p95",
        ):
            o = obs.get(signal)
            want = getattr(exp, signal)
            if o is None or o.status != "ok" or o.value is None:
                wrong.append(f"{deployment_name(dep)} {signal}: {o}")
                continue
            if signal == "ttft_p95":
                rel = abs(o.value - want) / abs(want)
                max_rel = max(max_rel, rel)
                ok = rel <= 1e-9
            else:
                ok = o.value == want
            if not ok:
                wrong.append(f"{deployment_name(dep)} {signal}: got {o.value!r}, want {want!r}")
        for signal, o in obs.items():
            if o.status != "ok":
                wrong.append(f"{deployment_name(dep)} {signal}: {o.status} {o.reason}")
    return len(expected), wrong, max_rel


def measure_size(n: int, args: argparse.Namespace, workdir: Path, promtool: str) -> SizeResult:
    size_dir = workdir / f"n{n}"
    size_dir.mkdir(parents=True, exist_ok=True)
    points = args.minutes * 60 // args.step + 1
    end = (int(time.time()) - 120) // args.step * args.step
    print(f"\n## N = {n:,}", flush=True)
    data = generate(
        size_dir / "series.om.txt", n, seed=args.seed, step=args.step, points=points, end=end
    )
    print(
        f"generated {data.series:,} series x {points} samples = {data.samples:,} samples "
        f"({data.bytes / 1e6:,.0f} MB OpenMetrics) in {data.seconds:.1f}s",
        flush=True,
    )

    started = time.perf_counter()
    tsdb = size_dir / "prometheus" / "tsdb"
    subprocess.run(
        [promtool, "tsdb", "create-blocks-from", "openmetrics", "-q", str(data.path), str(tsdb)],
        check=True,
        timeout=1200,
    )
    backfill_s = time.perf_counter() - started
    print(f"backfilled with promtool in {backfill_s:.1f}s", flush=True)
    if not args.keep:
        data.path.unlink()

    prom = EmbeddedPrometheus(data_dir=size_dir / "prometheus", retention="30d")
    try:
        started = time.perf_counter()
        prom.start(wait_s=180)
        load_s = time.perf_counter() - started
        load_s += wait_for_data(prom, n, end)
        print(f"Prometheus at {prom.url} answers for all {n:,} deployments after {load_s:.1f}s")

        targets = [
            Target(
                i,
                "vllm",
                f'{{namespace="{NAMESPACE}", deployment="{deployment_name(i)}"}}',
                prom.url,
            )
            for i in range(1, n + 1)
        ]
        factory = shared_client_factory(args.query_timeout)

        def cycle(batch: list[Target]) -> tuple[float, CycleReport]:
            t0 = time.perf_counter()
            report = metrics_collect(
                targets=batch,
                at=end,
                now=end,
                client_factory=factory,
                staleness_s=STALENESS_S,
                window=WINDOW,
                parallelism=args.parallelism,
            )
            return time.perf_counter() - t0, report

        cold_s, report = cycle(targets)
        print(f"batched: first (cold) cycle {cold_s:.2f}s, {report.queries} queries")
        cycles, query_s, own_cpu, prom_cpu, other_cpu = [], [], [], [], []
        load_before = load_average()
        for k in range(args.cycles):
            own0, prom0, all0 = process_cpu(), prometheus_cpu(prom), machine_busy_cpu()
            seconds, report = cycle(targets)
            own_cpu.append(process_cpu() - own0)
            prom_cpu.append(prometheus_cpu(prom) - prom0)
            # What the rest of the machine took meanwhile: wall times are only comparable
            # when this is near zero.
            other_cpu.append(max(0.0, machine_busy_cpu() - all0 - own_cpu[-1] - prom_cpu[-1]))
            cycles.append(seconds)
            query_s.append(report.query_seconds)
            print(
                f"batched cycle {k + 1}/{args.cycles}: {seconds:.3f}s "
                f"(queries and mapping {report.query_seconds:.3f}s, {report.queries} queries, "
                f"{report.failed_queries} failed; CPU: collector {own_cpu[-1]:.2f}s, "
                f"Prometheus {prom_cpu[-1]:.2f}s, other processes {other_cpu[-1]:.2f}s)",
                flush=True,
            )
        load = f"{load_before} -> {load_average()}"
        checked, wrong, max_rel = check(report, data.expected)
        print(
            f"correctness: {checked:,} deployments checked, {len(wrong)} problems, "
            f"ttft_p95 max relative error {max_rel:.1e}"
        )
        for line in wrong[:10]:
            print(f"  WRONG {line}")
        batched = report.observations

        # One query per deployment and signal: one target per metrics_collect call.
        order = list(range(1, n + 1))
        random.Random(args.seed).shuffle(order)
        sample = min(n, args.per_deployment_sample)
        mismatch = 0
        done = 0
        started = time.perf_counter()
        for dep in order:
            if done == sample:
                elapsed = time.perf_counter() - started
                if n > 1000 or elapsed / done * n > PER_DEPLOYMENT_FULL_BUDGET_S:
                    break
            _, single = cycle([targets[dep - 1]])
            done += 1
            if single.observations[dep] != batched[dep]:
                mismatch += 1
        per_dep_wall = time.perf_counter() - started
        per_dep_s = per_dep_wall / done * n
        basis = "measured" if done == n else f"extrapolated from {done}"
        print(
            f"one query per deployment: {done:,} deployments x {QUERIES_PER_DEPLOYMENT} "
            f"queries in {per_dep_wall:.1f}s -> {per_dep_s:.1f}s for {n:,} ({basis}); "
            f"{mismatch} answers differ from the batched cycle",
            flush=True,
        )
    finally:
        prom.stop()
        if not args.keep:
            shutil.rmtree(size_dir, ignore_errors=True)

    return SizeResult(
        n=n,
        series=data.series,
        samples=data.samples,
        file_mb=data.bytes / 1e6,
        generate_s=data.seconds,
        backfill_s=backfill_s,
        load_s=load_s,
        cold_cycle_s=cold_s,
        cycles_s=cycles,
        query_s=query_s,
        queries=report.queries,
        failed_queries=report.failed_queries,
        checked=checked,
        wrong=wrong,
        max_rel_error_ttft=max_rel,
        per_dep_s=per_dep_s,
        per_dep_measured=done,
        per_dep_wall_s=per_dep_wall,
        per_dep_mismatch=mismatch,
        own_cpu_s=own_cpu,
        prom_cpu_s=prom_cpu,
        other_cpu_s=other_cpu,
        load=load,
    )


# --------------------------------------------------------------------------- report


def table(results: list[SizeResult]) -> str:
    head = (
        "| N | series loaded | samples | backfill (s) | batched cycle median (s) "
        "| batched cycle max (s) | queries / batched cycle | per-deployment cycle (s) "
        "| speed-up | <= 5 s at 10k | >= 20x | answers checked |"
    )
    lines = [head, "|" + "---|" * head.count(" | ") + "---|"]
    for r in results:
        if r.per_dep_measured == r.n:
            per_dep = f"{r.per_dep_s:.1f} (measured, all {r.n:,})"
        else:
            per_dep = f"{r.per_dep_s:.1f} (extrapolated from {r.per_dep_measured:,} measured)"
        if r.n == 10_000:
            seconds_target = "met" if max(r.cycles_s) <= TARGET_SECONDS_AT_10K else "MISSED"
        else:
            seconds_target = "n/a"
        speed_target = "met" if r.speedup >= TARGET_SPEEDUP else "MISSED"
        answers = "all ok" if not r.wrong else f"{len(r.wrong)} WRONG"
        lines.append(
            f"| {r.n:,} | {r.series:,} | {r.samples:,} | {r.backfill_s:.1f} "
            f"| {r.median_s:.2f} | {max(r.cycles_s):.2f} | {r.queries} | {per_dep} "
            f"| {r.speedup:.0f}x | {seconds_target} | {speed_target} | {answers} |"
        )
    return "\n".join(lines)


def notes(results: list[SizeResult], args: argparse.Namespace) -> str:
    version = subprocess.run(
        [find_binary() or "prometheus", "--version"], capture_output=True, text=True, check=False
    ).stdout.splitlines()[:1]
    lines = [
        f"- Machine: {os.cpu_count()} CPUs, {platform.python_implementation()} "
        f"{platform.python_version()}, {version[0] if version else 'prometheus ?'}.",
        f"- Per deployment: one vLLM pod ({SERIES_PER_DEPLOYMENT} series: 3 gauges, 3 histograms "
        "with 8 finite buckets each - a subset of vLLM's bounds - plus +Inf/_sum/_count, 4 "
        "counters) and its GPU (3 DCGM gauges); "
        f"{args.minutes} min of samples every {args.step}s, ending 2 min before the run.",
        f"- Batched: median/max of {args.cycles} cycles after one warm-up cycle; a cycle is "
        f"the wall time of `metrics_collect` (planning, {len(ALL_SIGNALS)} signals + 1 freshness "
        f"query, parallelism {args.parallelism}, parsing, mapping, observations), without storing.",
        f"- Per-deployment: `metrics_collect` with one target per call "
        f"({QUERIES_PER_DEPLOYMENT} queries each, same parallelism and HTTP session); "
        "'measured' = every deployment queried, 'extrapolated' = the time for a random sample "
        "scaled linearly to N.",
    ]
    for r in results:
        lines.append(
            f"- N={r.n:,}: OpenMetrics {r.file_mb:,.0f} MB generated in {r.generate_s:.1f}s; "
            f"Prometheus ready with all data after {r.load_s:.1f}s; cold first cycle "
            f"{r.cold_cycle_s:.2f}s; batched cycles {', '.join(f'{s:.2f}' for s in r.cycles_s)}s "
            f"(median CPU per cycle: collector {statistics.median(r.own_cpu_s):.2f}s, Prometheus "
            f"{statistics.median(r.prom_cpu_s):.2f}s, other processes on the machine "
            f"{', '.join(f'{s:.1f}' for s in r.other_cpu_s)}s; 1-min load average {r.load}); "
            f"{r.failed_queries} failed queries; {r.checked:,} deployments checked "
            f"(queue_length, running_requests, kv_cache_usage, gpu_utilization exact, ttft_p95 "
            f"max relative error {r.max_rel_error_ttft:.1e}); per-deployment answers differing "
            f"from batched: {r.per_dep_mismatch} of {r.per_dep_measured:,}."
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000", help="comma-separated deployment counts")
    parser.add_argument("--per-deployment-sample", type=int, default=300)
    parser.add_argument("--keep", action="store_true", help="keep the data directories")
    parser.add_argument("--cycles", type=int, default=5)
    parser.add_argument("--parallelism", type=int, default=4)
    parser.add_argument("--step", type=int, default=30, choices=(15, 20, 30), help="seconds")
    parser.add_argument("--minutes", type=int, default=12, help="span of the samples")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--query-timeout", type=float, default=60.0, help="seconds per query")
    parser.add_argument("--workdir", help="where the data goes (default: a new temp dir)")
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    if args.minutes * 60 < 2 * WINDOW_S:
        parser.error("--minutes must cover at least two rate windows")

    promtool = shutil.which("promtool") or "/usr/bin/promtool"
    if find_binary() is None or not Path(promtool).exists():
        print("SKIP: prometheus/promtool not installed (Debian package 'prometheus')")
        return 0

    run_started = time.perf_counter()
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="bench-collect-"))
    workdir.mkdir(parents=True, exist_ok=True)
    results: list[SizeResult] = []
    try:
        for n in sizes:
            results.append(measure_size(n, args, workdir, promtool))
    finally:
        if args.keep:
            print(f"\ndata kept in {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)

    text = table(results)
    extra = notes(results, args)
    total = time.perf_counter() - run_started
    print(f"\n{text}\n\n{extra}\n\nbenchmark took {total:.0f}s")
    out = ROOT / "bench" / "results" / "collect.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    command = "bench/collect.py " + " ".join(argv if argv is not None else sys.argv[1:])
    out.write_text(
        f"# bench/collect - {time.strftime('%Y-%m-%d %H:%M:%S %Z')}\n\n"
        f"`.venv/bin/python {command.strip()}` ({total:.0f}s)\n\n{text}\n\n{extra}\n",
        encoding="utf-8",
    )
    print(f"written to {out.relative_to(ROOT)}")
    return 1 if any(r.wrong for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
