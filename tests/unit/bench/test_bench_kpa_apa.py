"""Knative KPA and AIBrix APA baselines against hand-computed steps of their algorithms."""

from __future__ import annotations

from bench.autoscale.policies import (
    Apa,
    ApaSpec,
    Kpa,
    KpaSpec,
    KpaState,
    apa_cooldown,
    apa_target_replicas,
    kpa_scale,
)
from tests.unit.bench.helpers import state, view_of

SPEC = KpaSpec(target=10.0)


def test_kpa_spec__defaults__panic_window_is_ten_percent_of_stable() -> None:
    assert SPEC.stable_window_s == 60.0
    assert SPEC.panic_window_s == 6.0


def test_kpa_scale__stable_mode__ceil_of_concurrency_over_target() -> None:
    # 95 in flight against 10 each: ceil(9.5) = 10; panic 90 / 10 = 9 pods is 1.8x the
    # 5 ready, under the 2.0 threshold.
    s = KpaState()
    assert kpa_scale(SPEC, s, now=0.0, ready=5, stable_value=95.0, panic_value=90.0) == 10
    assert s.panic_time is None


def test_kpa_scale__scale_down__at_most_halves_ready_pods() -> None:
    # ceil(10 / 10) = 1, but max scale-down rate 2 keeps floor(10 / 2) = 5.
    s = KpaState()
    assert kpa_scale(SPEC, s, now=0.0, ready=10, stable_value=10.0, panic_value=10.0) == 5


def test_kpa_scale__panic_window_over_200_percent__scales_to_panic_and_never_down() -> None:
    s = KpaState()
    # Panic: ceil(50 / 10) = 5 pods is 2.5x the 2 ready; stable asks for 2; 5 wins.
    assert kpa_scale(SPEC, s, now=0.0, ready=2, stable_value=20.0, panic_value=50.0) == 5
    assert s.panic_time == 0.0
    # The burst is over (1 pod in the panic window) but panic mode never scales down.
    assert kpa_scale(SPEC, s, now=30.0, ready=5, stable_value=20.0, panic_value=10.0) == 5
    assert kpa_scale(SPEC, s, now=60.0, ready=5, stable_value=20.0, panic_value=10.0) == 5
    # More than a stable window after the condition last held: back to stable mode,
    # ceil(20 / 10) = 2, which the scale-down rate allows (floor(5 / 2) = 2).
    assert kpa_scale(SPEC, s, now=61.0, ready=5, stable_value=20.0, panic_value=10.0) == 2
    assert s.panic_time is None


def test_kpa_controller__more_than_one_ready_at_start__holds_count_in_panic() -> None:
    kpa = Kpa(SPEC)
    rows = [{"spec": 6, "ready": 6, "concurrency": 10.0}] * 20
    # Stable 10 would ask for 1 (3 with the rate limit), but a new autoscaler starts in
    # panic mode with the ready count and keeps it.
    assert kpa.decide(view_of(rows, 15.0), state(15.0, 6)) == 6


def test_kpa_controller__windows__stable_and_panic_means_of_the_samples() -> None:
    kpa = Kpa(SPEC)
    rows = [{"spec": 1, "ready": 1, "concurrency": 10.0}] * 54 + [
        {"spec": 1, "ready": 1, "concurrency": 40.0}
    ] * 6
    # Panic mean 40 -> 4 pods, 4x the 1 ready: panic; stable mean (54*10 + 6*40)/60 = 13.
    assert kpa.decide(view_of(rows, 60.0), state(60.0, 1)) == 4


def test_apa_target__above_up_tolerance__proportional() -> None:
    # 0.8 against 0.5: ratio 1.6 > 1.1, ceil(4 * 1.6) = 7 (cap ceil(2 * 4) = 8).
    assert apa_target_replicas(4, 0.8, ApaSpec()) == 7


def test_apa_target__far_above__capped_at_max_scale_up_rate() -> None:
    assert apa_target_replicas(4, 2.0, ApaSpec()) == 8


def test_apa_target__inside_fluctuation_band__keeps_current() -> None:
    assert apa_target_replicas(4, 0.54, ApaSpec()) == 4  # 1.08 <= 1.1
    assert apa_target_replicas(4, 0.42, ApaSpec()) == 4  # 0.84 >= 1 - 0.2


def test_apa_target__below_down_tolerance__proportional_at_most_halving() -> None:
    assert apa_target_replicas(4, 0.2, ApaSpec()) == 2  # ceil(4 * 0.4)
    assert apa_target_replicas(10, 0.05, ApaSpec()) == 5  # ceil(1) < floor(10 / 2)


def test_apa_cooldown__documented__highest_recommendation_in_window_holds() -> None:
    spec = ApaSpec()
    assert apa_cooldown([(0.0, 10)], 100.0, 5, 10, spec) == 10
    assert apa_cooldown([(0.0, 10)], 301.0, 5, 10, spec) == 5


def test_apa_cooldown__controller__lowest_recommendation_in_window_wins() -> None:
    spec = ApaSpec(cooldown="controller")
    # AIBrix's stabilizeRecommendation picks the minimum on the way down: 3, not 8.
    assert apa_cooldown([(0.0, 3)], 100.0, 8, 10, spec) == 3


def test_apa_controller__kv_mean_over_its_window__drives_the_count() -> None:
    apa = Apa()
    rows = [{"spec": 4, "ready": 4, "kv_avg": 0.5}] * 30 + [
        {"spec": 4, "ready": 4, "kv_avg": 0.9}
    ] * 30
    # Mean over the last 30 s is 0.9: ratio 1.8, ceil(7.2) = 8.
    assert apa.decide(view_of(rows, 60.0), state(60.0, 4)) == 8
    # 30 s earlier the window held 0.5 only: inside the band.
    assert Apa().decide(view_of(rows[:30], 30.0), state(30.0, 4)) == 4
