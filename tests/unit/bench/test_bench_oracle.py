"""The oracle's demand, needs, look-ahead schedule, factor search and capacity measurement."""

from __future__ import annotations

import pytest

from apps.fleetsim.profiles import L4
from apps.fleetsim.workload import Request, steady
from bench.autoscale import oracle
from bench.autoscale.traces import LENGTHS


def test_demand_tokens__windows__prompt_plus_output_per_second() -> None:
    requests = [Request(0.5, 100, 10), Request(1.5, 200, 20), Request(20.0, 50, 50)]
    demand = oracle.demand_tokens(requests, 30.0, 10.0, 10.0)
    assert demand == [33.0, 0.0, 10.0]


def test_demand_tokens__window_past_the_end__moved_back_full_length() -> None:
    requests = [Request(0.5, 100, 10), Request(25.0, 90, 10)]
    # The window starting at 20 would reach 50 but the trace ends at 30: it covers the
    # trace's last 30 s instead, 210 tokens / 30 s.
    assert oracle.demand_tokens(requests, 30.0, 10.0, 30.0)[2] == 7.0


def test_needs__demand_over_capacity_times_factor__rounded_up_with_floor() -> None:
    assert oracle.needs([900.0, 1800.0, 100.0, 0.0], 900.0, 1.0) == [1, 2, 1, 1]
    assert oracle.needs([900.0, 1800.0, 100.0, 0.0], 900.0, 0.5) == [2, 4, 1, 1]


def test_schedule__spike__provisioned_a_cold_start_ahead_and_dropped_after() -> None:
    need = [1, 1, 1, 1, 1, 5, 1, 1, 1, 1]
    # Cold start 30 s + one 15 s step: look 3 steps ahead.
    assert oracle.schedule(need, 15.0, 30.0) == [1, 1, 5, 5, 5, 5, 1, 1, 1, 1]
    # A 15 s look-back keeps the spike's count one step longer.
    assert oracle.schedule(need, 15.0, 30.0, lookback_s=15.0)[6] == 5


def test_reactive_schedule__only_windows_already_ended__from_the_start_count() -> None:
    need = [1, 5, 2, 2, 9, 1]
    # 30 s windows every 15 s: window j ends two steps after it starts; a 15 s look-back
    # keeps the previous ended window's need too. Until the first window ends, the start.
    counts = oracle.reactive_schedule(need, 15.0, 30.0, 15.0, initial=3)
    assert counts == [3, 3, 1, 5, 5, 2]
    # The spike of window 4 ends after the trace: a policy that only reacts never sees it.
    assert oracle.reactive_schedule([*need[:4], 40, 1], 15.0, 30.0, 15.0, initial=3) == counts


def test_reactive_schedule__against_the_look_ahead__after_the_window_not_before() -> None:
    need = [1, 1, 1, 1, 6, 1, 1, 1, 1, 1]
    # The oracle orders the spike's count a cold start and a step ahead of it; the
    # reactive ideal only once its 60 s window has ended, four steps after it began.
    assert oracle.schedule(need, 15.0, 30.0) == [1, 6, 6, 6, 6, 1, 1, 1, 1, 1]
    assert oracle.reactive_schedule(need, 15.0, 60.0, 0.0, initial=1) == [
        1, 1, 1, 1, 1, 1, 1, 1, 6, 1,
    ]  # fmt: skip


def test_search_factor__monotone_predicate__largest_passing_factor() -> None:
    found = oracle.search_factor(lambda f: f <= 1.3, iterations=10)
    assert 1.29 <= found <= 1.3


def test_search_factor__nothing_passes_at_low_end__scales_range_down() -> None:
    found = oracle.search_factor(lambda f: f <= 0.3, iterations=10)
    assert 0.28 <= found <= 0.3


def test_measure_capacity__tighter_slo__lower_capacity() -> None:
    requests = steady(2.0, 600.0, seed=3, lengths=LENGTHS)
    loose = oracle.measure_capacity(requests, L4, 4.0, sample=400, iterations=7)
    tight = oracle.measure_capacity(requests, L4, 2.0, sample=400, iterations=7)
    assert 0 < tight.requests_per_s < loose.requests_per_s
    mean_tokens = sum(r.prompt_tokens + r.output_tokens for r in requests) / len(requests)
    assert loose.tokens_per_s / loose.requests_per_s == pytest.approx(mean_tokens, rel=0.15)
    assert loose.concurrency > 0
