"""Properties of the scale decision, checked on generated inputs.

The HPA comparison uses the reference implementation of the documented Kubernetes algorithm
(:mod:`bench.autoscale.hpa_reference`, also the benchmark's HPA baseline) in exact rational
arithmetic. It shares no code with the engine. Metric values are generated at milli
precision, as Kubernetes quantities are.
"""

from __future__ import annotations

import math
from fractions import Fraction

from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

from apps.autoscaling.engine import (
    DEFAULT_SCALE_DOWN_POLICIES,
    DEFAULT_SCALE_UP_POLICIES,
    CronMinimum,
    History,
    Obs,
    Policy,
    ReplicaState,
    ScalingPolicy,
    SloBoost,
    Target,
    decide,
)
from bench.autoscale.hpa_reference import (
    HpaBehavior,
    HpaRule,
    hpa_apply_rate_limits,
    hpa_external_average_replicas,
    hpa_metrics_replicas,
    hpa_pods_metric_replicas,
    hpa_scale_limit,
    hpa_stabilize,
)

NOW = 1_000_000.0  # 13:46:40 UTC
# The HPA comparison is cheap to generate and the most valuable, so it gets more examples;
# the general invariants draw ~120 choices per example, so they get fewer to keep this file
# well under 30 s.
HPA_PROPS = settings(max_examples=500, deadline=None)
PROPS = settings(max_examples=200, deadline=None)
BAD_STATUSES = ("missing", "stale", "unavailable", "unsupported", "failed")

# --------------------------------------------------------------------------- reference HPA


def hpa_reference(
    *,
    current,
    min_replicas,
    max_replicas,
    metrics,  # (kind, value in milli-units or None when unavailable, target in milli-units)
    tolerance,
    up_window,
    down_window,
    up_policies,
    up_select,
    down_policies,
    down_select,
    recommendations,
    events,
    now,
):
    """One sync of the reference HPA, on exact quantities."""
    if current > max_replicas:
        return max_replicas
    if current < min_replicas:
        return min_replicas
    proposals = []
    for kind, value, target in metrics:
        if value is None:
            proposals.append(None)
        elif kind == "utilization":  # an average over the pods
            proposals.append(
                hpa_pods_metric_replicas(
                    current, Fraction(value) * current, current, Fraction(target),
                    tolerance=tolerance,
                )
            )  # fmt: skip
        else:  # a deployment total against a per-pod target
            proposals.append(
                hpa_external_average_replicas(
                    current, Fraction(value), Fraction(target), tolerance=tolerance
                )
            )
    desired = hpa_metrics_replicas(current, proposals)
    if desired is None:
        return current
    behavior = HpaBehavior(
        up_window,
        down_window,
        tuple(HpaRule(*p) for p in up_policies),
        tuple(HpaRule(*p) for p in down_policies),
        up_select,
        down_select,
    )
    up_events, down_events = split_events(events)
    stabilized = hpa_stabilize(recommendations, now, desired, current, behavior)
    return hpa_apply_rate_limits(
        current, stabilized, min_replicas, max_replicas, up_events, down_events, behavior, now
    )


def split_events(events):
    """Engine scale events (t, before, after) as the reference keeps them: added, removed."""
    up = [(t, after - before) for t, before, after in events if after > before]
    down = [(t, before - after) for t, before, after in events if after < before]
    return up, down


def hpa_behavior_of(policy, events):
    """An engine policy's rate limits and scale events, in the reference's terms."""
    behavior = HpaBehavior(
        up_rules=tuple(HpaRule(*p) for p in policy.scale_up_policies),
        down_rules=tuple(HpaRule(*p) for p in policy.scale_down_policies),
        up_select=policy.scale_up_select,
        down_select=policy.scale_down_select,
    )
    return (behavior, *split_events(events))


# --------------------------------------------------------------------------- strategies

scaling_policy = st.builds(
    ScalingPolicy,
    st.sampled_from(["pods", "percent"]),
    st.integers(1, 200),
    st.sampled_from([15, 30, 60, 120]),
)
policy_list = st.lists(scaling_policy, min_size=1, max_size=3).map(tuple)
select = st.sampled_from(["max", "min", "disabled"])


# Ages (seconds before now) around the edges of the windows and periods used here, so that
# "strictly inside the window" is exercised, plus anything else.
AGES = st.one_of(
    st.sampled_from([0, 1, 14, 15, 16, 29, 30, 31, 59, 60, 61, 119, 120, 121, 299, 300, 301]),
    st.integers(0, 400),
)


