"""Kubernetes HPA and KEDA baselines against hand-computed steps of the published algorithm."""

from __future__ import annotations

from bench.autoscale.hpa_reference import (
    HpaBehavior,
    HpaRule,
    hpa_apply_rate_limits,
    hpa_external_average_replicas,
    hpa_pods_metric_replicas,
    hpa_stabilize,
)
from bench.autoscale.policies import Hpa, keda
from tests.unit.bench.helpers import state, view_of

DEFAULT = HpaBehavior()


def test_hpa_pods_metric__ratio_above_tolerance__ceil_of_ratio_times_pods() -> None:
    # 4 pods averaging 7.5 against 5: ratio 1.5, ceil(1.5 * 4) = 6.
    assert hpa_pods_metric_replicas(4, 30.0, 4, 5.0) == 6


def test_hpa_pods_metric__ratio_within_tolerance__keeps_current() -> None:
    # 10 pods averaging 5.4 against 5: ratio 1.08, |1 - 1.08| <= 0.1.
    assert hpa_pods_metric_replicas(10, 54.0, 10, 5.0) == 10


def test_hpa_pods_metric__ratio_just_outside_tolerance__scales() -> None:
    # Ratio 1.11: ceil(1.11 * 10) = 12.
    assert hpa_pods_metric_replicas(10, 55.5, 10, 5.0) == 12


def test_hpa_pods_metric__scale_down__ceil_of_ratio_times_pods() -> None:
    # 8 pods averaging 2 against 5: ratio 0.4, ceil(3.2) = 4.
    assert hpa_pods_metric_replicas(8, 16.0, 8, 5.0) == 4


def test_hpa_pods_metric__unready_pods_on_scale_up__count_as_zero() -> None:
    # 2 ready average 10 (ratio 2); with 2 unready at 0 the ratio is 20 / (4 * 5) = 1.0:
    # within tolerance, so the count holds instead of going to ceil(2 * 2) + 2.
    assert hpa_pods_metric_replicas(4, 20.0, 2, 5.0, unready=2) == 4
    # 2 ready average 20 (ratio 4); with the unready ones 40 / 20 = 2.0: ceil(2 * 4) = 8.
    assert hpa_pods_metric_replicas(4, 40.0, 2, 5.0, unready=2) == 8


def test_hpa_pods_metric__missing_pods_on_scale_down__count_at_target() -> None:
    # 3 pods average 2 (ratio 0.4); one missing counted at 5: 11 / (4 * 5) = 0.55,
    # ceil(0.55 * 4) = 3 rather than ceil(0.4 * 3) = 2.
    assert hpa_pods_metric_replicas(4, 6.0, 3, 5.0, missing=1) == 3


def test_hpa_pods_metric__no_pod_reported__no_proposal() -> None:
    assert hpa_pods_metric_replicas(3, 0.0, 0, 5.0, unready=3) is None


def test_hpa_external_average__outside_tolerance__ceil_of_total_over_target() -> None:
    # 37 waiting over 4 pods against 5 each: ratio 1.85, ceil(37 / 5) = 8.
    assert hpa_external_average_replicas(4, 37.0, 5.0) == 8
    # Starting pods are part of status.replicas: 37 / (8 * 5) = 0.925, within tolerance.
    assert hpa_external_average_replicas(8, 37.0, 5.0) == 8


def test_hpa_external_average__within_tolerance__keeps_current() -> None:
    assert hpa_external_average_replicas(4, 21.0, 5.0) == 4


def test_hpa_stabilize__higher_recommendation_in_down_window__holds_it() -> None:
    recs = [(0.0, 10), (100.0, 6)]
    # At 350 s the window (50, 350] holds 6: 10 current -> 6, not 4.
    assert hpa_stabilize(recs, 350.0, 4, 10, DEFAULT) == 6
    # At 450 s it has left the window: straight to 4.
    assert hpa_stabilize(recs, 450.0, 4, 10, DEFAULT) == 4


def test_hpa_stabilize__scale_up__not_delayed_by_default() -> None:
    assert hpa_stabilize([(0.0, 3)], 10.0, 9, 3, DEFAULT) == 9


