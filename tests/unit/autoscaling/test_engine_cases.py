"""Hand-written cases, one or more per rule of the scale decision."""

from __future__ import annotations

import pytest

from apps.autoscaling.engine import (
    CronMinimum,
    Decision,
    History,
    Obs,
    Policy,
    ReplicaState,
    ScalingPolicy,
    SloBoost,
    Target,
    decide,
)
from apps.metrics.collection import Observation

NOW = 1_000_000.0  # 13:46:40 UTC
QUEUE = Target("queue_length", 5)
KV = Target("kv_cache_usage", 0.8, "utilization")
TTFT = Target("ttft_p95", 2.0, "latency_slo")
# Generous rate limits, for cases about something else.
FREE = {"scale_up_policies": (ScalingPolicy("pods", 100, 15),)}


def policy(*targets: Target, min_replicas: int = 1, max_replicas: int = 20, **kw) -> Policy:
    return Policy(min_replicas, max_replicas, targets or (QUEUE,), **{**FREE, **kw})


def run(
    p: Policy,
    obs: dict[str, Obs],
    spec: int,
    *,
    ready: int | None = None,
    starting: tuple[float, ...] = (),
    history: History | None = None,
    now: float = NOW,
    **state,
) -> Decision:
    replicas = ReplicaState(
        spec, spec - len(starting) if ready is None else ready, starting, **state
    )
    return decide(p, obs, history or History(), now, replicas=replicas)


def kinds(d: Decision) -> list[str]:
    return [e.kind for e in d.events]


# --------------------------------------------------------------------------- targets


def test_decide__load_step__scales_up_with_figures_in_reason():
    d = run(policy(), {"queue_length": Obs(42)}, 3)
    assert (d.desired_replicas, d.changed, d.rule) == (9, True, "target:queue_length")
    assert d.reason == (
        "queue_length 42 over 3 ready replicas is 14.0 per replica against a target of 5; "
        "3 → 9 (tolerance 10%)"
    )
    assert d.recommendation == 9
    assert d.proposals[0].replicas == 9


def test_decide__ratio_within_tolerance__holds():
    d = run(policy(), {"queue_length": Obs(16)}, 3)  # 5.33 per replica, ratio 1.07
    assert (d.desired_replicas, d.changed, d.rule) == (3, False, "target:queue_length")
    assert "within the 10% tolerance" in d.reason


# The tolerance edges, with the Policy's default tolerance (10 %): a ratio of exactly 1.1 or
# 0.9 holds, 1.11 or 0.89 scales (10 replicas, so each side of the edge is a different count).
@pytest.mark.parametrize(
    ("target", "value", "desired"),
    [
        (QUEUE, 55.0, 10),  # 5.5 per replica against 5
        (QUEUE, 55.5, 12),
        (QUEUE, 45.0, 10),
        (QUEUE, 44.5, 9),
        (KV, 0.88, 10),  # against 0.8
        (KV, 0.888, 12),
        (KV, 0.72, 10),
        (KV, 0.712, 9),
        (TTFT, 2.2, 10),  # against 2 s: latency only scales up past the tolerance
        (TTFT, 2.22, 12),
    ],
)
def test_decide__ratio_at_the_tolerance_edge__holds_and_just_past_it__scales(
    target, value, desired
):
    p = policy(target, scale_down_stabilization_s=0)
    d = run(p, {target.signal: Obs(value)}, 10)
    assert d.desired_replicas == desired, d.reason
    assert d.rule == f"target:{target.signal}"


def test_decide__utilization_target__hpa_formula():
    # ceil(3 * 0.96 / 0.8) = ceil(3.6) = 4
    d = run(policy(KV), {"kv_cache_usage": Obs(0.96)}, 3)
    assert d.desired_replicas == 4
    assert d.rule == "target:kv_cache_usage"


def test_decide__several_targets__highest_proposal_wins():
    d = run(policy(QUEUE, KV), {"queue_length": Obs(20), "kv_cache_usage": Obs(0.96)}, 3)
    assert d.desired_replicas == 4
    assert d.rule == "target:queue_length"  # both ask for 4; the first listed is named


