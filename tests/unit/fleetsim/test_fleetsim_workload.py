from __future__ import annotations

import itertools
import statistics
from collections.abc import Callable
from pathlib import Path

import pytest

from apps.fleetsim.workload import (
    Request,
    TokenLengths,
    burst,
    demand_series,
    diurnal,
    rate_at,
    read_trace_csv,
    repeat_requests,
    steady,
    step,
)

TRACE_SAMPLE = """TIMESTAMP,ContextTokens,GeneratedTokens
2023-11-16 18:15:46.6805900,374,44
2023-11-16 18:15:50.9951690,396,109
2023-11-16 18:15:51.2224670,879,55
2023-11-16 18:16:46.6805901,0,16
"""


@pytest.fixture
def trace_file(tmp_path: Path) -> Path:
    path = tmp_path / "trace.csv"
    path.write_text(TRACE_SAMPLE, encoding="utf-8")
    return path


def test_read_trace_csv__seven_fraction_digits__parsed_relative_to_first_row(
    trace_file: Path,
) -> None:
    requests = read_trace_csv(trace_file)

    assert [r.arrival_s for r in requests] == pytest.approx([0.0, 4.314579, 4.541877, 60.0])
    assert [(r.prompt_tokens, r.output_tokens) for r in requests[:3]] == [
        (374, 44),
        (396, 109),
        (879, 55),
    ]


def test_read_trace_csv__zero_token_row__clamped_to_one_token(trace_file: Path) -> None:
    assert read_trace_csv(trace_file)[-1].prompt_tokens == 1


def test_read_trace_csv__time_scale_two__arrivals_twice_as_fast(trace_file: Path) -> None:
    normal = read_trace_csv(trace_file)
    fast = read_trace_csv(trace_file, time_scale=2.0)

    assert [r.arrival_s for r in fast] == pytest.approx([r.arrival_s / 2 for r in normal])


def test_read_trace_csv__limit__keeps_first_rows(trace_file: Path) -> None:
    assert len(read_trace_csv(trace_file, limit=2)) == 2


def test_read_trace_csv__missing_column__raises_value_error(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("TIMESTAMP,ContextTokens\n2023-11-16 18:15:46.6805900,374\n")

    with pytest.raises(ValueError, match="GeneratedTokens"):
        read_trace_csv(path)


def test_read_trace_csv__bad_time_scale__raises_value_error(trace_file: Path) -> None:
    with pytest.raises(ValueError, match="time_scale"):
        read_trace_csv(trace_file, time_scale=0)


def test_read_trace_csv__azure_conversation_trace__matches_published_shape(
    azure_trace: Path,
) -> None:
    requests = read_trace_csv(azure_trace)

    assert len(requests) == 19_366
    assert 3400 < requests[-1].arrival_s < 3600
    assert statistics.fmean(r.prompt_tokens for r in requests) == pytest.approx(1155, abs=1)
    assert statistics.fmean(r.output_tokens for r in requests) == pytest.approx(211, abs=1)
    assert all(a.arrival_s <= b.arrival_s for a, b in itertools.pairwise(requests))


@pytest.mark.parametrize(
    "generate",
    [
        lambda seed: steady(2.0, 600.0, seed=seed),
        lambda seed: diurnal(2.0, 600.0, period_s=300.0, seed=seed),
        lambda seed: step(1.0, 4.0, 600.0, seed=seed),
        lambda seed: burst(1.0, 600.0, mean_burst_interval_s=60.0, seed=seed),
    ],
    ids=["steady", "diurnal", "step", "burst"],
)
def test_generators__same_seed__identical_sorted_output(
    generate: Callable[[int], list[Request]],
) -> None:
    first, again, other = generate(11), generate(11), generate(12)

    assert first == again
    assert first != other
    assert all(a.arrival_s <= b.arrival_s for a, b in itertools.pairwise(first))
    assert all(0.0 <= r.arrival_s < 600.0 for r in first)


def test_steady__long_run__rate_and_token_means_close_to_parameters() -> None:
    requests = steady(5.0, 4000.0, seed=3, lengths=TokenLengths(prompt_mean=800, output_mean=150))

    assert len(requests) / 4000.0 == pytest.approx(5.0, rel=0.05)
    # Clipping at the maxima trims the log-normal tail a little.
    assert statistics.fmean(r.prompt_tokens for r in requests) == pytest.approx(800, rel=0.08)
    assert statistics.fmean(r.output_tokens for r in requests) == pytest.approx(150, rel=0.08)


def test_step__plateau__high_rate_only_inside_step_window() -> None:
    requests = step(1.0, 10.0, 900.0, step_start_s=300.0, step_end_s=600.0, seed=5)

    assert rate_at(requests, 300.0, window_s=300.0) == pytest.approx(1.0, rel=0.3)
    assert rate_at(requests, 600.0, window_s=300.0) == pytest.approx(10.0, rel=0.1)
    assert rate_at(requests, 900.0, window_s=300.0) == pytest.approx(1.0, rel=0.3)


def test_diurnal__half_period_apart__peak_exceeds_trough() -> None:
    requests = diurnal(4.0, 3600.0, amplitude=0.8, period_s=3600.0, seed=9)

    # sin peaks at a quarter period and bottoms out at three quarters.
    peak = rate_at(requests, 1200.0, window_s=600.0)
    trough = rate_at(requests, 3000.0, window_s=600.0)
    assert peak > 2.5 * trough


def test_burst__spikes__peak_window_well_above_base_rate() -> None:
    requests = burst(1.0, 3600.0, burst_multiplier=8.0, mean_burst_interval_s=200.0, seed=2)

    peak = max(rate for _, rate, _ in demand_series(requests, step_s=10.0))
    assert peak > 4.0
    assert len(requests) / 3600.0 < 3.0


def test_demand_series__steady_load__token_rate_matches_request_sizes() -> None:
    requests = [Request(float(t), 100, 10) for t in range(0, 100)]

    series = demand_series(requests, step_s=10.0)

    assert series[0] == (10.0, 1.0, 110.0)


def test_repeat_requests__two_rounds__second_shifted_by_span_plus_gap() -> None:
    base = [Request(5.0, 10, 1), Request(15.0, 20, 2)]

    repeated = list(repeat_requests(base, times=2, gap_s=5.0))

    assert [r.arrival_s for r in repeated] == [0.0, 10.0, 15.0, 25.0]


def test_request__zero_output_tokens__rejected() -> None:
    with pytest.raises(ValueError, match="at least one"):
        Request(0.0, 10, 0)