@st.composite
def chain(draw, *, low=1, high=40):
    """A consistent scale-event history ending at the current count: (events, current)."""
    count = draw(st.integers(low, high))
    steps = draw(st.lists(st.tuples(AGES, st.integers(low, high)), max_size=4))
    events = []
    for age, after in sorted(steps, reverse=True):
        if after != count:
            events.append((NOW - age, count, after))
        count = after
    return tuple(events), count


recommendation_history = st.lists(
    st.tuples(AGES.map(lambda age: NOW - age), st.integers(0, 60)), max_size=6
).map(tuple)

# Metric-to-target ratios in percent: the tolerance edges (90 %, 110 %) and anything else.
RATIOS = st.one_of(
    st.sampled_from([0, 50, 89, 90, 91, 100, 109, 110, 111, 150, 200]), st.integers(0, 400)
)


@st.composite
def hpa_metric(draw, current):
    kind = draw(st.sampled_from(["utilization", "per_replica_average"]))
    ratio = draw(RATIOS)
    if kind == "utilization":
        target = draw(st.integers(50, 1000))  # 0.05-1.0
        value = target * ratio // 100  # the average
    else:
        target = draw(st.integers(100, 100_000))  # 0.1-100 per replica
        value = target * current * ratio // 100  # the deployment total
    if draw(st.integers(0, 5)) == 0:
        value = None
    return kind, value, target


@st.composite
def hpa_case(draw):
    events, current = draw(chain())
    if draw(st.integers(0, 4)):
        min_replicas = draw(st.integers(1, current))
        max_replicas = draw(st.integers(current, current + 30))
    else:  # the current count may be out of bounds
        min_replicas = draw(st.integers(1, 45))
        max_replicas = draw(st.integers(min_replicas, 60))
    behaviours = draw(st.booleans())
    return {
        "current": current,
        "min_replicas": min_replicas,
        "max_replicas": max_replicas,
        "metrics": draw(st.lists(hpa_metric(current), min_size=1, max_size=3)),
        "up_window": draw(st.sampled_from([0, 0, 30, 120])),
        "down_window": draw(st.sampled_from([300, 300, 0, 60])),
        "up_policies": draw(policy_list) if behaviours else DEFAULT_SCALE_UP_POLICIES,
        "up_select": draw(select) if behaviours else "max",
        "down_policies": draw(policy_list) if behaviours else DEFAULT_SCALE_DOWN_POLICIES,
        "down_select": draw(select) if behaviours else "max",
        "recommendations": draw(recommendation_history),
        "events": events,
    }


def _engine_for(case):
    targets = tuple(
        Target(f"custom:m{i}", target / 1000, kind)
        for i, (kind, _, target) in enumerate(case["metrics"])
    )
    observations = {
        f"custom:m{i}": Obs(value / 1000) if value is not None else Obs(None, status="unavailable")
        for i, (_, value, _) in enumerate(case["metrics"])
    }
    policy = Policy(
        case["min_replicas"],
        case["max_replicas"],
        targets,
        tolerance=0.1,
        scale_up_stabilization_s=case["up_window"],
        scale_down_stabilization_s=case["down_window"],
        scale_up_policies=case["up_policies"],
        scale_up_select=case["up_select"],
        scale_down_policies=case["down_policies"],
        scale_down_select=case["down_select"],
    )
    history = History(recommendations=case["recommendations"], scale_events=case["events"])
    replicas = ReplicaState(case["current"], case["current"])
    return policy, observations, history, replicas


def _edge_case(kind, value, target):
    """10 replicas, HPA defaults, one metric (milli-units) and no history."""
    return {
        "current": 10,
        "min_replicas": 1,
        "max_replicas": 30,
        "metrics": [(kind, value, target)],
        "up_window": 0,
        "down_window": 300,
        "up_policies": DEFAULT_SCALE_UP_POLICIES,
        "up_select": "max",
        "down_policies": DEFAULT_SCALE_DOWN_POLICIES,
        "down_select": "max",
        "recommendations": (),
        "events": (),
    }


