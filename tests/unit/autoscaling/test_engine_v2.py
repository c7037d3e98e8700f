"""Sizing from demand and learned capacity (``demand_capacity`` targets): worked cases, the
policy fields and API, the live loop's history and the backtest replay."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from apps.autoscaling import engine
from apps.autoscaling.backtest import backtest_replay
from apps.autoscaling.engine import capacity
from apps.autoscaling.engine.capacity import learn
from apps.autoscaling.engine.targets import Reading
from apps.autoscaling.evaluation import history_dump, history_load
from apps.autoscaling.models import AutoscalingPolicy
from apps.autoscaling.serializers import AutoscalingPolicySerializer
from apps.metrics.collection import Observation
from apps.metrics.services import metrics_store
from tests.factories.accounts import MembershipFactory, UserFactory
from tests.factories.autoscaling import AutoscalingPolicyFactory
from tests.factories.inventory import DeploymentFactory, SimulatedDeploymentFactory

NOW = 1_000_000.0


def demand_deployment(settings, **policy):
    """A simulated vLLM deployment (1 to 20 replicas) under a dry-run policy sized from
    demand (2 req/s per replica at first, 60 s cold start); a local cache for its lock."""
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    dep = SimulatedDeploymentFactory(min_replicas=1, max_replicas=20, framework="vllm")
    fields = dict(capacity_initial_per_replica=2.0, cold_start_s=60.0)
    fields.update(policy)
    AutoscalingPolicyFactory(
        deployment=dep,
        mode="dry-run",
        targets=[{"signal": "request_rate", "value": 0.8, "kind": "demand_capacity"}],
        **fields,
    )
    return dep


def store(dep, at, **values):
    """Collected observations of ``dep``, read at ``at``."""
    metrics_store(
        observations={dep.pk: {k: Observation(v, at, "ok", "") for k, v in values.items()}}
    )


def _policy(**kw):
    base = dict(min_replicas=1, max_replicas=50, initial_capacity=2.0, cold_start_s=90.0)
    base.update(kw)
    return engine.demand_capacity_policy(**base)


def _obs(rate, backlog=0.0, **extra):
    out = {"request_rate": engine.Obs(rate, 0.0), "queue_length": engine.Obs(backlog, 0.0)}
    out.update({k: engine.Obs(v, 0.0) for k, v in extra.items()})
    return out


def _decide(policy, obs, current, history=None, now=NOW, ready=None):
    state = engine.ReplicaState(spec=current, ready=current if ready is None else ready)
    return engine.decide(policy, obs, history or engine.History(), now, replicas=state)


def test_decide__demand_and_backlog__sized_over_capacity_with_reason_in_figures():
    history = engine.History(capacity=engine.Capacity(2.1, 14))
    d = _decide(_policy(), _obs(12.3, 40), current=3, history=history)
    # (12.3 + 40 / 90) / (2.1 * 0.8) = 7.59
    assert d.desired_replicas == 8
    assert d.rule == "target:request_rate"
    assert d.reason.startswith(
        "demand 12.3 req/s + backlog 40 over 90 s / capacity 2.1 req/s per replica "
        "(learned from 14 intervals) at 80% utilisation = 8 replicas; 3 → 8"
    )
    assert d.demand == pytest.approx(12.3)


def test_decide__burst__straight_to_the_need_in_one_step():
    d = _decide(_policy(), _obs(40.0), current=2)
    assert d.desired_replicas == 25  # 40 / (2 * 0.8)
    assert d.rule == "target:request_rate"


def test_decide__backlog_growth__counts_as_demand_the_replicas_did_not_finish():
    history = engine.History(signal_samples={"queue_length": ((NOW - 10, 10.0),)})
    d = _decide(_policy(backlog_signal="queue_length"), _obs(8.0, 30.0), 5, history)
    # 8 finished + (30 - 10) / 10 growth = 10 req/s; + 30 / 90 backlog; / 1.6 = 6.46
    assert d.desired_replicas == 7
    assert "demand 10 req/s (8 finished + 2 backlog growth)" in d.reason


def test_step__signal_samples__stamped_when_taken_not_when_decided():
    obs = {
        "request_rate": engine.Obs(4.0, 15.0),
        "queue_length": engine.Obs(6.0, 15.0),
        "running_requests": engine.Obs(8.0, 15.0),
    }
    _, history = engine.step(
        _policy(),
        obs,
        engine.History(),
        NOW,
        replicas=engine.ReplicaState(spec=3, ready=3),
        applied=True,
    )
    assert history.signal_samples["queue_length"][-1] == (NOW - 15.0, 6.0)
    assert history.signal_samples["running_requests"][-1] == (NOW - 15.0, 8.0)


def test_decide__fast_reading_after_a_scraped_one__growth_over_the_span_between_their_values():
    # The last evaluation (2 s ago) read values scraped 15 s before it; the replicas, read
    # just now, hold 17 more requests: they arrived over 17 s, not 2 s.
    policy = _policy(backlog_signal="queue_length")
    scraped = {
        "request_rate": engine.Obs(2.0, 15.0),
        "queue_length": engine.Obs(0.0, 15.0),
        "running_requests": engine.Obs(4.0, 15.0),
    }
    _, history = engine.step(
        policy,
        scraped,
        engine.History(),
        NOW,
        replicas=engine.ReplicaState(spec=3, ready=3),
        applied=True,
    )
    fast = _obs(2.0, 17.0, running_requests=4.0)  # age 0
    d = _decide(policy, fast, 3, history, now=NOW + 2.0)
    # 2 finished + 17 / 17 growth = 3 req/s (over the 2 s between decisions: 10.5).
    assert d.demand == pytest.approx(3.0)
    assert "demand 3 req/s (2 finished + 1 held growth)" in d.reason


def _level(value, now=NOW, n=3, step=15.0):
    """``n`` demand samples of ``value``, ``step`` apart, ending one step before ``now``."""
    return tuple((now - step * (n - i), value) for i in range(n))


def test_decide__scale_down__held_at_what_the_recent_peak_needs():
    history = engine.History(demand_samples=((NOW - 300, 16.0), *_level(2.0)))
    d = _decide(_policy(), _obs(2.0), current=12, history=history)
    assert d.recommendation == 10  # 16 / 1.6: the peak 300 s ago, not the 2 needed now
    assert "the peak demand of 16 req/s (over 60 s) in the last 600 s needs 10" in d.reason
    # Once the peak is out of the window it no longer holds anything.
    later_history = engine.History(demand_samples=((NOW - 300, 16.0), *_level(2.0, now=NOW + 301)))
    later = _decide(_policy(), _obs(2.0), current=12, history=later_history, now=NOW + 301)
    assert later.recommendation == 2


def test_decide__too_few_readings_to_tell_a_ramp__no_scale_down():
    # Two earlier readings and this one: a level and the start of a ramp look the same.
    history = engine.History(demand_samples=_level(2.0, n=2))
    d = _decide(_policy(), _obs(2.0), current=12, history=history)
    assert d.desired_replicas == 12
    assert "fewer than 4 readings in the last 120 s to tell a ramp by, so no scale-down" in d.reason
    # Scaling up needs no trend: the need is met at once.
    assert _decide(_policy(), _obs(40.0), current=12, history=history).desired_replicas == 25
    # With a fourth reading the scale-down goes ahead (rate limits aside).
    enough = engine.History(demand_samples=_level(2.0, n=3))
    assert _decide(_policy(), _obs(2.0), current=12, history=enough).recommendation == 2


def test_decide__scale_down__within_tolerance_holds__no_dead_band_up():
    # need 9.5 against 10: within 10 % → hold; need 10.06 → 11 at once.
    assert _decide(_policy(), _obs(15.2), current=10).desired_replicas == 10
    assert _decide(_policy(), _obs(16.1), current=10).desired_replicas == 11


def test_step__demand_drops__scale_down_is_ten_percent_per_minute():
    policy = _policy(peak_window_s=0.0)
    history, current, counts = engine.History(demand_samples=_level(1.0)), 40, []
    for i in range(20):
        state = engine.ReplicaState(spec=current, ready=current)
        d, history = engine.step(
            policy, _obs(1.0), history, NOW + 15 * i, replicas=state, applied=True
        )
        current = d.desired_replicas
        counts.append(current)
    # -10 % of the count per minute (the 60 s window has no earlier recommendation to hold).
    assert counts == [36] * 4 + [32] * 4 + [28] * 4 + [25] * 4 + [22] * 4
    assert d.rule == "rate_limit:down"


@pytest.mark.parametrize("missing", ["request_rate", "queue_length"])
@pytest.mark.parametrize("status", ["missing", "stale"])
def test_decide__demand_or_backlog_unknown__holds_never_reads_zero(missing, status):
    obs = _obs(1.0)
    obs[missing] = engine.Obs(None, None, status, reason="scrape failed")
    d = _decide(_policy(), obs, current=9)
    assert (d.desired_replicas, d.rule) == (9, "hold:missing_metrics")
    assert "scrape failed" in d.reason
    assert d.capacity is None  # and nothing is learned


def test_learn__the_evidence_of_one_interval():
    cs = engine.CapacitySizing(initial_per_replica=2.0, latency_slo_s=2.0, learn_rate=0.5)
    before = engine.Capacity(2.0, 3)
    met, breached = Reading("ok", 0.9, ""), Reading("ok", 3.0, "")

    def go(throughput, backlog, latency, ready=4):
        return learn(
            cs, before, throughput=throughput, ready=ready, backlog=backlog, latency=latency
        )

    # Idle (under half the estimate per replica, no backlog): nothing, whatever latency says.
    assert go(3.9, 0, met) is None
    assert go(3.9, 0, breached) is None
    # SLO breached with a backlog: capacity at the SLO is at most 1.5 per replica.
    assert go(6.0, 4, breached) == engine.Capacity(1.75, 4)
    # Breached with nothing waiting: the requests' own latency (long prompts), nothing.
    assert go(6.0, 0, breached) is None
    # A backlog within the SLO: they ran flat out at 3 per replica and met it.
    assert go(12.0, 8, met) == engine.Capacity(2.5, 4)
    # Latency at most half the SLO with no backlog at 2.5 per replica: at least that.
    assert go(10.0, 0, Reading("ok", 0.5, "")) == engine.Capacity(2.25, 4)
    # ... but at or below the estimate low latency proves nothing beyond it.
    assert go(6.4, 0, Reading("ok", 0.5, "")) is None
    # Near the SLO without a backlog: busy, but says nothing either way.
    assert go(6.4, 0, Reading("ok", 1.8, "")) is None
    # Latency unknown, or no replica ready: nothing.
    assert go(12.0, 8, Reading("missing", None, "")) is None
    assert go(12.0, 8, met, ready=0) is None
    # Within bounds: initial / 2 .. initial * 2.
    assert go(400.0, 100, met).per_replica == 4.0
    low = learn(cs, engine.Capacity(1.1, 3), throughput=0.4, ready=4, backlog=100, latency=breached)
    assert low == engine.Capacity(1.0, 4)


def test_pooling_from__two_load_tests__the_square_root_staffing_coefficient():
    # Per replica at 4 and 8 replicas on the square-root model with pooling 0.4.
    def at(n):
        return 0.8 * (1 - 0.4 / n**0.5)

    assert engine.pooling_from(4, at(4), 8, at(8)) == pytest.approx(0.4)
    assert engine.pooling_from(8, at(8), 4, at(4)) == pytest.approx(0.4)  # either order
    assert engine.pooling_from(1, at(1), 16, at(16)) == pytest.approx(0.4)
    # A larger pool that does no better per replica: no pooling; a huge gain: the cap.
    assert engine.pooling_from(4, 1.0, 8, 0.97) == 0.0
    assert engine.pooling_from(4, 1.0, 8, 5.0) == engine.MAX_POOLING
    with pytest.raises(ValueError, match="two different pool sizes"):
        engine.pooling_from(4, 1.0, 4, 1.2)
    with pytest.raises(ValueError, match="pooling must be between"):
        _policy(pooling=0.95)
    with pytest.raises(ValueError, match="pool_size must be a whole number"):
        _policy(pooling=0.4, pool_size=4.0)


def test_decide__pooling__fewer_replicas_for_a_large_pool_more_for_a_small_one():
    # 0.65 req/s per replica measured on 4 replicas; 5 req/s at 80 %: 9.6 → 10 replicas
    # without pooling. With pooling 0.4 a replica of 9 does 0.65 * (1 - 0.4/3) / 0.8 =
    # 0.704 req/s: 9 * 0.704 * 0.8 = 5.07 ≥ 5 while 8 give 4.47.
    plain = _policy(initial_capacity=0.65, pool_size=4)
    pooled = _policy(initial_capacity=0.65, pool_size=4, pooling=0.4)
    assert _decide(plain, _obs(5.0), current=1).desired_replicas == 10
    d = _decide(pooled, _obs(5.0), current=1)
    assert d.desired_replicas == 9
    assert "capacity 0.65 req/s per replica of 4 (0.704 req/s each of 9, pooling 0.40)" in d.reason
    # Below the measured pool a replica does less: 1 req/s needs 1.92 replicas' worth at
    # 0.65 and 80 %, and a replica of 2 does 0.65 * 0.717 / 0.8 = 0.583: 3 replicas, not 2.
    assert _decide(plain, _obs(1.0), current=1).desired_replicas == 2
    assert _decide(pooled, _obs(1.0), current=1).desired_replicas == 3


@given(
    units=st.floats(0.0, 5000.0, allow_nan=False),
    pooling=st.floats(0.0, engine.MAX_POOLING),
    pool=st.integers(1, 64),
)
def test_replicas_for__the_fewest_replicas_whose_pooled_capacity_covers_the_need(
    units, pooling, pool
):
    cs = engine.CapacitySizing(pooling=pooling, pool_size=pool)
    n = capacity.replicas_for(cs, units)

    def served(replicas):  # replicas' worth of capacity as of the measured pool
        return replicas * capacity.per_replica_at(cs, 1.0, replicas)

    if n >= 1:  # below one replica the count rounds up to 1 anyway
        assert served(n) == pytest.approx(units, rel=1e-9, abs=1e-9)
    whole = max(1, engine.types.ceil_count(n))
    assert served(whole) >= units - 1e-6 * max(1.0, units)
    assert whole == 1 or served(whole - 1) < units
    assert capacity.replicas_for(cs, units + 1.0) > n


def test_learn__pooling__what_a_large_pool_did_brought_to_the_measured_pool():
    cs = engine.CapacitySizing(
        initial_per_replica=0.65, latency_slo_s=2.0, learn_rate=1.0, pooling=0.4, pool_size=4
    )
    met = Reading("ok", 0.9, "")
    # 16 replicas flat out (a backlog) at 0.8 req/s each within the SLO: a replica of 16
    # gets 0.9 / 0.8 of one of 4, so one of 4 would have done 0.8 * 0.8 / 0.9.
    after = learn(cs, engine.Capacity(0.65, 0), throughput=12.8, ready=16, backlog=40, latency=met)
    assert after.per_replica == pytest.approx(0.8 * 0.8 / 0.9)


def test_step__learned_capacity__carried_in_history_and_used_next():
    policy = _policy(latency_slo_s=2.0)
    state = engine.ReplicaState(spec=4, ready=4)
    obs = _obs(16.0, 8.0, ttft_p95=1.0)  # 4 per replica with a backlog, SLO met
    d, history = engine.step(policy, obs, engine.History(), NOW, replicas=state, applied=False)
    assert d.capacity == history.capacity == engine.Capacity(2.4, 1)
    d2 = _decide(policy, _obs(24.0), current=4, history=history, now=NOW + 10)
    assert "capacity 2.4 req/s per replica (learned from 1 interval)" in d2.reason
    assert d2.desired_replicas == 13  # 24 / (2.4 * 0.8) = 12.5


def test_policy__at_most_one_demand_target_and_utilisation_at_most_one():
    with pytest.raises(ValueError, match="at most one demand_capacity"):
        engine.Policy(1, 5, (engine.demand_target(), engine.demand_target("prompt_token_rate")))
    with pytest.raises(ValueError, match="utilisation target"):
        engine.demand_target(utilization=80)


def test_history__json_round_trip_keeps_capacity_and_demand():
    history = engine.History(
        capacity=engine.Capacity(2.5, 7), demand_samples=((NOW, 3.0),), panic_last_s=None
    )
    assert history_load(history_dump(history)) == history
    assert history_load({"capacity": "garbage"}).capacity is None


def test_replay__learns_per_replica_that_actually_served():
    policy = _policy(min_replicas=1, max_replicas=20, cold_start_s=0.0)
    # Four replicas actually served 12 req/s with a backlog of 8 throughout.
    series = {
        "request_rate": [(NOW + 10 * i, 12.0) for i in range(6)],
        "queue_length": [(NOW + 10 * i, 8.0) for i in range(6)],
    }
    actual = [(NOW + 10 * i, 4.0) for i in range(6)]
    result = backtest_replay(
        policy=policy, series=series, actual=actual, start=NOW, end=NOW + 50, step_s=10.0
    )
    # Learned towards 3 per actual replica (2 → 2.2 → 2.36 → 2.49 → 2.59 → 2.67), not towards
    # the 1.5 per replica of the 8 simulated ones.
    assert [s.replicas for s in result.steps] == [4, 8, 8, 8, 8, 8]
    assert "capacity 2.67 req/s per replica (learned from 5 intervals)" in result.steps[-1].reason


# --------------------------------------------------------------------------- product


@pytest.mark.django_db
def test_policy_api__new_policy_defaults_to_demand_sizing(client_for):
    deployment = DeploymentFactory(min_replicas=1, max_replicas=8)
    operator = UserFactory()
    MembershipFactory(user=operator, team=deployment.team, role="operator")
    client = client_for(operator)
    response = client.post(
        "/api/v1/autoscaling/policies/",
        {"deployment": deployment.pk, "capacity_initial_per_replica": 2.5},
        format="json",
    )
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["targets"] == [{"signal": "request_rate", "value": 0.8, "kind": "demand_capacity"}]
    policy = AutoscalingPolicy.objects.get(deployment=deployment).to_engine()
    assert policy.scale_up_policies == engine.DEMAND_SCALE_UP_POLICIES
    assert policy.scale_down_policies == engine.DEMAND_SCALE_DOWN_POLICIES
    assert policy.capacity.initial_per_replica == 2.5
    assert policy.capacity.peak_window_s == 600.0

    bad = client.patch(
        f"/api/v1/autoscaling/policies/{deployment.pk}/",
        {"capacity_learn_rate": 3, "capacity_latency_slo_s": 2.0},
        format="json",
    )
    assert bad.status_code == 400
    assert "learn_rate" in str(bad.json())
    assert AutoscalingPolicy.objects.get(deployment=deployment).capacity_latency_slo_s is None


@pytest.mark.django_db
def test_live_loop__collected_demand_and_backlog__sized_and_capacity_kept(settings):
    """The loop passes the collected request rate, backlog and latency, and keeps what was
    learned in the deployment's control history for the next evaluation."""
    import time

    from apps.autoscaling.actuators.base import ScaleStatus
    from apps.autoscaling.evaluation import deployment_evaluate
    from apps.autoscaling.models import DeploymentControl

    class Fixed:
        def get_scale(self, target):
            return ScaleStatus(4, 4)

    dep = demand_deployment(settings, capacity_latency_slo_s=2.0)
    now = time.time()
    store(dep, now, request_rate=16.0, queue_length=12.0, ttft_p95=1.1)
    record = deployment_evaluate(deployment=dep, actuator=Fixed(), now=now)
    assert record is not None
    # (16 + 12 / 60) / (2 * 0.8) = 10.1
    assert (record.desired_replicas, record.rule) == (11, "target:request_rate")
    assert record.reason.startswith("demand 16 req/s + backlog 12 over 60 s / capacity 2 req/s")
    history = DeploymentControl.objects.get(deployment=dep).history
    # 4 per replica with a backlog and TTFT within the SLO: 2 + 0.2 * (4 - 2).
    assert history["capacity"] == [pytest.approx(2.4), 1]
    assert history["demand_samples"] == [[now, 16.0]]
    again = deployment_evaluate(deployment=dep, actuator=Fixed(), now=now + 10)
    assert "capacity 2.4 req/s per replica (learned from 1 interval)" in again.reason