def test_decide__float_noise__does_not_add_a_replica():
    # 0.1 * 6 / 0.05 is 12.000000000000002 in floats; ceil must still say 12.
    p = policy(Target("gpu_utilization", 0.05, "utilization"))
    d = run(p, {"gpu_utilization": Obs(0.1)}, 6)
    assert d.desired_replicas == 12
    # 0.33 / 0.03 is 11.000000000000002.
    d = run(policy(Target("custom:x", 0.03)), {"custom:x": Obs(0.33)}, 3)
    assert d.desired_replicas == 11


def test_decide__tolerance_abs_replicas__small_change_held():
    d = run(policy(tolerance_abs_replicas=1), {"queue_length": Obs(20)}, 3)  # asks for 4
    assert d.desired_replicas == 3


def test_decide__mode__carried_and_decision_unchanged():
    dry = run(policy(mode="dry-run"), {"queue_length": Obs(42)}, 3)
    off = run(policy(mode="off"), {"queue_length": Obs(42)}, 3)
    live = run(policy(mode="enforce"), {"queue_length": Obs(42)}, 3)
    assert dry.desired_replicas == off.desired_replicas == live.desired_replicas == 9
    assert (dry.dry_run, off.dry_run, live.dry_run) == (True, True, False)
    assert (dry.mode, off.mode, live.mode) == ("dry-run", "off", "enforce")


# --------------------------------------------------------------------------- latency


def test_decide__latency_above_threshold__scales_up_proportionally():
    d = run(policy(TTFT), {"ttft_p95": Obs(5.0)}, 4)  # ceil(4 * 5 / 2) = 10
    assert (d.desired_replicas, d.rule) == (10, "target:ttft_p95")
    assert "2.50x the 2 s threshold" in d.reason


def test_decide__latency_near_threshold__vetoes_scale_down_by_other_target():
    d = run(policy(QUEUE, TTFT), {"queue_length": Obs(5), "ttft_p95": Obs(1.5)}, 6)
    assert d.desired_replicas == 6
    assert d.proposals[1].replicas == 6


def test_decide__latency_well_under__lets_other_target_scale_down():
    d = run(policy(QUEUE, TTFT), {"queue_length": Obs(5), "ttft_p95": Obs(0.5)}, 6)
    assert d.desired_replicas == 1
    assert d.proposals[1].replicas is None


def test_decide__latency_only_and_well_under__one_replica_fewer():
    d = run(policy(TTFT), {"ttft_p95": Obs(0.5)}, 6)
    assert d.desired_replicas == 5
    assert "one replica fewer" in d.reason


# --------------------------------------------------------------------------- stabilization


def test_decide__load_drop__scale_down_stabilized_then_allowed_after_300s():
    p = policy(max_replicas=10)
    history = History()
    spec = 3
    d = run(p, {"queue_length": Obs(30)}, spec, history=history, now=NOW)
    assert d.desired_replicas == 6
    history = history.advance(d, NOW, applied=True, keep_s=p.history_horizon_s)
    spec = 6
    t = NOW
    while t < NOW + 285:
        t += 15
        d = run(p, {"queue_length": Obs(4)}, spec, history=history, now=t)
        assert d.desired_replicas == 6
        assert d.rule == "stabilization:down"
        assert "the highest recommendation in the last 300 s is 6" in d.reason
        history = history.advance(d, t, applied=True, keep_s=p.history_horizon_s)
    t += 15  # 300 s after the last recommendation of 6
    d = run(p, {"queue_length": Obs(4)}, spec, history=history, now=t)
    assert (d.desired_replicas, d.rule) == (1, "target:queue_length")


def test_decide__scale_up_window__lowest_recent_recommendation_used():
    p = policy(scale_up_stabilization_s=60)
    history = History(recommendations=((NOW - 30, 4),))
    d = run(p, {"queue_length": Obs(42)}, 3, history=history)
    assert (d.desired_replicas, d.rule) == (4, "stabilization:up")


# --------------------------------------------------------------------------- missing metrics


def test_decide__all_metrics_missing__holds_with_event():
    d = run(
        policy(),
        {"queue_length": Obs(None, status="unavailable", reason="Prometheus unreachable")},
        5,
    )
    assert (d.desired_replicas, d.rule) == (5, "hold:missing_metrics")
    assert kinds(d) == ["metrics_missing"]
    assert "queue_length is unavailable: Prometheus unreachable" in d.reason


