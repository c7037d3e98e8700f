"""Sizing from demand and learned capacity: the ``demand_capacity`` target kind.

:func:`size` proposes ceil((demand + backlog / drain time) / (capacity * utilisation target))
replicas (see :class:`.types.CapacitySizing`) and, separately, what this interval teaches
about capacity (:func:`learn`). The proposal uses the capacity learned *before* this
interval, so for the same history more demand never asks for fewer replicas; what is learned
goes into the next :class:`.types.History` through ``Decision.capacity``.
"""

from __future__ import annotations

import math
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
    pool_gain,
    taken,
)

# The requests the replicas are running: with the backlog, what the deployment holds. When
# it is read, demand is what arrived (finished + the change of everything held); without
# it, finished + the backlog's growth.
RUNNING_SIGNAL = "running_requests"


# Trend: demand rising over the last TREND_WINDOW_S is extrapolated over one cold start plus
# the age of the readings and one interval (what a replica asked for now misses: it serves
# from then, and the next decision's replicas only a decision later), from the median slope
# between pairs of readings (Theil-Sen: a ramp counts, one jump such as a step does not; the
# backlog handles that). A rise counts as a trend only when both halves of the window rise
# by at least TREND_CONSISTENCY of that slope: a step spread over a few readings makes the
# whole window's median slope positive while one half is flat, and extrapolating it asked
# for several times the step. With fewer than TREND_MIN_READINGS nothing tells a ramp from a
# level, and nothing is scaled down.
TREND_WINDOW_S = 120.0
TREND_MIN_READINGS = 4
TREND_CONSISTENCY = 0.25
# A slope is a trend only when above TREND_SIGMAS of the scatter that the readings' counting
# noise gives a slope fitted to them (least squares: sigma / sqrt(sum (t - mean t)^2)): at a
# request per second, eight 15 s readings give a slope of a few requests/s per minute by
# chance now and then, and extrapolated over two minutes that asked for the maximum.
TREND_SIGMAS = 3.0
# Replicas that just turned ready finish their first requests only a request's duration
# later, so the throughput per ready replica reads low for a while: capacity is not learned
# down within one cold start plus LEARN_SETTLE_S of a scale-up.
LEARN_SETTLE_S = 60.0
# The peak that holds scale-down back is that of the demand averaged over this long, not
# of single readings: at a few requests per interval those scatter well above the mean.
PEAK_SMOOTHING_S = 60.0
# Requests/s are counts: a reading over an interval of T seconds at a rate r scatters by
# about sqrt(r / T) (Poisson). Sizing uses the mean of the last STABLE_S of readings unless
# the newest one is above it by more than NOISE_SIGMAS of that scatter (then the newest:
# a real rise is met at once); at a few requests per interval single readings scatter by
# tens of percent, and sizing each one would add replicas for noise.
STABLE_S = 60.0
NOISE_SIGMAS = 2.0


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


def replicas_for(cs: CapacitySizing, units: float) -> float:
    """The replicas (fractional) that serve ``units`` replicas' worth of capacity as of a
    pool of ``cs.pool_size``: N with ``N * g(N) / g(pool_size) = units``; ``units`` itself
    without pooling. Increasing in ``units``."""
    if cs.pooling <= 0 or units <= 0:
        return units
    k = cs.pooling
    x = (k + math.sqrt(k * k + 4.0 * units * pool_gain(k, cs.pool_size))) / 2.0
    return x * x


def per_replica_at(cs: CapacitySizing, per_replica: float, replicas: float) -> float:
    """Capacity per replica in a pool of ``replicas``, from ``per_replica`` as of a pool of
    ``cs.pool_size``."""
    if cs.pooling <= 0:
        return per_replica
    return per_replica * pool_gain(cs.pooling, replicas) / pool_gain(cs.pooling, cs.pool_size)


def drain_s(policy: Policy) -> float:
    cs = policy.capacity
    return (
        cs.backlog_drain_s
        if cs.backlog_drain_s is not None
        else max(policy.cold_start_s, MIN_DRAIN_S)
    )