def _seasonal_history(recent_mean):
    then = NOW - 86400
    return engine.History(
        demand_buckets=(
            (then - 1600, 4.0, 30),  # the hour before, one day ago
            (then - 100, 32.0, 30),  # the peak arriving, one day ago
            (NOW - 2000, recent_mean, 30),  # the last hour, today
        )
    )


def test_forecast_floor__yesterdays_peak_ahead__met_before_it_arrives():
    policy = _policy(forecast_periods_s=(86400,))
    d = _decide(policy, _obs(2.0), current=2, history=_seasonal_history(4.0))
    assert d.desired_replicas == 20  # 32 / (2 * 0.8)
    assert (
        "the forecast floor (demand a day ago over the next 300 s, trend x1.00) expects "
        "32 req/s, which needs 20"
    ) in d.reason
    # Twice the demand of the same hour yesterday: the trend doubles what is expected.
    assert _decide(policy, _obs(2.0), 2, _seasonal_history(8.0)).desired_replicas == 40
    # Off by default: the same history changes nothing.
    assert _decide(_policy(), _obs(2.0), 2, _seasonal_history(4.0)).desired_replicas == 2


def test_step__forecast_on__demand_kept_in_buckets_for_a_period_and_an_hour():
    policy = _policy(forecast_periods_s=(86400,))
    assert policy.forecast_horizon_s == 86400 + 3600 + 300
    history, t0 = engine.History(), 999_900.0  # a bucket boundary
    for i, rate in enumerate([2.0, 4.0, 6.0]):
        state = engine.ReplicaState(spec=5, ready=5)
        _, history = engine.step(
            policy, _obs(rate), history, t0 + 150 * i, replicas=state, applied=False
        )
    assert history.demand_buckets == ((999_900.0, 3.0, 2), (1_000_200.0, 6.0, 1))
    assert history_load(history_dump(history)) == history
    # Without a forecast nothing is kept.
    _, plain = engine.step(
        _policy(), _obs(2.0), engine.History(), t0, replicas=state, applied=False
    )
    assert plain.demand_buckets == ()


