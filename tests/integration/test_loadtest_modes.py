"""The load test's modes and bounds against the fleet simulator's real HTTP replicas.

The fleet runs in fast mode (``SPEED`` simulated seconds per wall second) unless a test
leaves its clock still, so a replica never answers and the bounds must end the run.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any

import pytest

from apps.fleetsim.fleet import Fleet, SimulatedDeployment
from apps.fleetsim.replica_http import ReplicaHTTPServer
from apps.golive.loadtest import LoadTestPlan, WorkloadSpec, run_load_test

pytestmark = pytest.mark.integration

MODEL = "llama-3.1-8b"
SPEED = 20.0


@dataclass
class Served:
    fleet: Fleet
    server: ReplicaHTTPServer

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.endpoints()[0]['port']}"

    def plan(self, mode: str, **changes: Any) -> LoadTestPlan:
        base = LoadTestPlan(
            base_url=self.url,
            model=MODEL,
            mode=mode,
            rate_rps=5.0,
            duration_s=2.0,
            max_total_s=30.0,
            slo_ttft_s=2.0 / SPEED,
            slo_itl_s=0.1 / SPEED,
            workload=WorkloadSpec(preset="chat", max_prompt_tokens=1000),
            request_timeout_s=10.0,
        )
        return replace(base, **changes)


def _serve(realtime: bool, model: str = MODEL) -> Iterator[Served]:
    fleet = Fleet([SimulatedDeployment("chat", model, "llm", "H100-80GB", 1, ())])
    server = ReplicaHTTPServer(fleet, tick_s=0.01)
    server.start()
    if realtime:
        fleet.run_realtime(speed=SPEED)
    try:
        yield Served(fleet, server)
    finally:
        fleet.stop()
        server.stop()


@pytest.fixture
def served() -> Iterator[Served]:
    yield from _serve(realtime=True)


@pytest.fixture
def paused() -> Iterator[Served]:
    yield from _serve(realtime=False)


@pytest.mark.parametrize("api", ["chat", "completions"])
def test_functional__simulator__every_check_passes(served: Served, api: str) -> None:
    progress: list[dict[str, Any]] = []
    result = run_load_test(served.plan("functional", api=api), on_progress=progress.append)
    failed = [c for c in result.functional if not c.passed]
    assert [p["event"] for p in progress] == ["step-started", "step-finished"]
    assert failed == []
    names = {c.name for c in result.functional}
    assert {"models-listed", "stream-framing", "stream-usage", "unknown-model-rejected"} <= names
    assert result.passed
    assert result.steps[0].completed == result.steps[0].sent == 5


def test_functional__other_model_served__model_checks_fail(served: Served) -> None:
    result = run_load_test(replace(served.plan("functional"), model="mistral-7b"))
    outcome = {c.name: c for c in result.functional}
    assert not outcome["models-listed"].passed
    assert MODEL in outcome["models-listed"].observed
    assert not outcome["no-errors"].passed
    assert "http_404 5" in outcome["no-errors"].observed
    assert not result.passed


def test_performance__light_load__slo_met_with_figures(served: Served) -> None:
    progress: list[dict[str, Any]] = []
    result = run_load_test(served.plan("performance"), on_progress=progress.append)
    (step,) = result.steps
    assert step.slo_met, step.slo_reasons
    assert step.completed == step.sent > 0
    assert step.errors == {}
    ttft = [step.ttft.p50, step.ttft.p95, step.ttft.p99]
    assert None not in ttft
    assert ttft == sorted(ttft)  # type: ignore[type-var]
    assert step.itl.samples == step.e2e.samples == step.completed
    assert step.output_tokens_per_s > 0
    assert result.capacity_rps is None
    assert [p["event"] for p in progress] == ["step-started", "step-finished"]
    assert result.client.requests == step.sent
    assert result.client.cpu_s > 0


def test_performance__injected_errors__error_rate_breaks_the_slo(served: Served) -> None:
    with served.fleet.lock:
        served.fleet.get("llm", "chat").inject_error_ratio(0.5)
    result = run_load_test(served.plan("performance", rate_rps=10.0))
    (step,) = result.steps
    assert step.errors.get("http_500", 0) > 0
    assert step.error_rate == pytest.approx(step.errors["http_500"] / step.sent)
    assert not step.slo_met
    assert any(r.startswith("error rate") for r in step.slo_reasons)


def test_stress__slo_never_breaks__stops_at_max_rate_with_lower_bound(served: Served) -> None:
    plan = served.plan("stress", rate_rps=2.0, max_rate_rps=4.0, rate_factor=2.0, replicas=2)
    result = run_load_test(plan)
    assert [s.rate_rps for s in result.steps] == [2.0, 4.0]
    assert result.stopped_reason == "max_rate_rps"
    assert result.capacity_rps == 4.0
    assert result.capacity_rps_per_replica == 2.0


def test_stress__first_step_breaks__no_capacity(served: Served) -> None:
    # An ITL SLO below one decode step of the replica: nothing can meet it.
    plan = served.plan("stress", rate_rps=2.0, slo_itl_s=0.001 / SPEED)
    result = run_load_test(plan)
    assert len(result.steps) == 1
    assert result.stopped_reason == "slo_broken"
    assert result.capacity_rps is None
    assert not result.passed
    assert any(r.startswith("ITL p95") for r in result.steps[0].slo_reasons)


def test_bounds__server_never_answers__max_concurrency_and_max_total_s(paused: Served) -> None:
    plan = paused.plan(
        "performance", rate_rps=20.0, duration_s=2.0, max_total_s=2.5, max_concurrency=3
    )
    result = run_load_test(plan)
    (step,) = result.steps
    assert result.stopped_reason == "max_total_s"
    assert step.interrupted == "max_total_s"
    assert step.errors == {"cancelled": 3}
    assert step.client_limited == step.sent - 3 > 0
    assert result.client.client_limited == step.client_limited
    assert not step.slo_met
    assert any("client-limited" in r for r in step.slo_reasons)


def test_bounds__request_timeout__counted_as_timeouts(paused: Served) -> None:
    plan = paused.plan("performance", rate_rps=10.0, duration_s=1.0, request_timeout_s=0.5)
    step = run_load_test(plan).steps[0]
    assert step.errors == {"timeout": step.sent}
    assert step.completed == 0


def test_bounds__should_stop__ends_the_run_within_about_a_second(paused: Served) -> None:
    stop = threading.Event()
    threading.Timer(0.5, stop.set).start()
    plan = paused.plan("stress", rate_rps=5.0, duration_s=20.0, max_total_s=60.0)
    result = run_load_test(plan, should_stop=stop.is_set)
    assert result.stopped_reason == "should_stop"
    assert result.steps[0].interrupted == "should_stop"
    assert result.capacity_rps is None
    assert result.finished_at - result.started_at < 10.0
