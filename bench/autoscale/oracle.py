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

Reactive ideal
    The same windows, needs and factor search, without the look-ahead: the count set at
    ``t`` is the largest need of the windows that have *ended* by ``t`` (over the same
    look-back), and before the first one ends the shared starting count. It knows the
    demand exactly (no scrape delay, no noise, no capacity to learn) and gets the headroom
    each trace needs from a search that replays the trace, so it is a reference too: about
    the least a policy that only reacts, with one headroom for the whole trace, spends for
    the SLO given the cold start (one that extrapolates a ramp can spend less on it). The
    ratio of its GPU-hours to the oracle's is the price of not knowing the future.
"""

from __future__ import annotations

import bisect
import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from apps.fleetsim.fleet import Fleet, SimulatedDeployment
from apps.fleetsim.profiles import GpuProfile
from apps.fleetsim.replica import replay
from apps.fleetsim.workload import Request


class NoCapacity(ValueError):
    """No per-replica rate meets the SLO target on the feasible requests."""


@dataclass(frozen=True)
class Feasibility:
    """Which requests one replica of a profile can serve within the TTFT SLO at all.

    A request is infeasible when ``prompt + output`` exceeds what a replica accepts
    (``max_model_len``, or the KV cache when smaller: vLLM answers 400) or when its prefill
    alone, on an idle replica, takes longer than the SLO. No policy can serve those within
    the SLO, so the benchmark counts them apart, the same for every policy.
    """

    max_request_tokens: int
    max_prompt_tokens: int  # longest prompt whose idle prefill fits the SLO (0: none)
    ttft_slo_s: float

    def feasible(self, prompt_tokens: int, output_tokens: int) -> bool:
        return (
            prompt_tokens + output_tokens <= self.max_request_tokens
            and prompt_tokens <= self.max_prompt_tokens
        )

    def flags(self, requests: Sequence[Request]) -> list[bool]:
        return [self.feasible(r.prompt_tokens, r.output_tokens) for r in requests]

    def describe(self) -> str:
        return (
            f"feasible: prompt + output <= {self.max_request_tokens:,} tokens and prompt <= "
            f"{self.max_prompt_tokens:,} tokens (prefill alone within {self.ttft_slo_s:g} s "
            "on an idle replica)"
        )


def feasibility(profile: GpuProfile, ttft_slo_s: float) -> Feasibility:
    """Measure the longest prompt whose prefill fits ``ttft_slo_s`` on an idle replica
    (bisection on the replica model; TTFT grows with the prompt)."""
    limit = profile.max_request_tokens

    def ttft(prompt: int) -> float:
        record = replay(profile, [Request(0.0, prompt, 1)])[0]
        return math.inf if record.ttft_s is None else record.ttft_s

    lo, hi = 0, max(limit - 1, 1)
    if ttft(hi) <= ttft_slo_s:
        lo = hi
    else:
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if ttft(mid) <= ttft_slo_s:
                lo = mid
            else:
                hi = mid
    return Feasibility(limit, lo, ttft_slo_s)


@dataclass(frozen=True)
class Capacity:
    tokens_per_s: float  # per replica, prompt + output tokens of arriving requests
    requests_per_s: float  # the same at the calibration mix's mean length
    concurrency: float  # mean requests in flight per replica at that rate
    pool: int  # replicas the calibration ran with


def _length_sample(requests: Sequence[Request], n: int) -> list[tuple[int, int]]:
    step = max(1, len(requests) // n)
    return [(r.prompt_tokens, r.output_tokens) for r in requests[::step]][:n]


def _steady_load(
    lengths: Sequence[tuple[int, int]], rate: float, seed: int, min_duration_s: float = 0.0
) -> list[Request]:
    """Poisson arrivals at ``rate`` with ``lengths`` in turn, all of them at least once and
    cycling through them again until the load lasts ``min_duration_s``."""
    rng = random.Random(f"capacity:{seed}")
    t = 0.0
    out = []
    i = 0
    while i < len(lengths) or t < min_duration_s:
        prompt, output = lengths[i % len(lengths)]
        t += rng.expovariate(rate)
        out.append(Request(t, prompt, output))
        i += 1
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
    feasible: Feasibility | None = None,
    min_duration_s: float = 120.0,
) -> Capacity:
    """Bisection on the per-replica rate (see the module docstring). With ``feasible``,
    the infeasible requests of the mix still load the replicas but the quantile is taken
    over the feasible ones. Raises :class:`NoCapacity` when no rate qualifies.

    Each attempt's load lasts at least ``min_duration_s`` (the sample is cycled): a load
    shorter than the time a replica takes to fill its KV cache and reach steady state
    (seconds at an H100's rates for a few thousand requests) measures a transient and
    overstates the capacity: a replica's flat-out rate can be below it."""
    lengths = _length_sample(requests, sample)
    if not lengths:
        raise NoCapacity("no requests to measure capacity with")
    ok_flags = [feasible is None or feasible.feasible(p, o) for p, o in lengths]
    n_feasible = sum(ok_flags)
    if n_feasible == 0:
        raise NoCapacity("no request of the trace is feasible on this GPU profile")
    mean_tokens = sum(p + o for p, o in lengths) / len(lengths)

    def attempt(rate_per_replica: float) -> tuple[bool, float]:
        load = _steady_load(lengths, rate_per_replica * pool, seed, min_duration_s)
        dep = SimulatedDeployment("cal", profile.model_name, "cal", profile, pool, load)
        Fleet([dep]).run_until_idle(max_time_s=load[-1].arrival_s + 7200.0)
        done = [r for r in dep.completed() if r.completed]
        ok = sum(
            1
            for r in done
            if r.ttft_s is not None
            and r.ttft_s <= ttft_slo_s
            and ok_flags[r.request_id % len(ok_flags)]
        )
        # Little's law: mean requests in flight = total time in system / span.
        in_flight = sum(r.e2e_s for r in done if r.e2e_s is not None) / max(
            load[-1].arrival_s, 1e-9
        )
        feasible_sent = sum(ok_flags[i % len(ok_flags)] for i in range(len(load)))
        return ok >= quantile * feasible_sent, in_flight / pool

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
        raise NoCapacity(
            f"no rate meets {quantile * 100:g} % of the feasible requests within "
            f"{ttft_slo_s:g} s on {profile.name} (is the SLO too tight?)"
        )
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
        # Every window is full-length. One reaching past the end is moved back to end
        # with the trace, so the last ones neither read as a lull nor average over a
        # sliver (a trace shorter than the window averages over the whole of it).
        a = max(0.0, min(s, duration_s - window_s))
        span = max(min(window_s, duration_s), 1e-9)
        lo = bisect.bisect_left(times, a)
        hi = bisect.bisect_left(times, a + span)
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


def reactive_schedule(
    need: Sequence[int], step_s: float, window_s: float, lookback_s: float, initial: int
) -> list[int]:
    """``counts[i]``: the replicas a policy that only reacts holds from ``i * step`` on, when
    ``need[j]`` is that of the window ``[j * step, j * step + window)``: the largest need
    of the windows that ended within ``[t - lookback, t]`` (their ends are past, so it
    knows them), ``initial`` until the first window ends."""
    lag = math.ceil(window_s / step_s - 1e-9)
    back = math.ceil(lookback_s / step_s - 1e-9)
    return [
        initial if i < lag else max(need[max(0, i - lag - back) : i - lag + 1])
        for i in range(len(need))
    ]


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