@HPA_PROPS
@given(hpa_case())
# The tolerance edges, always tried: exactly 110 % and 90 % hold, 111 % scales up.
@example(case=_edge_case("per_replica_average", 55_000, 5_000))
@example(case=_edge_case("per_replica_average", 45_000, 5_000))
@example(case=_edge_case("per_replica_average", 55_500, 5_000))
@example(case=_edge_case("utilization", 880, 800))
@example(case=_edge_case("utilization", 720, 800))
@example(case=_edge_case("utilization", 888, 800))
def test_decide__hpa_equivalent_settings__matches_reference_hpa(case):
    policy, observations, history, replicas = _engine_for(case)
    decision = decide(policy, observations, history, NOW, replicas=replicas)
    expected = hpa_reference(now=NOW, tolerance=Fraction(1, 10), **case)
    assert decision.desired_replicas == expected, decision.reason


# --------------------------------------------------------------------------- general inputs
# Strategies are built once at import: building them inside @composite bodies on every draw
# costs more than the decisions under test.

SIGNALS = ("queue_length", "kv_cache_usage", "ttft_p95", "custom:gateway_pending")
TARGET_FOR = {
    "queue_length": st.integers(1, 20).map(lambda v: Target("queue_length", float(v))),
    "custom:gateway_pending": st.integers(1, 20).map(
        lambda v: Target("custom:gateway_pending", float(v))
    ),
    "kv_cache_usage": st.integers(10, 100).map(
        lambda v: Target("kv_cache_usage", v / 100, "utilization")
    ),
    "ttft_p95": st.integers(1, 50).map(lambda v: Target("ttft_p95", v / 10, "latency_slo")),
}
VALUES = {
    "kv_cache_usage": st.integers(0, 100).map(lambda v: v / 100),
    "ttft_p95": st.integers(0, 200).map(lambda v: v / 10),
}
DEFAULT_VALUES = st.one_of(st.just(0.0), st.integers(0, 300).map(float))


def _ok_reading(values):
    # The age is irrelevant here (no policy sets max_metric_age_s); the panic value is not.
    return st.builds(lambda v, pv: Obs(v, 5.0, "ok", pv), values, st.one_of(st.none(), values))


BAD_READING = st.builds(Obs, st.none(), st.none(), st.sampled_from(BAD_STATUSES))
OK_READING = {s: _ok_reading(VALUES.get(s, DEFAULT_VALUES)) for s in (*SIGNALS, "running_requests")}
# A signal is absent, unusable or ok (twice as likely).
ANY_READING = {s: st.one_of(st.none(), BAD_READING, ok, ok) for s, ok in OK_READING.items()}
SIGNAL_SETS = st.lists(st.sampled_from(SIGNALS), min_size=1, max_size=3, unique=True)
CRONS = st.lists(
    st.builds(CronMinimum, st.integers(0, 86399), st.integers(1, 86400), st.integers(0, 40)).filter(
        lambda c: c.start_s != c.end_s
    ),
    max_size=2,
).map(tuple)
BOOSTS = st.builds(SloBoost, st.booleans(), st.just(14.4), st.sampled_from([10.0, 50.0]))
POLICY_FIELDS = st.fixed_dictionaries(
    {
        "mode": st.sampled_from(["off", "dry-run", "enforce"]),
        "tolerance": st.sampled_from([0.0, 0.1, 0.2]),
        "tolerance_abs_replicas": st.sampled_from([None, 0, 1]),
        "scale_up_stabilization_s": st.sampled_from([0, 60]),
        "scale_down_stabilization_s": st.sampled_from([0, 300]),
        "scale_up_policies": policy_list,
        "scale_up_select": select,
        "scale_down_policies": policy_list,
        "scale_down_select": select,
        "panic_enabled": st.booleans(),
        "scale_to_zero_enabled": st.booleans(),
        "idle_period_s": st.sampled_from([0, 60, 300]),
        "activation_threshold": st.sampled_from([0.5, 1.0, 5.0]),
        "cron_minimums": CRONS,
        "cold_start_s": st.sampled_from([0, 120, 600]),
        "slo_boost": BOOSTS,
    }
)
LOADS = st.one_of(
    st.lists(
        st.tuples(
            st.integers(int(NOW) - 700, int(NOW)).map(float),
            st.sampled_from([0.0, 0.0, 0.0, 2.0]),
        ),
        max_size=8,
    ).map(tuple),
    # Observed idle: a zero every 15 s for the last 15 minutes.
    st.just(tuple((NOW - 15 * i, 0.0) for i in range(60, 0, -1))),
)
SIGNAL_SAMPLES = st.lists(
    st.tuples(st.integers(int(NOW) - 10, int(NOW)).map(float), DEFAULT_VALUES), max_size=3
).map(tuple)
PANIC_LAST = st.one_of(st.none(), st.sampled_from([NOW - 30, NOW - 90]))
BURNS = st.one_of(st.none(), st.sampled_from([0.5, 3.0, 14.4, 30.0]))
OPTIONAL_COUNT = st.one_of(st.none(), st.integers(0, 35))