CAPACITY_FIELDS = tuple(
    f for f in AutoscalingPolicySerializer.Meta.fields if f.startswith("capacity_")
)
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(10**6), 10**6)
    | st.floats(-1e6, 1e6, allow_nan=False)
    | st.text(max_size=80),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=5,
)


@pytest.mark.django_db
@settings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(body=st.dictionaries(st.sampled_from(CAPACITY_FIELDS), json_values, min_size=1))
@example(body={"capacity_forecast_periods_s": ""})
@example(body={"capacity_forecast_periods_s": [86400, "x"]})
@example(body={"capacity_backlog_drain_s": 0, "capacity_learn_range": 0.5})
@example(body={"capacity_pooling": 0.95, "capacity_pool_size": 0})
@example(body={"capacity_pooling": 0.4, "capacity_pool_size": 4})
def test_policy_api__any_capacity_settings__saved_and_decidable_or_400(client_for, body):
    """Whatever the demand-sizing fields hold, the API answers 200 with a policy the engine
    decides with, or 400 with a message; never a server error."""
    deployment = DeploymentFactory(min_replicas=1, max_replicas=8)
    operator = UserFactory()
    MembershipFactory(user=operator, team=deployment.team, role="operator")
    client = client_for(operator)
    created = client.post(
        "/api/v1/autoscaling/policies/", {"deployment": deployment.pk}, format="json"
    )
    assert created.status_code == 201
    response = client.patch(f"/api/v1/autoscaling/policies/{deployment.pk}/", body, format="json")
    assert response.status_code in (200, 400), response.content
    saved = AutoscalingPolicy.objects.get(deployment=deployment)
    if response.status_code == 400:
        assert response.json()
        assert saved.capacity_forecast_periods_s == []  # nothing of the refused body stored
    else:
        assert isinstance(saved.capacity_forecast_periods_s, list)
    policy = saved.to_engine()
    d = engine.decide(
        policy,
        _obs(3.0, 2.0, ttft_p95=1.0),
        engine.History(),
        NOW,
        replicas=engine.ReplicaState(spec=2, ready=2),
    )
    assert 1 <= d.desired_replicas <= 8


