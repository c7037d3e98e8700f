"""Replay the Azure LLM conversation trace through the fleet simulator and time it.

Usage::

    .venv/bin/python bench/fleetsim_replay.py [--gpu A100-80GB] [--replicas 1,2,4,8,20]
        [--trace PATH] [--time-scale 1.0]

For each replica count, serves the whole trace until every request finished and
prints the wall and CPU time of the simulation, the simulated requests per wall-clock
second, and the resulting TTFT and inter-token latency percentiles. Exits 0 with a
SKIP line when the trace is not available on this machine.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from apps.fleetsim.fleet import Fleet, SimulatedDeployment
from apps.fleetsim.profiles import PROFILES, get_profile
from apps.fleetsim.workload import find_azure_trace, read_trace_csv


def _percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    return sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--trace", help="path to AzureLLMInferenceTrace_conv.csv")
    parser.add_argument("--gpu", default="A100-80GB", help=f"one of {', '.join(PROFILES)}")
    parser.add_argument("--replicas", default="1,2,4,8,20", help="comma-separated counts")
    parser.add_argument("--time-scale", type=float, default=1.0, help="2.0 = twice as fast")
    args = parser.parse_args(argv)

    if args.trace:
        trace: Path | None = Path(args.trace) if Path(args.trace).is_file() else None
        where = args.trace
    else:
        trace = find_azure_trace()
        where = "/work/shared/traces and ../shared/traces"
    if trace is None:
        print(f"SKIP: Azure LLM conversation trace not found in {where}")
        return 0
    profile = get_profile(args.gpu)
    counts = [int(c) for c in args.replicas.split(",") if c.strip()]

    started = time.perf_counter()
    requests = read_trace_csv(trace, time_scale=args.time_scale)
    print(
        f"trace: {trace} ({len(requests)} requests over {requests[-1].arrival_s:.0f} s, "
        f"read in {time.perf_counter() - started:.2f} s); gpu={profile.name}"
    )
    header = (
        f"{'replicas':>8} {'wall_s':>7} {'cpu_s':>6} {'sim_req/s':>10} {'done':>6} "
        f"{'ttft_p50':>9} {'ttft_p99':>9} {'itl_mean':>9} {'last_done_s':>11}"
    )
    print(header)
    total_wall = 0.0
    for replicas in counts:
        deployment = SimulatedDeployment(
            "azure-conv", profile.model_name, "bench", profile, replicas, requests
        )
        fleet = Fleet([deployment])
        wall0, cpu0 = time.perf_counter(), time.process_time()
        fleet.run_until_idle(max_time_s=7 * 86_400.0)
        wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
        total_wall += wall
        done = [r for r in deployment.completed() if r.completed]
        ttfts = sorted(r.ttft_s for r in done if r.ttft_s is not None)
        itls = [r.mean_itl_s for r in done if r.mean_itl_s is not None]
        last_done = max((r.finish_s for r in done), default=float("nan"))
        print(
            f"{replicas:>8} {wall:>7.2f} {cpu:>6.2f} {len(requests) / wall:>10.0f} "
            f"{len(done):>6} {_percentile(ttfts, 0.5):>9.3f} {_percentile(ttfts, 0.99):>9.2f} "
            f"{statistics.fmean(itls) if itls else float('nan'):>9.4f} {last_done:>11.0f}"
        )
    print(f"total simulation wall time: {total_wall:.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