@st.composite
def any_policy(draw, **overrides):
    min_replicas = draw(st.integers(0, 6))
    max_replicas = draw(st.integers(max(min_replicas, 1), 30))
    fields = {**draw(POLICY_FIELDS), **overrides}
    chosen = draw(SIGNAL_SETS)
    return Policy(min_replicas, max_replicas, tuple(draw(TARGET_FOR[s]) for s in chosen), **fields)


@st.composite
def observations(draw):
    obs = {}
    for signal, strategy in ANY_READING.items():
        reading = draw(strategy)
        if reading is not None:
            obs[signal] = reading
    burn = draw(BURNS)
    if burn is not None:
        obs["slo_burn_rate"] = Obs(burn)
    return obs


@st.composite
def any_history(draw):
    events, _ = draw(chain(low=0))
    return History(
        recommendations=draw(recommendation_history),
        scale_events=events,
        load_samples=draw(LOADS),
        signal_samples={"queue_length": draw(SIGNAL_SAMPLES)},
        panic_last_s=draw(PANIC_LAST),
    )


@st.composite
def scenario(draw, *, in_range=False, low=0, young=False, **policy_overrides):
    """(policy, observations, history, now, replicas). ``in_range``: the current count is
    within [floor, max] and undisturbed by drift; ``young``: one replica is still within
    its cold start."""
    policy = draw(any_policy(**policy_overrides))
    # History is generated around NOW and moved with it, so windows and idle periods apply.
    shift = draw(st.sampled_from([0, 3 * 3600, 9 * 3600, 14 * 3600, 20 * 3600]))
    now = NOW + shift
    if in_range:
        lower, _ = floor_for(policy, now)
        spec = draw(st.integers(max(lower, low), policy.max_replicas))
        observed = last = None
    else:
        spec = draw(st.integers(low, 35))
        observed, last = draw(OPTIONAL_COUNT), draw(OPTIONAL_COUNT)
    starting_n = draw(st.integers(1 if young else 0, min(spec, 4)))
    ready = spec - starting_n
    if draw(st.booleans()):
        ready = draw(st.integers(0, ready))
    ages = [draw(st.integers(0, 900)) for _ in range(starting_n)]
    if young:
        ages[0] = draw(st.integers(0, max(int(policy.cold_start_s) - 1, 0)))
    replicas = ReplicaState(spec, ready, tuple(now - a for a in ages), observed, last)
    return policy, draw(observations()), shifted(draw(any_history()), shift), now, replicas


def shifted(history, dt):
    return History(
        tuple((t + dt, r) for t, r in history.recommendations),
        tuple((t + dt, a, b) for t, a, b in history.scale_events),
        tuple((t + dt, v) for t, v in history.load_samples),
        {
            name: tuple((t + dt, v) for t, v in samples)
            for name, samples in history.signal_samples.items()
        },
        None if history.panic_last_s is None else history.panic_last_s + dt,
    )


def floor_for(policy, now):
    sod = now % 86400
    cron = 0
    for c in policy.cron_minimums:
        if c.start_s < c.end_s:
            inside = c.start_s <= sod < c.end_s
        else:
            inside = sod >= c.start_s or sod < c.end_s
        if inside:
            cron = max(cron, c.min_replicas)
    return min(policy.max_replicas, max(policy.min_replicas, 1, cron)), cron


def current_of(replicas):
    return replicas.spec if replicas.observed_spec is None else replicas.observed_spec


# --------------------------------------------------------------------------- invariants


KNOWN_RULES = {
    "min_replicas",
    "max_replicas",
    "rate_limit:up",
    "rate_limit:down",
    "stabilization:up",
    "stabilization:down",
    "hold:missing_metrics",
    "cold_start_hold",
    "panic",
    "scale_to_zero",
    "activation",
    "cron_minimum",
    "slo_boost",
    "drift",
}