def test_decide__backlog_drained_by_new_replicas__not_mistaken_for_demand():
    # 10 s ago 40 waiting + 10 running; now 5 waiting + 15 running and 8 finished/s:
    # 8 + (20 - 50) / 10 = 5 req/s arrived, not 8.
    history = engine.History(
        signal_samples={
            "queue_length": ((NOW - 10, 40.0),),
            "running_requests": ((NOW - 10, 10.0),),
        }
    )
    d = _decide(_policy(), _obs(8.0, 5.0, running_requests=15.0), 6, history)
    assert d.demand == pytest.approx(5.0)
    assert "demand 5 req/s (8 finished - 3 held drained)" in d.reason


def test_decide__requests_started_not_finished__count_as_demand_at_once():
    history = engine.History(
        signal_samples={"queue_length": ((NOW - 10, 0.0),), "running_requests": ((NOW - 10, 4.0),)}
    )
    d = _decide(_policy(), _obs(2.0, 0.0, running_requests=24.0), 2, history)
    assert d.demand == pytest.approx(4.0)  # 2 finished + 20 more held over 10 s
    assert d.desired_replicas == 3  # 4 / 1.6


def _readings(values, step=15.0):
    """Demand samples ``step`` apart ending one step before NOW."""
    n = len(values)
    return tuple((NOW - step * (n - i), v) for i, v in enumerate(values))


