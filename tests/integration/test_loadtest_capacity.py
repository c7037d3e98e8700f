"""The load test's stress mode measures a simulated replica's capacity at the SLO within
10 % of what the replica model itself knows (apps.fleetsim.capacity), for two GPU profiles.

The replica runs in a child process (its own interpreter) behind its real HTTP server, in
fast mode: ``SPEED`` simulated seconds per wall second. Everything the client sees in wall
seconds is then simulated time divided by the speed, so the plan's SLOs are the simulated
SLOs divided by it and the measured rate is divided back. The step is as long in simulated
time as the one :func:`capacity_at_slo` replays, and the capacity there is the median over
five Poisson draws; the client draws its own (seed 0).

Sizing: one step offers ~530 requests (fewer makes one Poisson draw of lengths swing
the capacity by more than 10 %), at wall rates of 20-30 requests/s so that client and
server stay cheap on a shared 2-core machine; the stress starts at 80 % of the expected
capacity and bisects twice, 5-6 steps, about three minutes per profile.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from apps.fleetsim.capacity import capacity_at_slo, served_replicas
from apps.golive.loadtest import LoadTestPlan, WorkloadSpec, run_load_test

pytestmark = pytest.mark.integration

MODEL = "llama-3.1-8b-capacity"
SLO_TTFT_S = 2.0
QUANTILE = 0.9
MAX_PROMPT_TOKENS = 1000


@dataclass(frozen=True)
class Case:
    profile: str
    slo_itl_s: float
    step_sim_s: float
    speed: float


CASES = [
    # A100: inter-token latency binds (it climbs steeply as the batch grows).
    Case("A100-80GB", slo_itl_s=0.1, step_sim_s=60.0, speed=3.0),
    # H100: a tighter ITL SLO, reached at ~25 requests/s; served in real time.
    Case("H100-80GB", slo_itl_s=0.05, step_sim_s=20.0, speed=1.0),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.profile)
def test_stress__simulated_replica__capacity_within_10_percent_of_the_model(case: Case) -> None:
    known = capacity_at_slo(
        case.profile,
        "chat",
        SLO_TTFT_S,
        case.slo_itl_s,
        QUANTILE,
        step_s=case.step_sim_s,
        seeds=(0, 1, 2, 3, 4),
        max_prompt_tokens=MAX_PROMPT_TOKENS,
    )
    k = case.speed
    with served_replicas(case.profile, model=MODEL, speed=k, tick_s=0.01) as urls:
        plan = LoadTestPlan(
            base_url=urls[0],
            model=MODEL,
            mode="stress",
            rate_rps=0.8 * known * k,
            rate_factor=1.15,
            refine_steps=2,
            duration_s=case.step_sim_s / k,
            max_rate_rps=3 * known * k,
            max_total_s=240.0,
            max_concurrency=1024,
            slo_ttft_s=SLO_TTFT_S / k,
            slo_itl_s=case.slo_itl_s / k,
            slo_quantile=QUANTILE,
            max_error_rate=0.01,
            workload=WorkloadSpec(preset="chat", max_prompt_tokens=MAX_PROMPT_TOKENS),
            request_timeout_s=60.0,
        )
        result = run_load_test(plan)

    steps = [
        f"{s.phase} {s.rate_rps / k:.2f}/s: {'met' if s.slo_met else s.slo_reasons}"
        for s in result.steps
    ]
    assert result.stopped_reason == "slo_broken", (result.stopped_reason, steps)
    # Requests go unsent only once the server is past its capacity (its queue holds them).
    assert all(s.client_limited == 0 for s in result.steps if s.slo_met), steps
    assert result.capacity_rps_per_replica is not None, steps
    measured = result.capacity_rps_per_replica / k
    print(
        f"{case.profile}: measured {measured:.3f} req/s per replica, model {known:.3f} "
        f"({measured / known - 1:+.1%}); steps: {steps}"
    )
    assert abs(measured - known) / known <= 0.10, (measured, known, steps)
    # The step that broke the SLO did so on latency, not on errors.
    broken = [s for s in result.steps if not s.slo_met]
    assert broken, steps
    assert all(s.error_rate == 0 for s in broken), steps
