"""Sizing from demand and learned capacity: the ``demand_capacity`` target kind.

:func:`size` proposes ceil((demand + backlog / drain time) / (capacity * utilisation target))
replicas (see :class:`.types.CapacitySizing`) and, separately, what this interval teaches
about capacity (:func:`learn`). The proposal uses the capacity learned *before* this
interval, so for the same history more demand never asks for fewer replicas; what is learned
goes into the next :class:`.types.History` through ``Decision.capacity``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple

from .reasons import number, percent, replicas_text
from .targets import Reading, read, unusable
from .types import (
    EPS,
    MIN_DRAIN_S,
    OK,
    Capacity,
    CapacitySizing,
    History,
    Obs,
    Policy,
    Proposal,
    Target,
    ceil_count,
)

# How much one "there was room" interval raises the estimate, before the learning rate.
PROBE_STEP = 0.25


class Sizing(NamedTuple):
    proposal: Proposal
    demand: float | None  # demand this interval (None: unknown)
    capacity: Capacity | None  # capacity after this interval (None: nothing learned)


def unit(signal: str) -> str:
    if signal == "request_rate":
        return "req/s"
    if signal.endswith("token_rate"):
        return "tokens/s"
    return "/s"


def estimate(cs: CapacitySizing, history: History) -> Capacity:
    """The capacity per replica to size with: learned, else the profile's, within bounds."""
    low, high = cs.capacity_bounds
    if history.capacity is None:
        return Capacity(cs.initial_per_replica, 0)
    return Capacity(min(high, max(low, history.capacity.per_replica)), history.capacity.intervals)


def drain_s(policy: Policy) -> float:
    cs = policy.capacity
    return (
        cs.backlog_drain_s
        if cs.backlog_drain_s is not None
        else max(policy.cold_start_s, MIN_DRAIN_S)
    )


def backlog_growth(signal: str, backlog: float, history: History, now: float) -> float:
    """Requests/s the backlog grew by since the previous reading: arrivals not finished."""
    earlier = [(t, v) for t, v in history.signal_samples.get(signal, ()) if t < now]
    if not earlier:
        return 0.0
    t, v = max(earlier)
    return max(0.0, (backlog - v) / (now - t))


def learn(
    cs: CapacitySizing,
    before: Capacity,
    *,
    throughput: float,
    ready: int,
    backlog: float,
    latency: Reading | None,
) -> Capacity | None:
    """What one interval teaches (None: nothing). ``throughput`` is the deployment's finished
    work per second, ``latency`` the latency reading when a latency SLO is set."""
    if ready <= 0:
        return None
    if cs.latency_slo_s is not None and (latency is None or latency.status != OK):
        return None  # unknown latency: the interval cannot tell capacity at the SLO
    est = before.per_replica
    per = throughput / ready
    saturated = backlog / ready >= 1.0 - EPS
    if not saturated and per < cs.learn_min_utilization * est - EPS:
        return None  # idle: low utilisation says nothing about capacity
    slo = cs.latency_slo_s
    lat = latency.value if latency is not None else None
    alpha = cs.learn_rate
    if slo is not None and lat is not None and lat > slo:
        new = est + alpha * (per - est) if per < est else est
    elif saturated:
        new = est + alpha * (per - est) if (slo is None or per > est) else est
    elif slo is not None and lat is not None and lat <= cs.probe_latency_ratio * slo + EPS:
        new = est * (1.0 + alpha * PROBE_STEP)
    else:
        return None
    low, high = cs.capacity_bounds
    return Capacity(min(high, max(low, new)), before.intervals + 1)


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def forecast(
    cs: CapacitySizing, history: History, now: float, lead_s: float
) -> tuple[float, str] | None:
    """The demand expected within ``lead_s`` from the same time one period ago, scaled by
    the trend, and how to say it; None when off or without a period of history."""
    if not cs.forecast_periods_s or not history.demand_buckets:
        return None
    b = cs.forecast_bucket_s
    best: tuple[float, str] | None = None
    for period in cs.forecast_periods_s:
        then = now - period
        ahead = [m for start, m, _ in history.demand_buckets if then - b < start <= then + lead_s]
        if not ahead:
            continue
        recent = _mean([m for s, m, _ in history.demand_buckets if now - 3600 <= s < now - b])
        past = _mean([m for s, m, _ in history.demand_buckets if then - 3600 <= s < then - b])
        trend = 1.0
        if recent is not None and past is not None and past > 0:
            trend = min(2.0, max(0.5, recent / past))
        expected = max(ahead) * trend
        when = "a day" if period == 86400 else "a week" if period == 604800 else f"{period:g} s"
        text = (
            f"the forecast floor (demand {when} ago over the next {number(lead_s)} s, "
            f"trend x{trend:.2f}) expects"
        )
        if best is None or expected > best[0]:
            best = (expected, text)
    return best


