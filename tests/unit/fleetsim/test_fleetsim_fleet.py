from __future__ import annotations

import statistics
import time
from collections import Counter

import pytest

from apps.fleetsim.fleet import Fleet, SimulatedDeployment
from apps.fleetsim.profiles import A100_80GB
from apps.fleetsim.replica import RequestRecord
from apps.fleetsim.workload import Request, steady


def _deployment(
    replicas: int = 2,
    workload: list[Request] | None = None,
    **kwargs: object,
) -> SimulatedDeployment:
    return SimulatedDeployment(
        "chat",
        "llama-3.1-8b",
        "prod",
        A100_80GB,
        replicas,
        steady(4.0, 600.0, seed=1) if workload is None else workload,
        **kwargs,  # type: ignore[arg-type]
    )


def _assert_each_request_finished_once(records: list[RequestRecord], expected: int) -> None:
    finished = Counter(r.request_id for r in records if r.completed)
    assert len(finished) == expected
    assert set(finished.values()) == {1}


def test_fleet__steady_load__littles_law_holds_for_deployment() -> None:
    deployment = _deployment(replicas=2, workload=steady(6.0, 900.0, seed=2))
    fleet = Fleet([deployment])
    in_system: list[int] = []
    t = 0.0
    while not fleet.is_idle():
        t += 0.25
        fleet.step_to(t)
        snapshot = deployment.snapshot()
        in_system.append(snapshot.num_running + snapshot.num_waiting)

    records = deployment.completed()
    arrival_rate = len(records) / t
    mean_sojourn = statistics.fmean(r.e2e_s for r in records if r.e2e_s is not None)
    assert statistics.fmean(in_system) == pytest.approx(arrival_rate * mean_sojourn, rel=0.03)


def test_router__simultaneous_burst__spread_evenly_by_least_load() -> None:
    burst = [Request(10.0, 300, 400) for _ in range(9)]
    deployment = _deployment(replicas=3, workload=burst)

    Fleet([deployment]).step_to(10.0)

    snapshot = deployment.snapshot()
    assert [r.num_running + r.num_waiting for r in snapshot.replicas] == [3, 3, 3]


def test_deployment__more_replicas__lower_queueing_delay() -> None:
    load = steady(14.0, 300.0, seed=3)
    results = {}
    for replicas in (1, 4):
        deployment = _deployment(replicas=replicas, workload=load)
        Fleet([deployment]).run_until_idle()
        results[replicas] = statistics.fmean(
            r.ttft_s for r in deployment.completed() if r.ttft_s is not None
        )

    assert results[1] > 10.0
    assert results[4] < 1.0


def test_deployment__cold_start__nothing_served_before_replica_ready() -> None:
    deployment = _deployment(replicas=1, initial_ready=False)
    fleet = Fleet([deployment])
    cold = A100_80GB.cold_start_s

    fleet.step_to(cold / 2)
    halfway = deployment.snapshot()
    assert halfway.ready_replicas == 0
    assert halfway.starting_replicas == 1
    assert halfway.num_waiting == halfway.gateway_queue > 0
    assert deployment.completed() == []

    fleet.run_until_idle()
    records = deployment.completed()
    assert min(r.finish_s for r in records) > cold
    for r in records:
        assert r.ttft_s is not None
        assert r.ttft_s >= cold - r.arrival_s
    _assert_each_request_finished_once(records, len(steady(4.0, 600.0, seed=1)))


def test_scale__up__new_replicas_start_then_become_ready() -> None:
    deployment = _deployment(replicas=2)
    fleet = Fleet([deployment])
    fleet.step_to(100.0)

    status = deployment.scale(5)

    assert status == {"spec_replicas": 5, "ready_replicas": 2, "starting_replicas": 3}
    fleet.step_to(100.0 + A100_80GB.cold_start_s - 1.0)
    assert deployment.ready_replicas == 2
    fleet.step_to(100.0 + A100_80GB.cold_start_s)
    assert deployment.scale_status() == {
        "spec_replicas": 5,
        "ready_replicas": 5,
        "starting_replicas": 0,
    }
    new_pods = [r.pod for r in deployment.replicas[2:]]
    fleet.step_to(400.0)
    served_by = {r.pod for r in deployment.completed() if r.completed}
    assert set(new_pods) <= served_by


