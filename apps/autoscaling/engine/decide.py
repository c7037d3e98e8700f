"""``decide``: the facts of one decision, then the rules in order (see :mod:`.rules`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

from . import capacity, rules
from .reasons import clock, move, number, percent
from .targets import aggregate, metric_events, propose, read
from .types import SLO_BURN_RATE, Decision, Event, History, Obs, Policy, ReplicaState


def decide(
    policy: Policy,
    observations: Mapping[str, Obs],
    history: History,
    now: float,
    *,
    replicas: ReplicaState,
) -> Decision:
    """Decide the replica count for one deployment. Pure and deterministic."""
    events: list[Event] = []

    # 1. Current count, adopting a change made outside the control plane.
    current = replicas.spec if replicas.observed_spec is None else replicas.observed_spec
    drift = ""
    if (
        replicas.observed_spec is not None
        and replicas.last_applied is not None
        and replicas.observed_spec != replicas.last_applied
    ):
        drift = (
            f"replicas were changed outside the control plane (last applied "
            f"{replicas.last_applied}, the platform reports {replicas.observed_spec}); "
            f"taking {replicas.observed_spec} as current"
        )
        events.append(Event("drift_detected", drift))
    ready = replicas.ready
    starting = len(replicas.starting)

    sizing: capacity.Sizing | None = None
    made = []
    for t in policy.targets:
        if t.kind == "demand_capacity":
            measured = ready if replicas.measured is None else replicas.measured
            sizing = capacity.size(t, observations, history, policy, now, current, measured)
            made.append(sizing.proposal)
        else:
            reading = read(observations.get(t.signal), policy)
            made.append(propose(t, reading, policy, current, ready, starting))
    proposals = tuple(made)
    metric_events(proposals, events)
    bounds, cron_floor = _bounds(policy, now, events)
    load, load_problem = rules.load_total(policy, observations)
    burn = read(observations.get(SLO_BURN_RATE), policy).value
    aggregated = aggregate(proposals, current)
    ctx = rules.Context(
        policy=policy,
        history=history,
        now=now,
        current=current,
        ready=ready,
        starting=starting,
        young=tuple(s for s in replicas.starting if now - s < policy.cold_start_s),
        proposals=proposals,
        all_ok=aggregated.all_ok,
        load=load,
        load_problem=load_problem,
        burn=burn,
        panic=rules.panic_state(policy, observations, proposals, history, now, ready),
        idle_s=rules.idle_for(policy, history, now, load),
        cron_floor=cron_floor,
        bounds=bounds,
    )

    # 3. Raw recommendation: what is recorded whichever way the decision goes.
    raw = rules.run(
        rules.RAW_RULES,
        ctx,
        rules.Draft(aggregated.replicas, aggregated.rule, aggregated.reason),
    )
    ctx = replace(ctx, raw=raw.desired, raw_rule=raw.rule)
    recommendation = raw.desired

    # 2. Out of bounds and life at zero; otherwise 4-7 within bounds.
    draft = rules.out_of_bounds(ctx, raw)
    if draft is None:
        draft = rules.run(rules.BOUNDED_RULES, ctx, raw)
    elif draft.rule == "activation":
        recommendation = max(recommendation, rules.activation_wanted(ctx))
    events.extend(draft.events)
    desired, rule, reason = draft.desired, draft.rule, draft.text(raw.desired)

    if rule.startswith("target:") and desired != current:
        reason = f"{reason}; {move(current, desired)} (tolerance {percent(policy.tolerance)})"
    else:
        reason = f"{reason}; {move(current, desired)}"
    if drift and desired == current and rule.startswith("target:"):
        # A hold (missing metrics, cold start, panic, stabilization) explains more than
        # "drift" does; the drift_detected event is there either way.
        rule = "drift"
    if drift:
        reason = f"{drift}; {reason}"
    if ctx.burning and burn is not None and desired >= bounds.upper:
        events.append(
            Event(
                "at_max_while_slo_burning",
                f"at max_replicas {bounds.upper} while the SLO burn rate is {number(burn)} "
                f"(fast-burn threshold {number(policy.slo_boost.fast_burn_threshold)})",
            )
        )

    return Decision(
        desired_replicas=desired,
        current_replicas=current,
        changed=desired != current,
        rule=rule,
        reason=reason,
        proposals=proposals,
        events=tuple(events),
        recommendation=recommendation,
        mode=policy.mode,
        dry_run=policy.mode != "enforce",
        load=load,
        panic=ctx.panic.active,
        panic_last_s=ctx.panic.last_s,
        demand=None if sizing is None else sizing.demand,
        capacity=None if sizing is None else sizing.capacity,
    )


def _bounds(policy: Policy, now: float, events: list[Event]) -> tuple[rules.Bounds, int]:
    """The floor is min_replicas (at least 1) raised by active cron minimums; max wins."""
    upper = policy.max_replicas
    base_floor = max(policy.min_replicas, 1)
    cron_floor, cron = rules.cron_floor(policy, now)
    lower, lower_rule = base_floor, "min_replicas"
    lower_text = f"min_replicas is {base_floor}"
    if cron is not None and cron_floor > base_floor:
        lower, lower_rule = cron_floor, "cron_minimum"
        lower_text = (
            f"the cron minimum of {cron_floor} is active "
            f"({clock(cron.start_s)}-{clock(cron.end_s)} UTC)"
        )
    if lower > upper:
        events.append(
            Event(
                "cron_minimum_capped",
                f"cron minimum {cron_floor} is above max_replicas {upper}; max_replicas wins",
            )
        )
        lower = upper
        lower_text += f", capped at max_replicas {upper}"
    return rules.Bounds(lower, lower_rule, lower_text, upper), cron_floor