def size(
    target: Target,
    observations: Mapping[str, Obs],
    history: History,
    policy: Policy,
    now: float,
    current: int,
    measured: int,
) -> Sizing:
    """The target's proposal; ``measured``: the replicas behind the readings (the ready
    ones, live), which capacity is learned per."""
    cs = policy.capacity
    r = read(observations.get(target.signal), policy)
    if r.status != OK or r.value is None:
        return Sizing(unusable(target, r), None, None)
    throughput = r.value
    backlog = 0.0
    if cs.backlog_signal:
        b = read(observations.get(cs.backlog_signal), policy)
        if b.status != OK or b.value is None:
            detail = f": {b.reason}" if b.reason else ""
            why = f"{cs.backlog_signal} (the backlog) is {b.status}{detail}"
            proposal = Proposal(target.signal, target.kind, None, target.value, None, b.status, why)
            return Sizing(proposal, None, None)
        backlog = b.value
    growth = backlog_growth(cs.backlog_signal, backlog, history, now) if cs.backlog_signal else 0
    demand = throughput + growth
    cap = estimate(cs, history)
    u = target.value
    drain = drain_s(policy)
    need = (demand + backlog / drain) / (cap.per_replica * u)
    peak = max(
        [demand, *(v for t, v in history.demand_samples if now - cs.peak_window_s < t < now)]
    )
    peak_need = ceil_count(peak / (cap.per_replica * u))
    wanted = ceil_count(need)

    u_text = unit(target.signal)
    learned = "the profile, not learned yet"
    if cap.intervals:
        learned = f"learned from {cap.intervals} interval{'s' if cap.intervals > 1 else ''}"
    demand_text = f"demand {number(demand)} {u_text}"
    if growth > 0:
        demand_text += f" ({number(throughput)} finished + {number(growth)} backlog growth)"
    backlog_text = (
        f" + backlog {number(backlog)} over {number(drain)} s" if cs.backlog_signal else ""
    )
    why = (
        f"{demand_text}{backlog_text} / capacity {number(cap.per_replica)} {u_text} per replica "
        f"({learned}) at {percent(u)} utilisation = {replicas_text(wanted)}"
    )
    if wanted >= current:
        replicas = wanted
    else:
        floor = min(current, peak_need)
        replicas = max(wanted, floor)
        if replicas > wanted:
            why += (
                f"; the peak demand of {number(peak)} {u_text} in the last "
                f"{number(cs.peak_window_s)} s needs {peak_need}"
            )
        if replicas < current and need >= current * (1.0 - policy.tolerance) - EPS:
            replicas = current
            why += f", within the {percent(policy.tolerance)} tolerance of {current}"
    ahead = forecast(cs, history, now, max(drain, cs.forecast_bucket_s))
    if ahead is not None:
        expected, text = ahead
        ahead_need = ceil_count(expected / (cap.per_replica * u))
        if ahead_need > replicas:
            replicas = ahead_need
            why += f"; {text} {number(expected)} {u_text}, which needs {ahead_need}"
    latency = None
    if cs.latency_slo_s is not None:
        latency = read(observations.get(cs.latency_signal), policy)
    after = learn(cs, cap, throughput=throughput, ready=measured, backlog=backlog, latency=latency)
    proposal = Proposal(target.signal, target.kind, demand, u, replicas, OK, why)
    return Sizing(proposal, demand, after)
