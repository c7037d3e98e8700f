"""The rules of the scale decision, each a small function over one frozen :class:`Draft`.

:func:`apps.autoscaling.engine.decide` runs them in order (see ``RAW_RULES`` and
``BOUNDED_RULES``). A rule returns the draft unchanged, or a new draft whose ``rule`` names
it: the rule of the final draft is the last step that changed the outcome, by construction.
Rules of the raw recommendation (step 3) replace the draft's lead reason; the rules applied
to it afterwards (steps 4-7) append a clause saying what they changed.

The helpers at the top compute the facts the rules read (cron floor, load, idle time, panic
state, rate limits) once per decision, into the :class:`Context`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Final, NamedTuple

from .reasons import describe_policies, number, replicas_text
from .targets import read
from .types import (
    DAY_S,
    EPS,
    OK,
    CronMinimum,
    Event,
    History,
    Obs,
    Policy,
    Proposal,
    ceil_count,
    floor_count,
    taken,
)

# --------------------------------------------------------------------------- facts


def cron_floor(policy: Policy, now: float) -> tuple[int, CronMinimum | None]:
    # Unix time has no leap seconds, so now mod 86400 is the UTC time of day.
    sod = now % DAY_S
    best: tuple[int, CronMinimum | None] = (0, None)
    for c in policy.cron_minimums:
        if c.start_s < c.end_s:
            active = c.start_s <= sod < c.end_s
        else:
            active = sod >= c.start_s or sod < c.end_s
        if active and c.min_replicas > best[0]:
            best = (c.min_replicas, c)
    return best


def load_total(policy: Policy, observations: Mapping[str, Obs]) -> tuple[float | None, str]:
    total = 0.0
    for signal in policy.load_signals:
        r = read(observations.get(signal), policy)
        if r.status != OK or r.value is None:
            detail = f" ({r.reason})" if r.reason else ""
            return None, f"load signal {signal} is {r.status}{detail}"
        total += r.value
    return total, ""


def idle_for(policy: Policy, history: History, now: float, load: float | None) -> float:
    """Seconds of load *observed* at zero, without gaps, up to now (0 if loaded or unknown)."""
    if load is None or load > 0:
        return 0.0
    since = now
    for t, value in sorted((s for s in history.load_samples if s[0] <= now), reverse=True):
        # A gap means load was not observed then: the idle clock restarts after it.
        if since - t > policy.load_sample_max_gap_s or not value <= 0:
            break
        since = t
    return now - since


def short_window(
    signal: str, o: Obs | None, policy: Policy, history: History, now: float
) -> float | None:
    if o is not None and o.panic_value is not None:
        pv = o.panic_value
        return pv if math.isfinite(pv) and pv >= 0 else None
    # Samples are stamped with when they were taken: the window ends at this reading's.
    at = taken(o, now)
    window = [
        v
        for t, v in history.signal_samples.get(signal, ())
        if at - policy.panic_window_s < t < at and math.isfinite(v) and v >= 0
    ]
    # The reading being decided on is the freshest sample there is. Without it a loop that
    # evaluates less often than the panic window (10 s vs Knative's 6 s) would never see a
    # sample inside the window, and panic could never start.
    if o is not None and o.status == OK and o.value is not None:
        if math.isfinite(o.value) and o.value >= 0:
            window.append(o.value)
    return sum(window) / len(window) if window else None


class Panic(NamedTuple):
    active: bool
    last_s: float | None
    demand: float | None  # replicas the short window asks for (unrounded)
    signal: str
    condition: bool


def panic_state(
    policy: Policy,
    observations: Mapping[str, Obs],
    proposals: tuple[Proposal, ...],
    history: History,
    now: float,
    ready: int,
) -> Panic:
    if not policy.panic_enabled:
        return Panic(False, None, None, "", False)
    demand: float | None = None
    signal = ""
    usable = {p.signal for p in proposals if p.status == OK}
    for target in policy.targets:
        if target.kind in ("latency_slo", "demand_capacity") or target.signal not in usable:
            continue
        short = short_window(target.signal, observations.get(target.signal), policy, history, now)
        if short is None:
            continue
        if target.kind == "per_replica_average":
            d = short / target.value
        else:
            d = ready * short / target.value
        if demand is None or d > demand:
            demand, signal = d, target.signal
    # Knative divides by ready pods, with at least one.
    condition = demand is not None and demand / max(ready, 1) >= policy.panic_threshold - EPS
    last = now if condition else history.panic_last_s
    active = condition or (last is not None and now - last < policy.stable_window_s)
    return Panic(active, last if active else None, demand, signal, condition)


def period_change(history: History, period_s: float, now: float) -> tuple[int, int]:
    added = removed = 0
    for t, before, after in history.scale_events:
        if t > now - period_s:
            if after > before:
                added += after - before
            else:
                removed += before - after
    return added, removed


def up_limit(policy: Policy, current: int, history: History, now: float) -> int:
    """The highest count the scale-up policies allow now."""
    return _rate_limit(policy, current, history, now, up=True)


def down_limit(policy: Policy, current: int, history: History, now: float) -> int:
    """The lowest count the scale-down policies allow now."""
    return _rate_limit(policy, current, history, now, up=False)


def _rate_limit(policy: Policy, current: int, history: History, now: float, *, up: bool) -> int:
    """As HPA: each policy allows a change from the count at the start of its period
    (replicas added or removed since are given back); ``select`` picks among them."""
    select = policy.scale_up_select if up else policy.scale_down_select
    if select == "disabled":
        return current
    limits = []
    for p in policy.scale_up_policies if up else policy.scale_down_policies:
        added, removed = period_change(history, p.period_s, now)
        start = current - added + removed
        if p.type == "pods":
            limits.append(start + p.value if up else start - p.value)
        elif up:
            # Rounded up so that a small count can always grow (as HPA).
            limits.append(ceil_count(start * (100 + p.value) / 100))
        else:
            limits.append(floor_count(start * (100 - p.value) / 100))
    # "max" means the biggest change allowed: the highest count up, the lowest down.
    biggest, smallest = (max, min) if up else (min, max)
    return biggest(limits) if select == "max" else smallest(limits)


# --------------------------------------------------------------------------- draft


class Bounds(NamedTuple):
    """The replica range while serving: ``lower`` (named by ``lower_rule``, explained by
    ``lower_text``) is min_replicas raised by an active cron minimum, capped at ``upper``."""

    lower: int
    lower_rule: str
    lower_text: str
    upper: int


@dataclass(frozen=True)
class Context:
    """The facts every rule reads, computed once per decision.

    ``raw`` and ``raw_rule`` are the raw recommendation (step 3) and the rule that made it;
    they are filled in before the rules of steps 4-7 run.
    """

    policy: Policy
    history: History
    now: float
    current: int
    ready: int
    starting: int
    young: tuple[float, ...]  # start times of replicas still within the cold start
    proposals: tuple[Proposal, ...]
    all_ok: bool
    load: float | None
    load_problem: str
    burn: float | None  # usable SLO burn rate
    panic: Panic
    idle_s: float
    cron_floor: int
    bounds: Bounds
    raw: int = 0
    raw_rule: str = ""

    @property
    def burning(self) -> bool:
        return self.burn is not None and self.burn >= self.policy.slo_boost.fast_burn_threshold

    @property
    def emergency_up(self) -> bool:
        """Panic and SLO boost skip the scale-up stabilization window."""
        return self.raw_rule in EMERGENCY_RULES

    @property
    def to_zero(self) -> bool:
        """Scale-to-zero skips the scale-down window (its idle period is a stricter one)."""
        return self.raw_rule == "scale_to_zero"


@dataclass(frozen=True)
class Draft:
    """The outcome so far: ``desired`` count, the ``rule`` that set it, the lead ``reason``
    and the ``clauses`` of later steps that changed it, plus events to record."""

    desired: int
    rule: str
    reason: str
    clauses: tuple[str, ...] = ()
    events: tuple[Event, ...] = ()

    def instead(self, desired: int, rule: str, reason: str) -> Draft:
        """A new outcome with its own reason (the rules of steps 2 and 3)."""
        return Draft(desired, rule, reason, self.clauses, self.events)

    def limited(self, desired: int, rule: str, clause: str) -> Draft:
        """The outcome changed by a later step, which says why in a clause (steps 4-7)."""
        return Draft(desired, rule, self.reason, (*self.clauses, clause), self.events)

    def noting(self, event: Event) -> Draft:
        return Draft(self.desired, self.rule, self.reason, self.clauses, (*self.events, event))

    def text(self, raw: int) -> str:
        """The reason so far: the lead, then what the later steps changed."""
        if not self.clauses:
            return self.reason
        # Say what the recommendation was before the steps that changed it.
        return "; ".join([f"{self.reason}, asking for {raw}", *self.clauses])


Rule = Callable[[Context, Draft], Draft]
EMERGENCY_RULES: Final = frozenset({"slo_boost", "panic"})


# --------------------------------------------------------------------------- 3. raw recommendation


def slo_boost(ctx: Context, draft: Draft) -> Draft:
    """Step by ``step_percent`` while the SLO burns fast, unless a step is still landing."""
    boost = ctx.policy.slo_boost
    if not (boost.enabled and ctx.burning and ctx.burn is not None and ctx.current > 0):
        return draft
    if ctx.starting:
        # The previous step has not landed yet; stepping again now would stack boosts
        # on capacity that is already on its way (AIBrix #2670).
        return draft.instead(
            draft.desired,
            draft.rule,
            f"{draft.reason}; SLO burn rate {number(ctx.burn)} is at or above "
            f"{number(boost.fast_burn_threshold)} but "
            f"{replicas_text(ctx.starting)} {'is' if ctx.starting == 1 else 'are'} still "
            "starting, so no further boost yet",
        )
    step = max(1, ceil_count(ctx.current * boost.step_percent / 100))
    if ctx.current + step <= draft.desired:
        return draft
    return draft.instead(
        ctx.current + step,
        "slo_boost",
        f"SLO burn rate {number(ctx.burn)} is at or above the fast-burn threshold "
        f"{number(boost.fast_burn_threshold)}, so boost by "
        f"{number(boost.step_percent)}% ({step} more) although the "
        f"targets ask for {draft.desired}",
    )


def panic(ctx: Context, draft: Draft) -> Draft:
    """In panic mode, at least what the short window asks for."""
    state = ctx.panic
    if not state.active or state.demand is None:
        return draft
    wanted = ceil_count(state.demand)
    if wanted <= draft.desired:
        return draft
    policy = ctx.policy
    return draft.instead(
        wanted,
        "panic",
        f"panic mode: {state.signal} over the last {number(policy.panic_window_s)} s needs "
        f"{wanted} replicas, {state.demand / max(ctx.ready, 1):.1f}x the {ctx.ready} ready "
        f"(threshold {policy.panic_threshold:g}x)",
    )


def scale_to_zero(ctx: Context, draft: Draft) -> Draft:
    """Zero after load was observed at zero for the idle period, all targets readable."""
    policy = ctx.policy
    if not (
        policy.scale_to_zero_enabled
        and ctx.current > 0
        and ctx.cron_floor == 0
        and ctx.all_ok
        and draft.desired <= ctx.current
        and not ctx.panic.active
        and ctx.load is not None
        and ctx.idle_s >= policy.idle_period_s
    ):
        return draft
    return draft.instead(
        0,
        "scale_to_zero",
        f"no load observed for {ctx.idle_s:.0f} s (idle period {number(policy.idle_period_s)} s)",
    )


RAW_RULES: Final[tuple[Rule, ...]] = (slo_boost, panic, scale_to_zero)


# --------------------------------------------------------------------------- 2. out of bounds


def activation_wanted(ctx: Context) -> int:
    """What the targets ask for on activation from zero (at least one replica)."""
    numbers = [p.replicas for p in ctx.proposals if p.status == OK and p.replicas is not None]
    return max([1, *numbers])


def out_of_bounds(ctx: Context, draft: Draft) -> Draft | None:
    """Above the maximum, at zero with scale-to-zero, or below the floor: straight to the
    bound (as HPA), with no stabilization or rate limit. None when within bounds."""
    policy, current = ctx.policy, ctx.current
    lower, lower_rule, lower_text, upper = ctx.bounds
    if current > upper:
        return draft.instead(
            upper,
            "max_replicas",
            f"{draft.reason}; above max_replicas {upper}, so back to it at once",
        )
    if current == 0 and policy.scale_to_zero_enabled and ctx.cron_floor == 0:
        return at_zero(ctx, draft)
    if current < lower:
        verb = "is" if current == 1 else "are"
        return draft.instead(
            lower, lower_rule, f"{lower_text} and only {current} {verb} set, so up to it at once"
        )
    return None


def at_zero(ctx: Context, draft: Draft) -> Draft:
    """At zero with scale-to-zero: activate once load reaches the threshold."""
    policy, load = ctx.policy, ctx.load
    if load is None:
        reason = f"at zero and {ctx.load_problem}, so activation cannot be judged"
        return draft.instead(0, "hold:missing_metrics", reason).noting(
            Event("metrics_missing", reason)
        )
    if load >= policy.activation_threshold:
        wanted = activation_wanted(ctx)
        limit = max(1, up_limit(policy, 0, ctx.history, ctx.now))
        desired = max(ctx.bounds.lower, min(wanted, limit, ctx.bounds.upper))
        reason = (
            f"load {number(load)} reached the activation threshold of "
            f"{number(policy.activation_threshold)}; the targets ask for {wanted}"
        )
        if desired < wanted:
            reason += f", the scale-up policies allow {desired} now"
        return draft.instead(desired, "activation", reason)
    return draft.instead(
        0,
        "scale_to_zero",
        f"scaled to zero; load {number(load)} is below the activation threshold of "
        f"{number(policy.activation_threshold)}",
    )


# --------------------------------------------------------------------------- 4-7. within bounds


def stabilization(ctx: Context, draft: Draft) -> Draft:
    """As HPA: the new recommendation counts, as do those strictly inside each window; the
    result is the current count pulled to within [lowest up, highest down]."""
    policy, raw, current = ctx.policy, ctx.raw, ctx.current
    up_cut = ctx.now - policy.scale_up_stabilization_s
    down_cut = ctx.now - policy.scale_down_stabilization_s
    up_rec = down_rec = raw
    for t, r in ctx.history.recommendations:
        if t > up_cut:
            up_rec = min(up_rec, r)
        if t > down_cut:
            down_rec = max(down_rec, r)
    if ctx.emergency_up:
        up_rec = raw
    desired = 0 if ctx.to_zero else min(max(current, up_rec), down_rec)
    if desired == draft.desired:
        return draft
    if raw > current:
        return draft.limited(
            desired,
            "stabilization:up",
            f"the lowest recommendation in the last {number(policy.scale_up_stabilization_s)} s "
            f"is {up_rec}",
        )
    return draft.limited(
        desired,
        "stabilization:down",
        f"the highest recommendation in the last "
        f"{number(policy.scale_down_stabilization_s)} s is {down_rec}",
    )


def panic_veto(ctx: Context, draft: Draft) -> Draft:
    if draft.desired >= ctx.current or not ctx.panic.active:
        return draft
    return draft.limited(ctx.current, "panic", "panic mode never scales down")


def cold_start_hold(ctx: Context, draft: Draft) -> Draft:
    """No scale-down while a replica is within its cold start: new replicas report nothing
    yet and the ready ones look less busy than they will be; shedding now is how fleets
    oscillate (Knative #15316, KServe #1247)."""
    if draft.desired >= ctx.current or not ctx.young:
        return draft
    newest = min(ctx.now - s for s in ctx.young)
    return draft.limited(
        ctx.current,
        "cold_start_hold",
        f"{replicas_text(len(ctx.young))} still within the {number(ctx.policy.cold_start_s)} s "
        f"cold start (the newest started {newest:.0f} s ago), so no scale-down",
    )


def max_replicas(ctx: Context, draft: Draft) -> Draft:
    upper = ctx.bounds.upper
    if draft.desired <= upper:
        return draft
    return draft.limited(upper, "max_replicas", f"max_replicas is {upper}")


def floor(ctx: Context, draft: Draft) -> Draft:
    """min_replicas or the active cron minimum; zero on the way to zero."""
    lowest = 0 if ctx.to_zero else ctx.bounds.lower
    if draft.desired >= lowest:
        return draft
    return draft.limited(lowest, ctx.bounds.lower_rule, ctx.bounds.lower_text)


def rate_limit_up(ctx: Context, draft: Draft) -> Draft:
    """As HPA behavior policies, counting replicas already added in each period."""
    policy, current = ctx.policy, ctx.current
    if draft.desired <= current:
        return draft
    limit = max(current, up_limit(policy, current, ctx.history, ctx.now))
    if draft.desired <= limit:
        return draft
    allowed = describe_policies(policy.scale_up_policies, "+", policy.scale_up_select)
    return draft.limited(
        limit, "rate_limit:up", f"the scale-up policies ({allowed}) allow {limit} now"
    )


def rate_limit_down(ctx: Context, draft: Draft) -> Draft:
    """As HPA behavior policies, counting replicas already removed in each period."""
    policy, current = ctx.policy, ctx.current
    if draft.desired >= current:
        return draft
    limit = min(current, down_limit(policy, current, ctx.history, ctx.now))
    if ctx.to_zero:
        # Counts between zero and the floor are below min_replicas: step down to the floor
        # as the policies allow, then drop from the floor to zero in one step.
        lower = ctx.bounds.lower
        limit = 0 if current <= lower or limit <= 0 else max(limit, lower)
    if draft.desired >= limit:
        return draft
    allowed = describe_policies(policy.scale_down_policies, "-", policy.scale_down_select)
    return draft.limited(
        limit, "rate_limit:down", f"the scale-down policies ({allowed}) allow {limit} now"
    )


BOUNDED_RULES: Final[tuple[Rule, ...]] = (
    stabilization,  # 4
    panic_veto,  # 5
    cold_start_hold,
    max_replicas,  # 6
    floor,
    rate_limit_up,  # 7
    rate_limit_down,
)


def run(rules: tuple[Rule, ...], ctx: Context, draft: Draft) -> Draft:
    for rule in rules:
        draft = rule(ctx, draft)
    return draft