def held_growth(signals: Mapping[str, float], history: History, now: float) -> float | None:
    """Requests/s by which what the deployment holds (the sum of ``signals``' readings,
    taken at ``now``) changed since the previous reading of all of them, taken at one time:
    arrivals not finished, negative while a backlog drains. None without a previous
    reading. Times are when the values were taken (:func:`.types.taken`), not when they
    were decided on: a reading just taken from the replicas (the fast path) beside one
    scraped a scrape delay earlier spans that delay too."""
    earlier: dict[float, dict[str, float]] = {}
    for name in signals:
        for t, v in history.signal_samples.get(name, ()):
            if t < now:
                earlier.setdefault(t, {})[name] = v
    complete = [t for t, values in earlier.items() if len(values) == len(signals)]
    if not complete:
        return None
    t = max(complete)
    return (sum(signals.values()) - sum(earlier[t].values())) / (now - t)


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
    # What each of the ``ready`` replicas did, as of a pool of ``pool_size`` (the estimate's).
    per = throughput / ready / per_replica_at(cs, 1.0, ready)
    saturated = backlog / ready >= 1.0 - EPS
    if not saturated and per < cs.learn_min_utilization * est - EPS:
        return None  # idle: low utilisation says nothing about capacity
    slo = cs.latency_slo_s
    lat = latency.value if latency is not None else None
    alpha = cs.learn_rate
    if slo is not None and lat is not None and lat > slo:
        if not saturated:
            # Nothing waited: the latency is the requests' own (long prompts), which more
            # replicas would not shorten, so it says nothing about capacity.
            return None
        new = est + alpha * (per - est) if per < est else est
    elif saturated:
        new = est + alpha * (per - est) if (slo is None or per > est) else est
    elif slo is not None and lat is not None and lat <= cs.probe_latency_ratio * slo + EPS:
        if per <= est + EPS:
            # Room to spare at this throughput says nothing beyond it: LLM latency stays
            # low until the KV cache fills, then climbs steeply, so raising the estimate
            # on low latency alone walks it to that cliff.
            return None
        new = est + alpha * (per - est)  # demonstrated: they did more, well within the SLO
    else:
        return None
    low, high = cs.capacity_bounds
    return Capacity(min(high, max(low, new)), before.intervals + 1)


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def median_slope(samples: list[tuple[float, float]]) -> float:
    """The median slope over every pair of ``samples`` (time, value); 0 without a pair."""
    slopes = [
        (v2 - v1) / (t2 - t1)
        for i, (t1, v1) in enumerate(samples)
        for t2, v2 in samples[i + 1 :]
        if t2 > t1
    ]
    return _median(slopes) if slopes else 0.0


def trend(samples: list[tuple[float, float]]) -> float:
    """Requests/s per second by which demand rises: the median slope over every pair of
    ``samples`` (time, demand), 0 when falling or with fewer than TREND_MIN_READINGS. When
    either half of the span (two readings or more each) rises by less than
    TREND_CONSISTENCY of that slope, the rise is not a trend (a step, not a ramp): the
    smaller half's slope, at least 0. The halves split TREND_WINDOW_S before the newest."""
    if len(samples) < TREND_MIN_READINGS:
        return 0.0
    rise = median_slope(samples)
    if rise <= 0:
        return 0.0
    mid = max(t for t, _ in samples) - TREND_WINDOW_S / 2
    older = [(t, v) for t, v in samples if t <= mid]
    newer = [(t, v) for t, v in samples if t > mid]
    if len(older) >= 2 and len(newer) >= 2:
        low = min(median_slope(older), median_slope(newer))
        if low < TREND_CONSISTENCY * rise:
            return max(0.0, low)
    return rise


def significant(samples: list[tuple[float, float]], rise: float, sigma: float) -> bool:
    """Whether ``rise`` is above TREND_SIGMAS of the scatter of a slope fitted to
    ``samples`` (time, value) whose values each scatter by ``sigma``."""
    if sigma <= 0:
        return True
    mean_t = sum(t for t, _ in samples) / len(samples)
    spread = math.sqrt(sum((t - mean_t) ** 2 for t, _ in samples))
    return rise * spread > TREND_SIGMAS * sigma