def test_decide__observation_absent__never_read_as_zero():
    d = run(policy(), {}, 5)
    assert (d.desired_replicas, d.rule) == (5, "hold:missing_metrics")


def test_decide__stale_metric__holds_with_stale_event():
    d = run(policy(), {"queue_length": Obs(None, status="stale")}, 5)
    assert d.desired_replicas == 5
    assert kinds(d) == ["stale_metrics"]


def test_decide__ok_but_too_old__treated_as_stale():
    d = run(policy(max_metric_age_s=60), {"queue_length": Obs(0, age_s=600)}, 5)
    assert d.desired_replicas == 5
    assert kinds(d) == ["stale_metrics"]


def test_decide__partial_picture_wanting_fewer__holds():
    obs = {"queue_length": Obs(0), "kv_cache_usage": Obs(None, status="missing")}
    d = run(policy(QUEUE, KV), obs, 5)
    assert (d.desired_replicas, d.rule) == (5, "hold:missing_metrics")
    assert "a partial picture may scale up but never down" in d.reason


def test_decide__partial_picture_wanting_more__scales_up():
    obs = {"queue_length": Obs(42), "kv_cache_usage": Obs(None, status="missing")}
    d = run(policy(QUEUE, KV), obs, 3)
    assert (d.desired_replicas, d.rule) == (9, "target:queue_length")
    assert kinds(d) == ["metrics_missing"]


def test_decide__nan_value__unusable():
    d = run(policy(), {"queue_length": Obs(float("nan"))}, 5)
    assert (d.desired_replicas, d.rule) == (5, "hold:missing_metrics")


def test_obs__from_collector_observation__age_and_status_carried():
    o = Obs.from_observation(Observation(12.0, NOW - 20, "ok"), NOW)
    assert (o.value, o.age_s, o.status) == (12.0, 20.0, "ok")
    o = Obs.from_observation(Observation(None, None, "stale", "last scrape 400s ago"), NOW)
    assert (o.value, o.age_s, o.status, o.reason) == (None, None, "stale", "last scrape 400s ago")


# --------------------------------------------------------------------------- starting replicas


def test_decide__replicas_starting__no_runaway_while_they_load():
    # AIBrix #2670: 2 ready at twice the target; new replicas never become ready here.
    p = policy(Target("queue_length", 10), max_replicas=32)
    spec, history, t = 2, History(), NOW
    specs = []
    for _ in range(8):
        starting = tuple(NOW for _ in range(spec - 2))
        d = run(
            p, {"queue_length": Obs(40)}, spec, ready=2, starting=starting, history=history, now=t
        )
        history = history.advance(d, t, applied=True, keep_s=p.history_horizon_s)
        spec = d.desired_replicas
        specs.append(spec)
        t += 15
    assert specs == [4] * 8


def test_decide__utilization_with_replicas_starting__demand_measured_on_ready():
    # 2 ready at 100% KV against 50%: they need 4 in all; 2 more are already starting.
    p = policy(Target("kv_cache_usage", 0.5, "utilization"))
    d = run(p, {"kv_cache_usage": Obs(1.0)}, 4, ready=2, starting=(NOW - 10, NOW - 10))
    assert d.desired_replicas == 4
    assert "starting replicas already cover it" in d.reason
    d = run(p, {"kv_cache_usage": Obs(1.0)}, 3, ready=2, starting=(NOW - 10,))
    assert d.desired_replicas == 4


def test_decide__replica_within_cold_start__no_scale_down():
    p = policy(cold_start_s=600, scale_down_stabilization_s=0)
    d = run(p, {"queue_length": Obs(0)}, 4, starting=(NOW - 60,))
    assert (d.desired_replicas, d.rule) == (4, "cold_start_hold")
    assert "600 s cold start" in d.reason


@pytest.mark.parametrize(
    ("age_s", "held"),
    [(0, True), (299, True), (301, True), (599, True), (600, False), (601, False)],
)
def test_decide__cold_start_edge__held_until_exactly_the_window(age_s, held):
    # A replica started 599 s ago is still within a 600 s cold start; at 600 s it is not.
    p = policy(cold_start_s=600, scale_down_stabilization_s=0)
    d = run(p, {"queue_length": Obs(4)}, 4, starting=(NOW - age_s,))
    expected = (4, "cold_start_hold") if held else (1, "target:queue_length")
    assert (d.desired_replicas, d.rule) == expected, d.reason