def test_decide__demand_rising_steadily__sized_for_one_cold_start_ahead():
    # 20, 22, ..., 34 req/s every 15 s: 8 req/s per minute; 90 s cold start.
    history = engine.History(demand_samples=_readings([20.0, 22, 24, 26, 28, 30, 32]))
    d = _decide(_policy(), _obs(34.0), current=20, history=history)
    # Over the 90 s cold start, the readings' age (0 s) and the interval (15 s): a replica
    # asked for now serves from 90 s on and the next decision's 15 s later.
    # (34 + 2/15 * 105) / 1.6 = 30
    assert d.desired_replicas == 30
    assert (
        "rising 8 req/s per minute: 48 req/s in one cold start and the readings' delay (105 s)"
        in d.reason
    )


def test_decide__rising_demand__lead_includes_the_age_of_the_readings():
    history = engine.History(demand_samples=_readings([20.0, 22, 24, 26, 28, 30, 32]))
    obs = _obs(34.0)
    obs["request_rate"] = engine.Obs(34.0, 15.0)
    d = _decide(_policy(), obs, current=20, history=history)
    # (34 + 2/15 * (90 + 15 + 15)) / 1.6 = 31.25
    assert d.desired_replicas == 32
    assert "(120 s)" in d.reason


def test_decide__rising_demand__sized_from_the_ramp_not_the_lagging_mean():
    # 1, 1.5, ..., 4 req/s: within the counting noise of the last minute's mean (3.25), which
    # lags the ramp by half a minute; the level now on the line through the readings is 4.
    history = engine.History(demand_samples=_readings([1.0, 1.5, 2.0, 2.5, 3.0, 3.5]))
    d = _decide(_policy(), _obs(4.0), current=1, history=history)
    # (4 + 0.5/15 * 105) / 1.6 = 4.69
    assert d.desired_replicas == 5
    assert "rising 2 req/s per minute: 7.5 req/s" in d.reason