@PROPS
@given(scenario())
def test_decide__any_input__well_formed_within_bounds_zero_only_by_scale_to_zero(s):
    policy, obs, history, now, replicas = s
    d = decide(policy, obs, history, now, replicas=replicas)
    assert d.mode == policy.mode
    assert d.dry_run == (policy.mode != "enforce")
    assert len(d.proposals) == len(policy.targets)
    assert d.reason
    assert "\n" not in d.reason
    assert d.recommendation >= 0
    assert d.rule in KNOWN_RULES or d.rule.startswith("target:")
    lower, cron = floor_for(policy, now)
    assert d.desired_replicas <= policy.max_replicas
    if d.desired_replicas == 0:
        assert policy.scale_to_zero_enabled
        assert d.rule in ("scale_to_zero", "hold:missing_metrics")
    else:
        assert d.desired_replicas >= lower
    if cron > policy.max_replicas:
        assert any(e.kind == "cron_minimum_capped" for e in d.events)


@PROPS
@given(scenario(scale_to_zero_enabled=True))
def test_decide__observed_idle_with_scale_to_zero__zero_or_within_bounds(s):
    policy, obs, history, now, replicas = s
    obs = {**obs, **{t.signal: Obs(0.0) for t in policy.targets}}
    obs.update(queue_length=Obs(0.0), running_requests=Obs(0.0))
    idle = tuple((now - 15 * i, 0.0) for i in range(60, 0, -1))
    history = History(history.recommendations, history.scale_events, idle)
    d = decide(policy, obs, history, now, replicas=replicas)
    lower, _ = floor_for(policy, now)
    assert d.desired_replicas <= policy.max_replicas
    assert d.desired_replicas == 0 or d.desired_replicas >= lower, d.reason


@PROPS
@given(scenario())
def test_decide__any_unusable_target__never_scales_down(s):
    policy, obs, history, now, replicas = s
    unusable = [
        t for t in policy.targets if obs.get(t.signal, Obs(None, status="missing")).status != "ok"
    ]
    assume(unusable)
    d = decide(policy, obs, history, now, replicas=replicas)
    current = current_of(replicas)
    if current <= policy.max_replicas:
        assert d.desired_replicas >= current, d.reason
    kinds = {e.kind for e in d.events}
    assert kinds & {"metrics_missing", "stale_metrics"}


@PROPS
@given(
    scenario(
        in_range=True,
        low=1,
        panic_enabled=False,
        cold_start_s=0,
        scale_down_stabilization_s=0,
        scale_to_zero_enabled=False,
    ),
    st.sampled_from(BAD_STATUSES),
)
def test_decide__one_target_unusable_and_the_rest_want_fewer__holds(s, status):
    policy, obs, history, now, replicas = s
    assume(len(policy.targets) >= 2)
    first, *rest = policy.targets
    obs = {**obs, first.signal: Obs(None, status=status), **{t.signal: Obs(0.0) for t in rest}}
    d = decide(policy, obs, history, now, replicas=replicas)
    assert d.desired_replicas >= current_of(replicas), d.reason


@PROPS
@given(scenario(in_range=True, low=1, slo_boost=SloBoost(False)))
def test_decide__no_usable_target__holds_with_missing_metrics_rule(s):
    policy, obs, history, now, replicas = s
    for t in policy.targets:
        obs[t.signal] = Obs(None, status="unavailable", reason="Prometheus is down")
    current = current_of(replicas)
    d = decide(policy, obs, history, now, replicas=replicas)
    assert d.desired_replicas == current
    assert d.rule == "hold:missing_metrics"
    assert any(e.kind == "metrics_missing" for e in d.events)


@PROPS
@given(
    scenario(
        in_range=True,
        low=1,
        panic_enabled=False,
        slo_boost=SloBoost(False),
        scale_to_zero_enabled=False,
    )
)
def test_decide__replicas_starting__no_scale_up_beyond_measured_demand(s):
    # AIBrix #2670: demand is measured on ready replicas; replicas on the way count as capacity.
    policy, obs, history, now, replicas = s
    current = current_of(replicas)
    lower, _ = floor_for(policy, now)
    demands = [current, lower]
    for t in policy.targets:
        o = obs.get(t.signal)
        if o is None or o.status != "ok":
            continue
        if t.kind == "per_replica_average":
            demands.append(math.ceil(o.value / t.value - 1e-9))
        else:
            demands.append(math.ceil(replicas.ready * o.value / t.value - 1e-9))
    d = decide(policy, obs, history, now, replicas=replicas)
    assert d.desired_replicas <= max(demands), d.reason