def test_decide__replica_past_cold_start__scale_down_allowed():
    p = policy(cold_start_s=600, scale_down_stabilization_s=0)
    d = run(p, {"queue_length": Obs(4)}, 4, starting=(NOW - 700,))
    assert (d.desired_replicas, d.rule) == (1, "target:queue_length")


# --------------------------------------------------------------------------- rate limits and bounds


def test_decide__default_hpa_behaviour__scale_up_limited_to_max_of_double_or_plus_4():
    d = decide(
        Policy(1, 50, (QUEUE,)),
        {"queue_length": Obs(200)},
        History(),
        NOW,
        replicas=ReplicaState(3, 3),
    )
    assert (d.desired_replicas, d.rule) == (7, "rate_limit:up")  # max(3 * 2, 3 + 4)


def test_decide__recent_scale_up_counted__rate_limit_uses_period_start():
    p = policy(scale_up_policies=(ScalingPolicy("pods", 4, 60),))
    history = History(scale_events=((NOW - 30, 3, 6),))
    d = run(p, {"queue_length": Obs(100)}, 6, history=history)
    assert (d.desired_replicas, d.rule) == (7, "rate_limit:up")  # 3 at period start + 4


def test_decide__scale_down_pods_policy__one_at_a_time():
    p = policy(
        scale_down_stabilization_s=0,
        scale_down_policies=(ScalingPolicy("pods", 1, 60),),
    )
    d = run(p, {"queue_length": Obs(0)}, 6)
    assert (d.desired_replicas, d.rule) == (5, "rate_limit:down")
    d = run(p, {"queue_length": Obs(0)}, 5, history=History(scale_events=((NOW - 10, 6, 5),)))
    assert (d.desired_replicas, d.rule) == (5, "rate_limit:down")


def test_decide__scale_up_disabled__holds():
    d = run(policy(scale_up_select="disabled"), {"queue_length": Obs(100)}, 3)
    assert (d.desired_replicas, d.rule) == (3, "rate_limit:up")


def test_decide__demand_above_max__capped():
    d = run(policy(max_replicas=6), {"queue_length": Obs(100)}, 3)
    assert (d.desired_replicas, d.rule) == (6, "max_replicas")


def test_decide__demand_below_min__floored():
    d = run(policy(min_replicas=2, scale_down_stabilization_s=0), {"queue_length": Obs(0)}, 4)
    assert (d.desired_replicas, d.rule) == (2, "min_replicas")


def test_decide__current_above_max__back_to_max_at_once():
    d = run(policy(max_replicas=4), {"queue_length": Obs(200)}, 9)
    assert (d.desired_replicas, d.rule) == (4, "max_replicas")


def test_decide__current_below_min__up_to_min_at_once():
    d = run(policy(min_replicas=3), {"queue_length": Obs(0)}, 1)
    assert (d.desired_replicas, d.rule) == (3, "min_replicas")


def test_decide__zero_without_scale_to_zero__brought_back_to_min():
    d = run(policy(), {"queue_length": Obs(0)}, 0)
    assert (d.desired_replicas, d.rule) == (1, "min_replicas")


# --------------------------------------------------------------------------- panic


def test_decide__short_window_burst__enters_panic_and_scales_to_it():
    p = policy(panic_enabled=True)
    # Stable value 20 (4 replicas' worth), but the last 6 s show 60: 12 needed for 3 ready.
    d = run(p, {"queue_length": Obs(20, panic_value=60)}, 3)
    assert (d.desired_replicas, d.rule, d.panic) == (12, "panic", True)
    assert d.panic_last_s == NOW
    assert "4.0x the 3 ready" in d.reason


def test_decide__burst_in_history_samples__enters_panic():
    p = policy(panic_enabled=True)
    history = History(signal_samples={"queue_length": ((NOW - 4, 50.0), (NOW - 1, 70.0))})
    d = run(p, {"queue_length": Obs(20)}, 3, history=history)
    # The short window is the mean of 50, 70 and the current 20: 46.7 → 10 replicas.
    assert (d.desired_replicas, d.rule) == (10, "panic")