def test_trend__ramp_in_both_halves__extrapolated():
    ramp = [(15.0 * i, 10.0 + 2.0 * i) for i in range(8)]
    assert capacity.trend(ramp) == pytest.approx(2.0 / 15)


def test_trend__accelerating_ramp__the_whole_window_slope():
    curve = [(15.0 * i, 10.0 + 0.5 * i * i) for i in range(8)]
    assert capacity.trend(curve) == pytest.approx(capacity.median_slope(curve))
    assert capacity.trend(curve) > 0


def test_trend__step_over_a_few_readings__not_a_trend():
    # A step from 2 to 7 spread over three readings, then flat: the window's median slope
    # is positive, but the older half does not rise.
    step = [(15.0 * i, v) for i, v in enumerate([2.0, 2, 2, 2, 4.5, 6.5, 7, 7])]
    assert capacity.median_slope(step) > 0
    assert capacity.trend(step) == 0.0
    # Flat before, flat after: neither half rises.
    assert capacity.trend([(15.0 * i, v) for i, v in enumerate([2.0] * 4 + [7.0] * 4)]) == 0.0


def test_trend__falling_or_too_few_readings__zero():
    assert capacity.trend([(0.0, 5.0), (15.0, 4.0), (30.0, 3.0), (45.0, 2.0)]) == 0.0
    assert capacity.trend([(0.0, 1.0), (15.0, 2.0), (30.0, 3.0)]) == 0.0