def test_hpa_stabilize__up_window__lowest_recommendation_wins() -> None:
    behavior = HpaBehavior(up_stabilization_s=60.0)
    assert hpa_stabilize([(0.0, 5), (30.0, 7)], 45.0, 9, 3, behavior) == 5


def test_hpa_rate_limit__scale_up__max_of_double_and_four_pods() -> None:
    # From 3: 100 % gives 6, 4 pods gives 7, select max: 7.
    assert hpa_apply_rate_limits(3, 20, 1, 100, [], [], DEFAULT, 100.0) == 7
    # From 10: 100 % gives 20, 4 pods gives 14: 20.
    assert hpa_apply_rate_limits(10, 50, 1, 100, [], [], DEFAULT, 100.0) == 20


def test_hpa_rate_limit__scale_up_in_same_period__counts_earlier_additions() -> None:
    # 4 were added 5 s ago: the period started at 3, so the limit is still 7.
    assert hpa_apply_rate_limits(7, 20, 1, 100, [(95.0, 4)], [], DEFAULT, 100.0) == 7
    # 16 s later that event is outside the 15 s period: from 7, max(14, 11) = 14.
    assert hpa_apply_rate_limits(7, 20, 1, 100, [(95.0, 4)], [], DEFAULT, 111.0) == 14


def test_hpa_rate_limit__scale_down__100_percent_then_min_replicas() -> None:
    assert hpa_apply_rate_limits(10, 0, 1, 100, [], [], DEFAULT, 0.0) == 1
    one_per_minute = HpaBehavior(down_rules=(HpaRule("pods", 1, 60),))
    assert hpa_apply_rate_limits(10, 2, 1, 100, [], [], one_per_minute, 0.0) == 9


def test_hpa_controller__idle_queue__holds_for_the_scale_down_window_then_min() -> None:
    hpa = Hpa("hpa-waiting", metric="waiting", target=5.0)
    rows = [{"spec": 4, "ready": 4, "waiting": 0.0}] * 400
    # The first sync seeds the window with the current count: nothing goes for 300 s.
    assert hpa.decide(view_of(rows, 15.0), state(15.0, 4)) == 4
    assert hpa.decide(view_of(rows, 300.0), state(300.0, 4)) == 4
    # Past the window every recommendation is 0; 100 % per 15 s allows 0, the floor is 1.
    assert hpa.decide(view_of(rows, 330.0), state(330.0, 4)) == 1


def test_hpa_controller__gpu_utilisation_percent__proportional_scale_up() -> None:
    hpa = Hpa("hpa-gpu", metric="util_avg", target=80.0)
    rows = [{"spec": 4, "ready": 4, "util_avg": 1.0}] * 20
    # 100 % against 80 %: ratio 1.25, ceil(1.25 * 4) = 5.
    assert hpa.decide(view_of(rows, 15.0), state(15.0, 4)) == 5


def test_keda__waiting_total_with_starting_pods__average_over_all_pods() -> None:
    controller = keda(threshold=5.0)
    rows = [{"spec": 3, "ready": 2, "waiting": 23.0}] * 20
    # External AverageValue: 23 / (3 * 5) = 1.53 outside tolerance, ceil(23 / 5) = 5.
    assert controller.decide(view_of(rows, 15.0), state(15.0, 3, 2, starting=(5.0,))) == 5


def test_keda__cached_metrics__value_refreshed_once_per_polling_interval() -> None:
    controller = keda(threshold=5.0, polling_interval_s=30.0, use_cached_metrics=True)
    low = [{"spec": 2, "ready": 2, "waiting": 10.0}] * 20
    high = low + [{"spec": 2, "ready": 2, "waiting": 40.0}] * 40
    assert controller.decide(view_of(low, 15.0), state(15.0, 2)) == 2
    # 15 s later the cache still holds 10 waiting although 40 are visible.
    assert controller.decide(view_of(high, 30.0), state(30.0, 2)) == 2
    # 30 s after the first poll it reads 40: ceil(40 / 5) = 8, rate-limited to 2 + 4 = 6.
    assert controller.decide(view_of(high, 45.0), state(45.0, 2)) == 6