def test_decide__loop_slower_than_panic_window__current_reading_still_panics():
    # Evaluations every 10 s leave no earlier sample inside a 6 s window: the reading being
    # decided on must count, or panic could never start in the live loop.
    p = policy(panic_enabled=True, panic_window_s=6)
    history = History(signal_samples={"queue_length": ((NOW - 10, 5.0),)})
    d = run(p, {"queue_length": Obs(100)}, 2, history=history)
    assert d.panic
    assert d.rule in ("panic", "target:queue_length", "rate_limit:up")
    assert d.panic_last_s == NOW


def test_decide__below_panic_threshold__no_panic():
    d = run(policy(panic_enabled=True), {"queue_length": Obs(20, panic_value=25)}, 3)
    assert (d.panic, d.desired_replicas, d.rule) == (False, 4, "target:queue_length")
    assert d.panic_last_s is None


def test_decide__in_panic_within_stable_window__never_scales_down():
    p = policy(panic_enabled=True, scale_down_stabilization_s=0)
    history = History(panic_last_s=NOW - 30)
    d = run(p, {"queue_length": Obs(5, panic_value=5)}, 12, history=history)
    assert (d.desired_replicas, d.rule, d.panic) == (12, "panic", True)
    assert d.panic_last_s == NOW - 30  # the condition did not hold now
    later = run(p, {"queue_length": Obs(5, panic_value=5)}, 12, history=history, now=NOW + 30)
    assert (later.panic, later.desired_replicas) == (False, 1)
    assert later.panic_last_s is None


# --------------------------------------------------------------------------- scale to zero