def trend_level(samples: list[tuple[float, float]], rise: float, now: float) -> float:
    """The level at ``now`` of the line of slope ``rise`` through ``samples``: the median of
    each reading carried forward to ``now`` (a mean of past readings lags a ramp)."""
    return _median([v + rise * (now - t) for t, v in samples])


def settling(policy: Policy, history: History, now: float) -> bool:
    """Whether replicas added by a scale-up may have turned ready within LEARN_SETTLE_S."""
    since = now - policy.cold_start_s - LEARN_SETTLE_S
    return any(after > before and t > since for t, before, after in history.scale_events)


def smoothed_peak(samples: list[tuple[float, float]], since: float) -> float:
    """The highest mean demand over PEAK_SMOOTHING_S ending at a reading after ``since``."""
    best = 0.0
    for t, _ in samples:
        if t <= since:
            continue
        inside = [v for u, v in samples if t - PEAK_SMOOTHING_S < u <= t]
        best = max(best, sum(inside) / len(inside))
    return best


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
    held: dict[str, float] = {}
    if cs.backlog_signal:
        held[cs.backlog_signal] = backlog
        running = read(observations.get(RUNNING_SIGNAL), policy)
        if unit(target.signal) == "req/s" and running.status == OK and running.value is not None:
            held[RUNNING_SIGNAL] = running.value
    growth = (
        held_growth(held, history, taken(observations.get(cs.backlog_signal), now)) if held else 0.0
    )
    # The first reading has no earlier one to tell the growth of what is held by: it
    # sizes, but is not kept as a demand sample (trend and peak would read the finished
    # requests of a start, well below what arrives, and the next reading as a rise).
    first = growth is None and len(held) > 1
    growth = growth or 0.0
    if len(held) < 2:
        growth = max(0.0, growth)  # the backlog alone: running requests may have taken it
    demand = max(0.0, throughput + growth)
    cap = estimate(cs, history)
    u = target.value
    drain = drain_s(policy)
    earlier = [(t, v) for t, v in history.demand_samples if t < now]
    recent = [*earlier, (now, demand)]
    base = demand
    noise = 0.0
    if unit(target.signal) == "req/s" and earlier:
        stable = [v for t, v in recent if t > now - STABLE_S]
        mean = sum(stable) / len(stable)
        noise = NOISE_SIGMAS * math.sqrt(max(mean, EPS) / max(now - earlier[-1][0], EPS))
        if demand <= mean + noise:
            base = mean
    window = [(t, v) for t, v in recent if t > now - TREND_WINDOW_S]
    # The slope comes from the earlier readings only, so that this reading sizes through
    # the level alone and more demand never asks for fewer replicas.
    past = window[:-1]
    rise = trend(past)
    # Rising at all (a ramp, or a step not yet over), extrapolated or not: no scale-down.
    rising = max(0.0, median_slope(past)) if len(past) >= TREND_MIN_READINGS else 0.0
    if (rise > 0 or rising > 0) and unit(target.signal) == "req/s":
        interval = max(now - earlier[-1][0], EPS)
        level = [v for t, v in past if t > now - STABLE_S] or [past[-1][1]]
        sigma = math.sqrt(max(sum(level) / len(level), EPS) / interval)
        if not significant(past, rise, sigma):
            rise = 0.0  # within what the slope of scattered readings scatters by
        if not significant(past, rising, sigma):
            rising = 0.0
    lead = policy.cold_start_s
    if earlier:
        # The readings' age (now less when they were taken) and one interval.
        lead += (now - taken(observations.get(target.signal), now)) + (now - earlier[-1][0])
    if rise > 0 and demand < trend_level(past, rise, now) - noise:
        # This reading is well below the line through the earlier ones: the rise has
        # stopped (the top of a ramp). Only a low reading turns the trend off, so more
        # demand still never asks for fewer replicas.
        rise = 0.0
    if rise > 0:
        base = max(base, trend_level(window, rise, now))
    ahead_demand = base + rise * lead

    def replicas_needed(rate: float) -> float:
        """Replicas (fractional) that serve ``rate`` at the utilisation target."""
        return replicas_for(cs, rate / (cap.per_replica * u))

    need = replicas_needed(ahead_demand + backlog / drain)
    peak = smoothed_peak(recent, now - cs.peak_window_s)
    peak_need = ceil_count(replicas_needed(peak))
    wanted = ceil_count(need)

    u_text = unit(target.signal)
    learned = "the profile, not learned yet"
    if cap.intervals:
        learned = f"learned from {cap.intervals} interval{'s' if cap.intervals > 1 else ''}"
    demand_text = f"demand {number(demand)} {u_text}"
    what = "held" if len(held) > 1 else "backlog"
    if growth > 0:
        demand_text += f" ({number(throughput)} finished + {number(growth)} {what} growth)"
    elif growth < 0:
        demand_text += f" ({number(throughput)} finished - {number(-growth)} {what} drained)"
    if base != demand:
        demand_text += f", {number(base)} {u_text} over {number(STABLE_S)} s"
    if ahead_demand > base:
        demand_text += (
            f", rising {number(rise * 60)} {u_text} per minute: {number(ahead_demand)} "
            f"{u_text} in one cold start and the readings' delay ({number(lead)} s)"
        )
    backlog_text = (
        f" + backlog {number(backlog)} over {number(drain)} s" if cs.backlog_signal else ""
    )
    pooled = ""
    if cs.pooling > 0:
        pool = max(wanted, 1)
        each = per_replica_at(cs, cap.per_replica, pool)
        pooled = (
            f" of {cs.pool_size} ({number(each)} {u_text} each of {pool}, pooling {cs.pooling:.2f})"
        )
    why = (
        f"{demand_text}{backlog_text} / capacity {number(cap.per_replica)} {u_text} per replica"
        f"{pooled} ({learned}) at {percent(u)} utilisation = {replicas_text(wanted)}"
    )
    if wanted >= current:
        replicas = wanted
    else:
        floor = min(current, peak_need)
        replicas = max(wanted, floor)
        if replicas > wanted:
            why += (
                f"; the peak demand of {number(peak)} {u_text} (over "
                f"{number(PEAK_SMOOTHING_S)} s) in the last {number(cs.peak_window_s)} s "
                f"needs {peak_need}"
            )
        if replicas < current and len(window) < TREND_MIN_READINGS:
            replicas = current
            why += (
                f"; fewer than {TREND_MIN_READINGS} readings in the last "
                f"{number(TREND_WINDOW_S)} s to tell a ramp by, so no scale-down"
            )
        if replicas < current and rising > 0:
            replicas = current
            why += (
                f"; demand has been rising ({number(rising * 60)} {u_text} per minute "
                f"over the last {number(TREND_WINDOW_S)} s), so no scale-down"
            )
        if replicas < current and need >= current * (1.0 - policy.tolerance) - EPS:
            replicas = current
            why += f", within the {percent(policy.tolerance)} tolerance of {current}"
    ahead = forecast(cs, history, now, max(drain, cs.forecast_bucket_s))
    if ahead is not None:
        expected, text = ahead
        ahead_need = ceil_count(replicas_needed(expected))
        if ahead_need > replicas:
            replicas = ahead_need
            why += f"; {text} {number(expected)} {u_text}, which needs {ahead_need}"
    latency = None
    if cs.latency_slo_s is not None:
        latency = read(observations.get(cs.latency_signal), policy)
    after = learn(cs, cap, throughput=throughput, ready=measured, backlog=backlog, latency=latency)
    if after is not None and after.per_replica < cap.per_replica and settling(policy, history, now):
        after = None  # replicas just joined: their throughput is not in the readings yet
    proposal = Proposal(target.signal, target.kind, demand, u, replicas, OK, why)
    return Sizing(proposal, None if first else demand, after)
