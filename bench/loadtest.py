"""The built-in load test's client, measured: the highest rate it sustains on this machine.

Usage::

    .venv/bin/python bench/loadtest.py [--rates 20,40,60,80,120,160] [--duration 8]
        [--profile H100-80GB] [--speed 20] [--max-prompt-tokens 1000] [--server-nice 10]

A child process serves one simulated replica (:func:`apps.fleetsim.capacity.served_replicas`)
in fast mode, so it has capacity to spare at every rate asked (an H100 at speed 20 serves
~500 chat requests/s), at a lower CPU priority (``--server-nice``) so that the client, the
thing measured, gets the cores first as it would with a remote server. This process runs
the load test's performance mode (:func:`apps.golive.loadtest.run_load_test`) at each rate
with the chat mix the capacity tests use, streaming. Printed per rate: the rate the
Poisson schedule asked for, the rate the client achieved (requests started over the
sending window), how late it started them (p99 and max), the client's CPU per request and
share of a core, requests not sent (client-limited) and failed (the server's doing).

The client *sustains* a rate when it achieved at least 98 % of the schedule, with a p99
start lag of at most 100 ms and nothing client-limited. Start lag does not enter the
latencies (they are timed from the actual send); it only bunches arrivals, and 100 ms is
15 % of the smallest wall-clock TTFT SLO the capacity tests use (0.67 s). On a shared
machine the lag follows the machine's load more than the client's work, so the client's
CPU per request is printed too, with the rate one core would give at that cost.

Last, the highest rate the capacity tests (tests/integration/test_loadtest_capacity.py)
ask for, and the ratio of the highest sustained rate to it (the target is at least 2).
The server and the client share the machine's cores, as in the tests.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from apps.fleetsim.capacity import capacity_at_slo, served_replicas
from apps.golive.loadtest import LoadTestPlan, WorkloadSpec, run_load_test

MODEL = "bench-llama-8b"
SUSTAINED_SHARE = 0.98
SUSTAINED_LAG_P99_S = 0.1


def highest_rate_the_tests_ask() -> float:
    """The capacity tests ramp from 0.8x the model's capacity by 1.15x per step and stop
    at the first step that breaks the SLO; the highest step they can reach within their
    10 % tolerance is the first at or above 1.1x the capacity (wall requests/s)."""
    from tests.integration import test_loadtest_capacity as tests

    highest = 0.0
    for case in tests.CASES:
        known = capacity_at_slo(
            case.profile,
            "chat",
            tests.SLO_TTFT_S,
            case.slo_itl_s,
            tests.QUANTILE,
            step_s=case.step_sim_s,
            seeds=(0, 1, 2, 3, 4),
            max_prompt_tokens=tests.MAX_PROMPT_TOKENS,
        )
        rate = 0.8 * known
        while rate < 1.1 * known:
            rate *= 1.15
        highest = max(highest, rate * case.speed)
    return highest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rates", default="20,40,60,80,120,160")
    parser.add_argument("--duration", type=float, default=8.0)
    parser.add_argument("--profile", default="H100-80GB")
    parser.add_argument("--speed", type=float, default=20.0)
    parser.add_argument("--max-prompt-tokens", type=int, default=1000)
    parser.add_argument("--server-nice", type=int, default=10)
    args = parser.parse_args()
    rates = [float(r) for r in args.rates.split(",")]

    print(
        f"client: one load test per rate, {args.duration:g} s each, chat mix (prompts <= "
        f"{args.max_prompt_tokens}), streaming; target: one {args.profile} replica at speed "
        f"{args.speed:g} in a child process (nice {args.server_nice})"
    )
    header = (
        f"{'asked/s':>8} {'scheduled/s':>11} {'achieved/s':>10} {'share':>6} {'lag p99 ms':>10} "
        f"{'lag max ms':>10} {'cpu ms/req':>10} {'cpu %core':>9} {'limited':>7} {'failed':>6}"
    )
    print(header)
    sustained = 0.0
    cpu_per_request: list[float] = []
    target = served_replicas(
        args.profile, model=MODEL, speed=args.speed, tick_s=0.01, niceness=args.server_nice
    )
    with target as urls:
        plan = LoadTestPlan(
            base_url=urls[0],
            model=MODEL,
            mode="performance",
            max_rate_rps=max(rates),
            max_total_s=args.duration + 120.0,
            max_concurrency=4096,
            workload=WorkloadSpec(preset="chat", max_prompt_tokens=args.max_prompt_tokens),
            request_timeout_s=60.0,
        )
        # Warm up (first connections, the server's first requests), not reported.
        run_load_test(replace(plan, rate_rps=rates[0], duration_s=2.0))
        for rate in rates:
            step = run_load_test(replace(plan, rate_rps=rate, duration_s=args.duration)).steps[0]
            scheduled = step.sent / args.duration
            share = step.achieved_rps / scheduled if scheduled else 0.0
            failed = sum(step.errors.values())
            ok = (
                share >= SUSTAINED_SHARE
                and step.lag_p99_s <= SUSTAINED_LAG_P99_S
                and step.client_limited == 0
            )
            if ok:
                sustained = max(sustained, rate)
            cpu_per_request.append(step.cpu_s / max(step.sent, 1))
            print(
                f"{rate:>8.0f} {scheduled:>11.1f} {step.achieved_rps:>10.1f} {share:>6.3f} "
                f"{step.lag_p99_s * 1e3:>10.1f} {step.max_lag_s * 1e3:>10.1f} "
                f"{step.cpu_s / max(step.sent, 1) * 1e3:>10.2f} "
                f"{step.cpu_s / step.duration_s * 100:>9.0f} {step.client_limited:>7} "
                f"{failed:>6}{'' if ok else '  (not sustained)'}",
                flush=True,
            )
    asked = highest_rate_the_tests_ask()
    ratio = sustained / asked if asked else float("inf")
    cpu = sorted(cpu_per_request)[len(cpu_per_request) // 2]
    print(f"highest rate sustained: {sustained:g} requests/s")
    print(
        f"client CPU per request (median over the rates): {cpu * 1e3:.2f} ms, "
        f"i.e. ~{1 / cpu:.0f} requests/s on one core"
    )
    print(f"highest rate the capacity tests ask for: {asked:.1f} requests/s")
    print(f"ratio: {ratio:.2f}x (target >= 2x): {'OK' if ratio >= 2 else 'BELOW TARGET'}")


if __name__ == "__main__":
    main()