def _idle_history(seconds: float, *, step: float = 15, load: float = 0.0) -> History:
    n = int(seconds // step)
    return History(load_samples=tuple((NOW - i * step, load) for i in range(n, 0, -1)))


S2Z = {
    "scale_to_zero_enabled": True,
    "idle_period_s": 600,
    "load_signals": ("custom:gateway_pending",),
}


def test_decide__no_load_for_idle_period__scales_to_zero():
    p = policy(**S2Z)
    obs = {"queue_length": Obs(0), "custom:gateway_pending": Obs(0)}
    d = run(p, obs, 2, history=_idle_history(600))
    assert (d.desired_replicas, d.rule) == (0, "scale_to_zero")
    assert "no load observed for 600 s" in d.reason
    assert d.load == 0


def test_decide__scale_to_zero_rate_limited__steps_to_floor_then_zero():
    p = policy(
        min_replicas=3,
        scale_down_policies=(ScalingPolicy("pods", 1, 60),),
        **S2Z,
    )
    obs = {"queue_length": Obs(0), "custom:gateway_pending": Obs(0)}
    d = run(p, obs, 5, history=_idle_history(600))
    assert (d.desired_replicas, d.rule) == (4, "rate_limit:down")
    events = ((NOW - 70, 5, 4),)  # outside the 60 s period
    d = run(
        p,
        obs,
        4,
        history=History(load_samples=_idle_history(600).load_samples, scale_events=events),
    )
    assert (d.desired_replicas, d.rule) == (3, "rate_limit:down")  # never below the floor
    d = run(p, obs, 3, history=_idle_history(600))
    assert (d.desired_replicas, d.rule) == (0, "scale_to_zero")


def test_decide__idle_shorter_than_period__stays_up():
    p = policy(**S2Z)
    obs = {"queue_length": Obs(0), "custom:gateway_pending": Obs(0)}
    d = run(p, obs, 2, history=_idle_history(585))
    assert d.desired_replicas == 1  # down to min, not to zero


def test_decide__no_load_history__timer_alone_never_scales_to_zero():
    p = policy(**S2Z)
    obs = {"queue_length": Obs(0), "custom:gateway_pending": Obs(0)}
    d = run(p, obs, 1, history=History(recommendations=((NOW - 3600, 1),)))
    assert d.desired_replicas == 1


def test_decide__gap_in_load_history__idle_clock_restarts_after_it():
    p = policy(**S2Z)
    samples = tuple(s for s in _idle_history(900).load_samples if not NOW - 400 < s[0] < NOW - 200)
    obs = {"queue_length": Obs(0), "custom:gateway_pending": Obs(0)}
    d = run(p, obs, 1, history=History(load_samples=samples))
    assert d.desired_replicas == 1


def test_decide__load_seen_within_idle_period__stays_up():
    p = policy(**S2Z)
    samples = (*_idle_history(900).load_samples, (NOW - 100, 1.0))
    obs = {"queue_length": Obs(0), "custom:gateway_pending": Obs(0)}
    d = run(p, obs, 1, history=History(load_samples=tuple(sorted(samples))))
    assert d.desired_replicas == 1


def test_decide__load_signal_missing__never_scales_to_zero():
    p = policy(**S2Z)
    obs = {"queue_length": Obs(0), "custom:gateway_pending": Obs(None, status="missing")}
    d = run(p, obs, 1, history=_idle_history(900))
    assert d.desired_replicas == 1
    assert d.load is None


def test_decide__at_zero_with_load__activates():
    p = policy(**S2Z)
    obs = {
        "queue_length": Obs(12),
        "custom:gateway_pending": Obs(12),
    }
    d = run(p, obs, 0)
    assert (d.desired_replicas, d.rule) == (3, "activation")  # ceil(12 / 5)
    assert "reached the activation threshold of 1" in d.reason


def test_decide__at_zero_with_load_but_no_engine_metrics__activates_one():
    p = policy(**S2Z)
    obs = {"queue_length": Obs(None, status="missing"), "custom:gateway_pending": Obs(2)}
    d = run(p, obs, 0)
    assert (d.desired_replicas, d.rule) == (1, "activation")


def test_decide__at_zero_below_activation_threshold__stays_at_zero():
    p = policy(**S2Z, activation_threshold=3)
    obs = {"queue_length": Obs(None, status="missing"), "custom:gateway_pending": Obs(2)}
    d = run(p, obs, 0)
    assert (d.desired_replicas, d.rule) == (0, "scale_to_zero")


def test_decide__at_zero_and_load_unknown__holds_at_zero_with_event():
    p = policy(**S2Z)
    d = run(p, {}, 0)
    assert (d.desired_replicas, d.rule) == (0, "hold:missing_metrics")
    assert "metrics_missing" in kinds(d)


# --------------------------------------------------------------------------- cron minimum

BUSINESS_HOURS = CronMinimum(8 * 3600, 18 * 3600, 5)


def test_decide__cron_minimum_active__raises_floor():
    p = policy(cron_minimums=(BUSINESS_HOURS,))
    d = run(p, {"queue_length": Obs(0)}, 2)  # 13:46 UTC
    assert (d.desired_replicas, d.rule) == (5, "cron_minimum")
    assert "08:00-18:00 UTC" in d.reason


def test_decide__cron_minimum_inactive__ignored():
    p = policy(cron_minimums=(BUSINESS_HOURS,), scale_down_stabilization_s=0)
    d = run(p, {"queue_length": Obs(0)}, 2, now=NOW + 6 * 3600)  # 19:46 UTC
    assert d.desired_replicas == 1


def test_decide__cron_minimum_past_midnight__wraps():
    p = policy(cron_minimums=(CronMinimum(22 * 3600, 6 * 3600, 4),))
    night = NOW - 13 * 3600 - 46 * 60  # 00:00:40 UTC
    assert run(p, {"queue_length": Obs(0)}, 1, now=night).desired_replicas == 4
    assert run(p, {"queue_length": Obs(0)}, 1, now=NOW).desired_replicas == 1


def test_decide__cron_minimum_above_max__max_wins_with_event():
    p = policy(max_replicas=4, cron_minimums=(BUSINESS_HOURS,))
    d = run(p, {"queue_length": Obs(0)}, 2)
    assert d.desired_replicas == 4
    assert "cron_minimum_capped" in kinds(d)


def test_decide__cron_minimum_active__prevents_scale_to_zero():
    p = policy(cron_minimums=(BUSINESS_HOURS,), **S2Z)
    obs = {"queue_length": Obs(0), "custom:gateway_pending": Obs(0)}
    d = run(p, obs, 5, history=_idle_history(900))
    assert d.desired_replicas == 5


# --------------------------------------------------------------------------- SLO boost

BOOST = SloBoost(enabled=True, fast_burn_threshold=14.4, step_percent=25)


def test_decide__fast_burn_with_fine_utilisation__boosts():
    p = policy(KV, slo_boost=BOOST)
    d = run(p, {"kv_cache_usage": Obs(0.8), "slo_burn_rate": Obs(20.0)}, 4)
    assert (d.desired_replicas, d.rule) == (5, "slo_boost")
    assert "SLO burn rate 20" in d.reason


def test_decide__burn_below_threshold__no_boost():
    p = policy(KV, slo_boost=BOOST)
    d = run(p, {"kv_cache_usage": Obs(0.8), "slo_burn_rate": Obs(6.0)}, 4)
    assert (d.desired_replicas, d.rule) == (4, "target:kv_cache_usage")


def test_decide__fast_burn_while_replicas_starting__waits_for_previous_step():
    p = policy(KV, slo_boost=BOOST)
    d = run(p, {"kv_cache_usage": Obs(0.8), "slo_burn_rate": Obs(20.0)}, 5, starting=(NOW - 20,))
    assert d.desired_replicas == 5
    assert "no further boost" in d.reason


def test_decide__fast_burn_at_max__alert_event():
    p = policy(KV, slo_boost=BOOST, max_replicas=4)
    d = run(p, {"kv_cache_usage": Obs(0.8), "slo_burn_rate": Obs(20.0)}, 4)
    assert d.desired_replicas == 4
    assert "at_max_while_slo_burning" in kinds(d)


# --------------------------------------------------------------------------- drift


def test_decide__scaled_by_hand_and_load_fits__adopts_with_drift_rule():
    d = run(policy(), {"queue_length": Obs(30)}, 3, observed_spec=6, last_applied=3)
    assert (d.current_replicas, d.desired_replicas, d.changed, d.rule) == (6, 6, False, "drift")
    assert kinds(d) == ["drift_detected"]
    assert d.reason.startswith("replicas were changed outside the control plane")


def test_decide__scaled_by_hand_and_load_low__decides_from_observed():
    p = policy(scale_down_stabilization_s=0)
    d = run(p, {"queue_length": Obs(5)}, 3, observed_spec=8, last_applied=3)
    assert (d.current_replicas, d.desired_replicas, d.changed) == (8, 1, True)
    assert d.rule == "target:queue_length"
    assert "drift_detected" in kinds(d)


def test_decide__observed_matches_last_applied__no_drift():
    d = run(policy(), {"queue_length": Obs(15)}, 3, observed_spec=3, last_applied=3)
    assert kinds(d) == []


# --------------------------------------------------------------------------- plumbing


def test_history_advance__appends_outputs_and_drops_old_entries():
    p = policy()
    old = History(
        recommendations=((NOW - 4000, 9), (NOW - 10, 3)),
        load_samples=((NOW - 4000, 0.0),),
        signal_samples={"queue_length": ((NOW - 4000, 1.0), (NOW - 1, 2.0))},
    )
    d = run(p, {"queue_length": Obs(42), "running_requests": Obs(3)}, 3, history=old)
    new = old.advance(d, NOW, applied=True, keep_s=p.history_horizon_s)
    assert new.recommendations == ((NOW - 10, 3), (NOW, 9))
    assert new.scale_events == ((NOW, 3, 9),)
    assert new.load_samples == ((NOW, 45.0),)
    assert new.signal_samples == {"queue_length": ((NOW - 1, 2.0),)}
    dry = old.advance(d, NOW, applied=False, keep_s=p.history_horizon_s)
    assert dry.scale_events == ()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"min_replicas": 3, "max_replicas": 2}, "max_replicas"),
        ({"targets": ()}, "at least one target"),
        ({"mode": "yolo"}, "unknown mode"),
        ({"scale_up_select": "fastest"}, "scale_up_select"),
        ({"scale_down_policies": ()}, "at least one policy"),
        ({"cron_minimums": ((3600, 3600, 2),)}, "distinct"),
        ({"scale_to_zero_enabled": True, "activation_threshold": 0}, "activation_threshold"),
    ],
)
def test_policy__invalid_settings__rejected(kwargs, message):
    base = {"min_replicas": 1, "max_replicas": 5, "targets": (QUEUE,)}
    with pytest.raises(ValueError, match=message):
        Policy(**{**base, **kwargs})


def test_target__non_positive_value__rejected():
    with pytest.raises(ValueError, match="positive"):
        Target("queue_length", 0)
