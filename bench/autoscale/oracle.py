"""Replica capacity and the clairvoyant schedule.

Capacity
    How much of a trace's traffic one replica serves within the TTFT SLO: the highest
    steady Poisson rate, with the trace's own mix of prompt and output lengths, at which a
    small pool of replicas still answers ``quantile`` (99 %) of requests within the SLO,
    found by bisection on the replica model. It is expressed in tokens (prompt + output)
    per second per replica so that it carries over when the mix drifts during the trace.

Oracle
    It knows every future arrival. Demand is counted in windows of ``window_s`` starting
    every ``step_s``: ``need[i] = ceil(tokens arriving in [s_i, s_i + window) / window /
    (capacity x factor))``. A replica added now serves only after the cold start, and
    removing one is immediate, so the count set at ``t`` is the largest need over
    ``[t, t + cold_start + step]``: capacity arrives in time for every window and leaves
    as soon as no window before the next chance to add it back needs it. ``factor``
    corrects the steady-state capacity for the trace's burstiness and the pooling of many
    replicas: the benchmark searches it (bisection) for the cheapest schedule that still
    meets the SLO target when replayed, so the oracle's GPU-hours approximate the least
    any policy can spend for that SLO given the cold start.
"""

from __future__ import annotations

import bisect
import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from apps.fleetsim.fleet import Fleet, SimulatedDeployment
from apps.fleetsim.profiles import GpuProfile
from apps.fleetsim.workload import Request


@dataclass(frozen=True)
class Capacity:
    tokens_per_s: float  # per replica, prompt + output tokens of arriving requests
    requests_per_s: float  # the same at the calibration mix's mean length
    concurrency: float  # mean requests in flight per replica at that rate
    pool: int  # replicas the calibration ran with


def _length_sample(requests: Sequence[Request], n: int) -> list[tuple[int, int]]:
    step = max(1, len(requests) // n)
    return [(r.prompt_tokens, r.output_tokens) for r in requests[::step]][:n]


def _steady_load(lengths: Sequence[tuple[int, int]], rate: float, seed: int) -> list[Request]:
    rng = random.Random(f"capacity:{seed}")
    t = 0.0
    out = []
    for prompt, output in lengths:
        t += rng.expovariate(rate)
        out.append(Request(t, prompt, output))
    return out


def measure_capacity(
    requests: Sequence[Request],
    profile: GpuProfile,
    ttft_slo_s: float,
    *,
    pool: int = 4,
    sample: int = 3000,
    quantile: float = 0.99,
    seed: int = 0,
    iterations: int = 12,
) -> Capacity:
    """Bisection on the per-replica rate (see the module docstring)."""
    lengths = _length_sample(requests, sample)
    if not lengths:
        raise ValueError("no requests to measure capacity with")
    mean_tokens = sum(p + o for p, o in lengths) / len(lengths)

    def attempt(rate_per_replica: float) -> tuple[bool, float]:
        load = _steady_load(lengths, rate_per_replica * pool, seed)
        dep = SimulatedDeployment("cal", profile.model_name, "cal", profile, pool, load)
        Fleet([dep]).run_until_idle(max_time_s=load[-1].arrival_s + 7200.0)
        done = [r for r in dep.completed() if r.completed]
        ok = sum(1 for r in done if r.ttft_s is not None and r.ttft_s <= ttft_slo_s)
        # Little's law: mean requests in flight = total time in system / span.
        in_flight = sum(r.e2e_s for r in done if r.e2e_s is not None) / max(
            load[-1].arrival_s, 1e-9
        )
        return ok >= quantile * len(load), in_flight / pool

    # A generous upper bound: the prefill-bound rate (every token at compute speed).
    hi = 1.0 / (profile.token_compute_s * mean_tokens)
    lo = 0.0
    concurrency = 0.0
    for _ in range(iterations):
        mid = (lo + hi) / 2
        good, conc = attempt(mid)
        if good:
            lo, concurrency = mid, conc
        else:
            hi = mid
    if lo == 0.0:
        raise ValueError("no rate meets the SLO on this GPU profile (is the SLO too tight?)")
    return Capacity(lo * mean_tokens, lo, concurrency, pool)


def demand_tokens(
    requests: Sequence[Request], duration_s: float, step_s: float, window_s: float
) -> list[float]:
    """Tokens/s arriving in ``[i*step, i*step + window)`` for each step start in the trace."""
    starts = [i * step_s for i in range(math.ceil(duration_s / step_s - 1e-9))]
    times = [r.arrival_s for r in requests]
    prefix = [0]
    for r in requests:
        prefix.append(prefix[-1] + r.prompt_tokens + r.output_tokens)
    out = []
    for s in starts:
        # Windows reaching past the end are averaged over the part inside the trace, so
        # the last ones do not read as a lull.
        span = max(min(window_s, duration_s - s), 1.0)
        lo = bisect.bisect_left(times, s)
        hi = bisect.bisect_left(times, s + span)
        out.append((prefix[hi] - prefix[lo]) / span)
    return out


def needs(demand: Sequence[float], capacity_tps: float, factor: float, floor: int = 1) -> list[int]:
    """Replicas each window needs at ``capacity x factor`` tokens/s per replica."""
    per = capacity_tps * factor
    return [max(floor, math.ceil(d / per - 1e-9)) for d in demand]


def schedule(
    need: Sequence[int], step_s: float, cold_start_s: float, lookback_s: float = 0.0
) -> list[int]:
    """``counts[i]``: the replicas to hold from ``i * step`` on: the largest need over
    ``[t - lookback, t + cold_start + step]``."""
    ahead = math.ceil((cold_start_s + step_s) / step_s - 1e-9)
    back = math.ceil(lookback_s / step_s - 1e-9)
    n = len(need)
    return [max(need[max(0, i - back) : min(n, i + ahead + 1)]) for i in range(n)]


def search_factor(
    evaluate: Callable[[float], bool], *, lo: float = 0.5, hi: float = 2.0, iterations: int = 6
) -> float:
    """Largest factor in ``[lo, hi]`` for which ``evaluate`` holds (bisection in log space,
    assuming it holds at small factors and fails at large ones). Returns ``lo`` scaled
    down further if even ``lo`` fails (up to three halvings)."""
    for _ in range(3):
        if evaluate(lo):
            break
        lo, hi = lo / 2, lo
    else:
        return lo
    if evaluate(hi):
        return hi
    for _ in range(iterations):
        mid = math.sqrt(lo * hi)
        if evaluate(mid):
            lo = mid
        else:
            hi = mid
    return lo