def test_trend_level__the_line_at_now():
    samples = [(0.0, 1.0), (15.0, 2.0), (30.0, 3.0)]
    assert capacity.trend_level(samples, 1.0 / 15, 45.0) == pytest.approx(4.0)


def test_learn__within_a_cold_start_and_a_minute_of_a_scale_up__never_down():
    # A breach with a backlog at half the estimate would move it down ...
    policy = _policy(latency_slo_s=2.0)
    obs = _obs(4.0, 40.0, ttft_p95=5.0)
    history = engine.History(demand_samples=_level(4.0), capacity=engine.Capacity(2.0, 5))
    assert _decide(policy, obs, current=4, history=history).capacity.per_replica < 2.0
    # ... but not while replicas added by a scale-up 100 s ago may have just turned ready
    # (their first requests have not finished yet).
    joined = engine.History(
        demand_samples=_level(4.0),
        capacity=engine.Capacity(2.0, 5),
        scale_events=((NOW - 100, 2, 4),),
    )
    assert _decide(policy, obs, current=4, history=joined).capacity is None
    assert capacity.settling(policy, joined, NOW)
    # After the cold start (90 s) and a minute, or after a scale-down, it learns again.
    assert not capacity.settling(policy, joined, NOW + 51)
    down = engine.History(scale_events=((NOW - 100, 4, 2),))
    assert not capacity.settling(policy, down, NOW)


def test_decide__one_jump__not_extrapolated_as_a_trend():
    history = engine.History(demand_samples=_readings([20.0, 20, 20, 20, 20, 20, 20]))
    d = _decide(_policy(), _obs(40.0), current=13, history=history)
    assert d.desired_replicas == 25  # 40 / 1.6: the jump is met, not extrapolated
    assert "rising" not in d.reason


