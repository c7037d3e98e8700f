"""The simulator's own capacity at an SLO (apps.fleetsim.capacity), which the load test's
stress mode is measured against."""

from __future__ import annotations

import pytest

from apps.fleetsim.capacity import StepOutcome, capacity_at_slo, step_outcome, step_requests
from apps.fleetsim.profiles import get_profile
from apps.fleetsim.workload import Request, preset_lengths

A100 = get_profile("A100-80GB")
STEP_S = 40.0


def _capacity(**changes: float) -> float:
    values = {"slo_ttft_s": 2.0, "slo_itl_s": 0.1, **changes}
    return capacity_at_slo(
        A100,
        "chat",
        values["slo_ttft_s"],
        values["slo_itl_s"],
        0.9,
        step_s=STEP_S,
        seeds=(0,),
        iterations=8,
        max_prompt_tokens=1000,
    )


def _outcome(rate: float) -> StepOutcome:
    requests = step_requests(rate, STEP_S, preset_lengths("chat"), seed=0, max_prompt_tokens=1000)
    return step_outcome(A100, requests, rate, 0.9)


def test_capacity_at_slo__its_own_step__met_at_capacity_broken_well_above() -> None:
    capacity = _capacity()
    assert capacity > 0
    assert _outcome(capacity).meets(2.0, 0.1, 0.01)
    above = _outcome(1.5 * capacity)
    assert not above.meets(2.0, 0.1, 0.01)
    assert above.itl_q_s is not None
    assert above.itl_q_s > 0.1


def test_capacity_at_slo__looser_itl_slo__more_capacity() -> None:
    assert _capacity(slo_itl_s=0.2) > _capacity(slo_itl_s=0.1)


def test_capacity_at_slo__slo_below_one_decode_step__zero() -> None:
    assert _capacity(slo_itl_s=A100.step_base_s / 2) == 0.0


def test_step_outcome__too_long_for_the_replica__counted_as_errors() -> None:
    limit = A100.max_request_tokens
    requests = step_requests(1.0, 20.0, preset_lengths("chat"), seed=3)
    too_long = [Request(r.arrival_s, limit, r.output_tokens) for r in requests]
    outcome = step_outcome(A100, too_long, 1.0, 0.9)
    assert outcome.errors == outcome.requests > 0
    assert not outcome.meets(2.0, 0.1, 0.01)


def test_capacity_at_slo__bad_arguments__value_error() -> None:
    with pytest.raises(ValueError, match="quantile"):
        capacity_at_slo(A100, "chat", 2.0, 0.1, 1.0)
    with pytest.raises(ValueError, match="unknown workload preset"):
        capacity_at_slo(A100, "video", 2.0, 0.1, 0.9)