@PROPS
@given(
    st.integers(1, 6),
    st.sampled_from(["per_replica_average", "utilization", "latency_slo"]),
    st.integers(100, 400),
)
def test_decide__new_replicas_never_become_ready__spec_stops_at_measured_demand(
    ready, kind, load_pct
):
    # AIBrix #2670: reacting again to the same readings while replicas load gives 2, 4, 8, 16.
    target = {
        "per_replica_average": Target("queue_length", 10.0),
        "utilization": Target("kv_cache_usage", 0.5, "utilization"),
        "latency_slo": Target("ttft_p95", 2.0, "latency_slo"),
    }[kind]
    per_replica = target.value * load_pct / 100
    value = per_replica * ready if kind == "per_replica_average" else per_replica
    demand = max(ready, math.ceil(ready * load_pct / 100 - 1e-9))
    policy = Policy(1, 500, (target,))
    spec, history, t = ready, History(), NOW
    for _ in range(12):
        replicas = ReplicaState(spec, ready, tuple(NOW for _ in range(spec - ready)))
        d = decide(policy, {target.signal: Obs(value)}, history, t, replicas=replicas)
        history = history.advance(d, t, applied=True, keep_s=policy.history_horizon_s)
        spec = d.desired_replicas
        assert ready <= spec <= demand, d.reason
        t += 15


@PROPS
@given(scenario(in_range=True, low=1, young=True, cold_start_s=600))
# The edge, always tried: a replica started one second before the end of its cold start.
@example(
    s=(
        Policy(1, 10, (Target("queue_length", 5.0),), cold_start_s=600),
        {"queue_length": Obs(0.0)},
        History(),
        NOW,
        ReplicaState(4, 3, (NOW - 599,)),
    )
)
def test_decide__replica_within_cold_start__never_scales_down(s):
    policy, obs, history, now, replicas = s
    current = current_of(replicas)
    d = decide(policy, obs, history, now, replicas=replicas)
    assert d.desired_replicas >= current, d.reason


@PROPS
@given(scenario(in_range=True, low=1, scale_to_zero_enabled=False))
def test_decide__any_change__within_selected_rate_limits(s):
    policy, obs, history, now, replicas = s
    current = current_of(replicas)
    d = decide(policy, obs, history, now, replicas=replicas)
    behavior, up_events, down_events = hpa_behavior_of(policy, history.scale_events)
    if d.desired_replicas > current:
        limit = hpa_scale_limit(current, up_events, down_events, behavior, now, up=True)
        assert d.desired_replicas <= max(current, limit)
    elif d.desired_replicas < current:
        limit = hpa_scale_limit(current, up_events, down_events, behavior, now, up=False)
        assert d.desired_replicas >= min(current, limit)


@PROPS
@given(scenario(), st.randoms(use_true_random=False))
def test_decide__same_inputs_in_any_order__same_decision(s, rnd):
    policy, obs, history, now, replicas = s
    first = decide(policy, obs, history, now, replicas=replicas)
    assert decide(policy, obs, history, now, replicas=replicas) == first

    def shuffled(items):
        items = list(items)
        rnd.shuffle(items)
        return tuple(items)

    reordered = History(
        shuffled(history.recommendations),
        shuffled(history.scale_events),
        shuffled(history.load_samples),
        {k: shuffled(v) for k, v in history.signal_samples.items()},
        history.panic_last_s,
    )
    obs_reordered = dict(shuffled(obs.items()))
    assert decide(policy, obs_reordered, reordered, now, replicas=replicas) == first


@PROPS
@given(scenario(), st.integers(0, 35), st.integers(0, 35))
def test_decide__observed_spec_differs_from_last_applied__drift_event_and_adopted(
    s, observed, last
):
    policy, obs, history, now, replicas = s
    assume(observed != last)
    replicas = ReplicaState(replicas.spec, replicas.ready, replicas.starting, observed, last)
    d = decide(policy, obs, history, now, replicas=replicas)
    assert d.current_replicas == observed
    assert d.changed == (d.desired_replicas != observed)
    assert [e.kind for e in d.events].count("drift_detected") == 1