def test_scale__down__removes_starting_replicas_first() -> None:
    deployment = _deployment(replicas=2)
    fleet = Fleet([deployment])
    fleet.step_to(50.0)
    deployment.scale(4)

    status = deployment.scale(3)

    assert status == {"spec_replicas": 3, "ready_replicas": 2, "starting_replicas": 1}
    assert [r.pod for r in deployment.replicas] == ["chat-0", "chat-1", "chat-2"]


def test_scale__down_with_remove__named_replicas_go_not_the_least_loaded() -> None:
    deployment = _deployment(replicas=3, workload=steady(8.0, 300.0, seed=4))
    fleet = Fleet([deployment])
    fleet.step_to(150.0)
    deployment.scale(4)  # chat-3 starts: the simulator's own choice would remove it
    busiest = max(deployment.replicas[:3], key=lambda r: (r.outstanding, r.pod)).pod

    status = deployment.scale(2, remove=[busiest], drain_s=60.0)

    assert status == {"spec_replicas": 2, "ready_replicas": 2, "starting_replicas": 0}
    assert busiest not in {r.pod for r in deployment.replicas}
    assert deployment.replica_states()[busiest] == "draining"
    assert deployment.totals().requeued == 0


def test_scale__down_with_remove_of_a_starting_replica__it_goes() -> None:
    deployment = _deployment(replicas=2)
    fleet = Fleet([deployment])
    fleet.step_to(50.0)
    deployment.scale(4)  # chat-2 and chat-3 start

    deployment.scale(3, remove=["chat-2"])

    assert [r.pod for r in deployment.replicas] == ["chat-0", "chat-1", "chat-3"]


@pytest.mark.parametrize(
    ("replicas", "remove", "message"),
    [
        (1, ["chat-0", "chat-0"], "more than once"),
        (1, ["chat-7"], "not starting or ready"),
        (1, ["chat-0", "chat-1"], "removes 1"),
        (3, ["chat-0"], "removes 0"),
    ],
)
def test_scale__remove_it_cannot_honour__value_error_and_nothing_changes(
    replicas: int, remove: list[str], message: str
) -> None:
    deployment = _deployment(replicas=2)
    Fleet([deployment]).step_to(10.0)

    with pytest.raises(ValueError, match=message):
        deployment.scale(replicas, remove=remove)

    assert deployment.replica_states() == {"chat-0": "ready", "chat-1": "ready"}


def test_scale__down_under_load__inflight_requests_requeued_and_all_complete() -> None:
    workload = steady(8.0, 300.0, seed=4)
    deployment = _deployment(replicas=3, workload=workload)
    fleet = Fleet([deployment])
    fleet.step_to(150.0)
    busy_before = sum(r.outstanding for r in deployment.replicas)

    deployment.scale(1)

    assert deployment.spec_replicas == deployment.ready_replicas == 1
    assert deployment.totals().requeued > 0
    # Nothing lost: every request accepted is still held by the remaining replica.
    assert sum(r.outstanding for r in deployment.replicas) == busy_before
    fleet.run_until_idle()
    records = deployment.completed()
    _assert_each_request_finished_once(records, len(workload))
    assert any(r.requeues for r in records)
    assert deployment.totals().completed == len(workload)


def test_scale__to_zero_and_back__requests_wait_at_gateway_then_complete() -> None:
    workload = steady(2.0, 200.0, seed=5)
    deployment = _deployment(replicas=1, workload=workload)
    fleet = Fleet([deployment])
    fleet.step_to(20.0)
    deployment.scale(0)
    fleet.step_to(60.0)

    assert deployment.snapshot().gateway_queue > 0
    deployment.scale(2)
    fleet.run_until_idle()

    _assert_each_request_finished_once(deployment.completed(), len(workload))


def test_scale__negative_or_non_integer__raises_value_error() -> None:
    deployment = _deployment()
    for bad in (-1, 1.5, True):
        with pytest.raises(ValueError, match="non-negative integer"):
            deployment.scale(bad)  # type: ignore[arg-type]


