"""Properties of sizing from demand and learned capacity, checked on generated inputs."""

from __future__ import annotations

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from apps.autoscaling import engine
from apps.autoscaling.engine.capacity import learn
from apps.autoscaling.engine.targets import Reading
from apps.autoscaling.engine.types import floor_count

NOW = 1_000_000.0
PROPS = settings(max_examples=200, deadline=None)

rates = st.floats(0.0, 500.0, allow_nan=False)
backlogs = st.floats(0.0, 400.0, allow_nan=False)


@st.composite
def policies(draw):
    low = draw(st.integers(1, 5))
    high = draw(st.integers(low, 60))
    return engine.demand_capacity_policy(
        min_replicas=low,
        max_replicas=high,
        initial_capacity=draw(st.floats(0.1, 20.0)),
        utilization_target=draw(st.floats(0.3, 1.0)),
        cold_start_s=draw(st.sampled_from([0.0, 30.0, 90.0, 300.0])),
        latency_slo_s=draw(st.one_of(st.none(), st.floats(0.2, 5.0))),
        scale_down_percent_per_minute=draw(st.integers(1, 50)),
        peak_window_s=draw(st.sampled_from([0.0, 120.0, 600.0])),
        tolerance=draw(st.sampled_from([0.0, 0.1])),
        forecast_periods_s=draw(st.sampled_from([(), (3600.0,)])),
        pooling=draw(st.sampled_from([0.0, 0.4, engine.MAX_POOLING])),
        pool_size=draw(st.integers(1, 16)),
    )


@st.composite
def histories(draw, policy):
    """A plausible history: earlier recommendations, scale events, demand and backlog
    readings within the policy's horizon, demand buckets, maybe a learned capacity."""
    horizon = policy.history_horizon_s
    times = draw(st.lists(st.floats(1.0, max(horizon, 1.0)), max_size=6, unique=True))
    high = policy.max_replicas
    low, top = policy.capacity.capacity_bounds
    return engine.History(
        recommendations=tuple((NOW - t, draw(st.integers(1, high))) for t in sorted(times)),
        scale_events=tuple(
            (NOW - t, draw(st.integers(1, high)), draw(st.integers(1, high)))
            for t in draw(st.lists(st.floats(1.0, 120.0), max_size=3))
        ),
        signal_samples={"queue_length": tuple((NOW - t, draw(backlogs)) for t in times[:2])},
        capacity=draw(
            st.one_of(
                st.none(),
                st.builds(engine.Capacity, st.floats(low, top), st.integers(0, 100)),
            )
        ),
        demand_samples=tuple((NOW - t, draw(rates)) for t in times),
        demand_buckets=tuple(
            sorted(
                (NOW - t - (NOW - t) % 300, draw(rates), 1)
                for t in draw(st.lists(st.floats(0.0, 7500.0), max_size=8, unique=True))
            )
        ),
    )


@st.composite
def scenarios(draw):
    policy = draw(policies())
    history = draw(histories(policy))
    current = draw(st.integers(1, policy.max_replicas))
    ready = draw(st.integers(0, current))
    state = engine.ReplicaState(spec=current, ready=ready)
    return policy, history, state


def _obs(rate, backlog, latency=None):
    out = {"request_rate": engine.Obs(rate, 0.0), "queue_length": engine.Obs(backlog, 0.0)}
    if latency is not None:
        out["ttft_p95"] = engine.Obs(latency, 0.0)
    return out


@PROPS
@given(scenarios(), rates, backlogs)
def test_decide__any_demand__within_min_max(s, rate, backlog):
    _assert_within_min_max(s, rate, backlog)


def _assert_within_min_max(s, rate, backlog):
    policy, history, state = s
    d = engine.decide(policy, _obs(rate, backlog), history, NOW, replicas=state)
    assert policy.min_replicas <= d.desired_replicas <= policy.max_replicas


@PROPS
@given(
    scenarios(),
    rates,
    backlogs,
    st.sampled_from(["request_rate", "queue_length"]),
    st.sampled_from(["missing", "stale", "unavailable", "failed"]),
)
def test_decide__demand_or_backlog_unknown__never_scales_down(s, rate, backlog, gone, status):
    policy, history, state = s
    obs = _obs(rate, backlog)
    obs[gone] = engine.Obs(rate, 5.0, status, reason="no data")
    d = engine.decide(policy, obs, history, NOW, replicas=state)
    assert d.desired_replicas >= state.spec
    assert d.capacity is None


@PROPS
@given(scenarios(), rates, rates, backlogs)
def test_decide__more_demand__never_fewer_replicas(s, a, b, backlog):
    _assert_more_demand_never_fewer(s, a, b, backlog)