def test_decide__reading_within_counting_noise__sized_from_the_last_minute():
    # 1 req/s read over 15 s scatters by ~0.26: 1.4 is within 2 sigma of the mean 1.1.
    history = engine.History(demand_samples=_readings([1.0, 1.0, 1.0]))
    d = _decide(_policy(initial_capacity=0.05), _obs(1.4), current=28, history=history)
    assert "1.1 req/s over 60 s" in d.reason
    assert d.desired_replicas == 28  # 1.1 / 0.04 = 27.5, not 1.4 / 0.04 = 35


def test_significant__slope_against_the_scatter_of_a_fitted_slope():
    # Eight readings 15 s apart: sqrt(sum (t - mean t)^2) = 15 * sqrt(42) = 97.2.
    samples = [(15.0 * i, 1.0) for i in range(8)]
    # Each reading scatters by 0.3: a slope of 0.01/s is 3.2 sigmas, 0.008/s only 2.6.
    assert capacity.significant(samples, 0.01, 0.3)
    assert not capacity.significant(samples, 0.008, 0.3)
    assert capacity.significant(samples, 1e-9, 0.0)  # no counting noise known


def test_decide__slow_rise_within_counting_noise__not_extrapolated():
    # 0.9 → 1.53 req/s, 0.006 req/s per second, read every 15 s: each reading scatters by
    # ~0.3 (1.4 req/s over 15 s), so a fitted slope scatters by 0.3 / 97.2 = 0.0031 per
    # second; 0.006 is under 3 of those, and extrapolating it would add 0.9 req/s.
    values = [0.9, 0.99, 1.08, 1.17, 1.26, 1.35, 1.44]
    history = engine.History(demand_samples=_readings(values))
    d = _decide(_policy(initial_capacity=0.05), _obs(1.53), current=28, history=history)
    assert "rising" not in d.reason
    assert d.desired_replicas == 35  # the minute's mean 1.395 / 0.04 = 34.9


def test_decide__reading_well_below_the_ramp__rise_has_stopped():
    # 20, 22, ..., 32 req/s, then 26: the line through the earlier readings is at 34 now,
    # and 26 is below it by more than the counting noise (2 x sqrt(29 / 15) = 2.8).
    history = engine.History(demand_samples=_readings([20.0, 22, 24, 26, 28, 30, 32]))
    d = _decide(_policy(), _obs(26.0), current=20, history=history)
    assert "in one cold start" not in d.reason  # not extrapolated
    # 26 is within the noise of the last minute's mean (29): (26 + 28 + 30 + 32) / 4 / 1.6.
    assert d.desired_replicas == 20  # 29 / 1.6 = 18.1, within the tolerance of 20
    # On the line the ramp goes on.
    on = _decide(_policy(), _obs(34.0), current=20, history=history)
    assert "in one cold start" in on.reason


def test_decide__demand_rising_but_not_a_trend__no_scale_down():
    # Flat, then rising in the newer half only (the start of an accelerating ramp): not
    # extrapolated (the older half does not rise), but nothing is removed while it rises.
    history = engine.History(demand_samples=_readings([10.0, 10.0, 10.0, 12.0, 15.0, 18.0]))
    d = _decide(_policy(initial_capacity=18.0), _obs(23.0), current=3, history=history)
    assert "in one cold start" not in d.reason
    assert d.desired_replicas == 3  # 23 / 14.4 = 1.6 → 2 without the hold
    assert "demand has been rising (" in d.reason
    assert "per minute over the last 120 s), so no scale-down; holding at 3" in d.reason


def test_step__between_scrapes__decided_and_recorded__no_demand_sample_nothing_learned():
    policy = _policy(latency_slo_s=2.0)
    # Saturated and within the SLO: a regular evaluation would learn 3 req/s per replica.
    obs = _obs(12.0, 40.0, ttft_p95=0.5)
    replicas = engine.ReplicaState(spec=4, ready=4)
    regular, kept = engine.step(policy, obs, engine.History(), NOW, replicas=replicas, applied=True)
    assert kept.demand_samples == ((NOW, regular.demand),)
    assert kept.capacity is not None
    fast, after = engine.step(
        policy, obs, engine.History(), NOW, replicas=replicas, applied=True, between_scrapes=True
    )
    assert fast.desired_replicas == regular.desired_replicas
    assert after.scale_events == kept.scale_events
    assert after.signal_samples == kept.signal_samples
    assert after.demand_samples == ()
    assert after.capacity is None