def test_rate_multiplier__doubled__about_twice_the_requests() -> None:
    workload = steady(3.0, 400.0, seed=6)
    deployment = _deployment(replicas=4, workload=workload)
    fleet = Fleet([deployment])
    fleet.step_to(200.0)
    first_half = deployment.totals().completed + deployment.outstanding()

    deployment.set_rate_multiplier(2.0)
    fleet.run_until_idle()

    second_half = deployment.totals().completed - first_half
    originals_second_half = sum(1 for r in workload if r.arrival_s > 200.0)
    assert second_half == pytest.approx(2 * originals_second_half, abs=3)


def test_rate_multiplier__fractional__thins_arrivals() -> None:
    workload = steady(4.0, 500.0, seed=6)
    deployment = _deployment(replicas=2, workload=workload)
    deployment.set_rate_multiplier(0.5)

    Fleet([deployment]).run_until_idle()

    assert deployment.totals().completed == pytest.approx(len(workload) / 2, rel=0.1)


def test_inject_latency__extra_delay__shows_in_ttft_not_in_itl() -> None:
    workload = steady(2.0, 300.0, seed=7)
    baseline = _deployment(workload=workload)
    delayed = _deployment(workload=workload)
    delayed.inject_latency(2.0)
    for deployment in (baseline, delayed):
        Fleet([deployment]).run_until_idle()

    def mean(records: list[RequestRecord], attr: str) -> float:
        return statistics.fmean(getattr(r, attr) for r in records if getattr(r, attr) is not None)

    assert mean(delayed.completed(), "ttft_s") == pytest.approx(
        mean(baseline.completed(), "ttft_s") + 2.0, abs=0.05
    )
    assert mean(delayed.completed(), "mean_itl_s") == pytest.approx(
        mean(baseline.completed(), "mean_itl_s"), rel=0.05
    )


def test_inject_error_ratio__thirty_percent__failures_counted_separately() -> None:
    workload = steady(5.0, 600.0, seed=8)
    deployment = _deployment(workload=workload)
    deployment.inject_error_ratio(0.3)

    Fleet([deployment]).run_until_idle()

    totals = deployment.totals()
    assert totals.completed + totals.failed == len(workload)
    assert totals.failures_by_reason.keys() == {"injected"}
    assert totals.error_ratio == pytest.approx(0.3, abs=0.04)
    assert totals.stats.success == totals.completed


def test_inject__invalid_values__raise_value_error() -> None:
    deployment = _deployment()
    with pytest.raises(ValueError, match="error ratio"):
        deployment.inject_error_ratio(1.5)
    with pytest.raises(ValueError, match="latency"):
        deployment.inject_latency(-1.0)
    with pytest.raises(ValueError, match="multiplier"):
        deployment.set_rate_multiplier(float("nan"))


def test_fleet__several_deployments__advance_on_one_clock() -> None:
    chat = _deployment()
    other = SimulatedDeployment("embed", "bge", "prod", "L4", 1, steady(1.0, 100.0, seed=9))
    fleet = Fleet([chat, other])

    fleet.step_to(50.0)

    snapshot = fleet.snapshot()
    assert snapshot.time_s == 50.0
    assert {d.name: d.time_s for d in snapshot.deployments} == {"chat": 50.0, "embed": 50.0}
    assert fleet.get("prod", "embed") is other
    with pytest.raises(KeyError):
        fleet.get("prod", "missing")
    with pytest.raises(ValueError, match="already exists"):
        fleet.add(_deployment())
    with pytest.raises(ValueError, match="back in time"):
        fleet.step_to(10.0)


def test_fleet__run_realtime__simulated_time_follows_wall_clock_until_stopped() -> None:
    fleet = Fleet([_deployment()])

    fleet.run_realtime(speed=200.0, tick_s=0.01)
    try:
        deadline = time.monotonic() + 5.0
        while fleet.sync() < 1.0 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert fleet.running
    finally:
        fleet.stop()

    frozen = fleet.now
    assert frozen >= 1.0
    assert not fleet.running
    time.sleep(0.05)
    assert fleet.sync() == frozen