def _assert_more_demand_never_fewer(s, a, b, backlog):
    policy, history, state = s
    low, high = sorted((a, b))
    d_low = engine.decide(policy, _obs(low, backlog), history, NOW, replicas=state)
    d_high = engine.decide(policy, _obs(high, backlog), history, NOW, replicas=state)
    assert d_low.desired_replicas <= d_high.desired_replicas
    assert d_low.recommendation <= d_high.recommendation


@PROPS
@given(
    policies(),
    st.lists(
        st.tuples(
            rates,
            backlogs,
            st.one_of(st.none(), st.floats(0.0, 20.0)),
            st.integers(0, 40),
        ),
        min_size=1,
        max_size=30,
    ),
)
def test_learned_capacity__any_intervals__stays_within_bounds(policy, intervals):
    cs = policy.capacity
    low, high = cs.capacity_bounds
    cap = engine.Capacity(cs.initial_per_replica, 0)
    for throughput, backlog, latency, ready in intervals:
        reading = None if latency is None else Reading("ok", latency, "")
        after = learn(cs, cap, throughput=throughput, ready=ready, backlog=backlog, latency=reading)
        if after is not None:
            assert low <= after.per_replica <= high
            assert after.intervals == cap.intervals + 1
            cap = after


@PROPS
@given(
    policies(),
    st.floats(0.0, 1.0, exclude_max=True),
    st.floats(0.0, 0.99),
    st.one_of(st.none(), st.floats(0.0, 20.0)),
    st.integers(1, 40),
    st.floats(0.1, 80.0),
)
def test_learned_capacity__idle_interval__teaches_nothing(
    policy, share, backlog_share, latency, ready, estimate
):
    """Under learn_min_utilization of the estimate with less than one waiting request per
    ready replica, whatever the latency, the estimate does not move."""
    cs = policy.capacity
    throughput = share * cs.learn_min_utilization * estimate * ready
    reading = None if latency is None else Reading("ok", latency, "")
    assume(share * cs.learn_min_utilization < cs.learn_min_utilization * (1 - 1e-9))
    after = learn(
        cs,
        engine.Capacity(estimate, 3),
        throughput=throughput,
        ready=ready,
        backlog=backlog_share * ready,
        latency=reading,
    )
    assert after is None


@settings(max_examples=100, deadline=None)
@given(
    policies(),
    st.integers(2, 60),
    st.lists(st.floats(0.0, 300.0, allow_nan=False), min_size=4, max_size=40),
)
def test_step__falling_demand__per_minute_scale_down_within_the_fraction(policy, start, demand):
    """With demand only falling (so no scale-up in between), no 60 s period removes more
    than the policy's percentage of the count at its start."""
    start = min(max(start, policy.min_replicas), policy.max_replicas)
    percent = policy.scale_down_policies[0].value
    demand = sorted(demand, reverse=True)
    history, current, at = engine.History(), start, [(NOW - 1e6, start)]
    for i, rate in enumerate(demand):
        now = NOW + 15 * i
        state = engine.ReplicaState(spec=current, ready=current)
        d, history = engine.step(
            policy, _obs(rate, 0.0), history, now, replicas=state, applied=True
        )
        current = d.desired_replicas
        at.append((now, current))
    for now, count in at[1:]:
        before = [c for t, c in at if t <= now - 60]
        period_start = before[-1]
        assert count >= floor_count(period_start * (100 - percent) / 100)


@st.composite
def dense_scenarios(draw):
    """Readings every 15 s up to now (ramps, steps and noise: where the trend acts)."""
    policy = draw(policies())
    n = draw(st.integers(0, 9))
    values = draw(st.lists(rates, min_size=n, max_size=n))
    history = engine.History(
        demand_samples=tuple((NOW - 15.0 * (n - i), v) for i, v in enumerate(values)),
        capacity=draw(st.one_of(st.none(), st.just(engine.Capacity(1.0, 3)))),
    )
    current = draw(st.integers(1, policy.max_replicas))
    return policy, history, engine.ReplicaState(spec=current, ready=current)


@PROPS
@given(dense_scenarios(), rates, rates, backlogs)
def test_decide__more_demand_with_a_trend_in_the_readings__never_fewer_replicas(s, a, b, backlog):
    _assert_more_demand_never_fewer(s, a, b, backlog)


@PROPS
@given(dense_scenarios(), rates, backlogs)
def test_decide__readings_every_interval__within_min_max(s, rate, backlog):
    _assert_within_min_max(s, rate, backlog)
