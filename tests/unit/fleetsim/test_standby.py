"""Standby replicas (vLLM sleep mode) in the fleet simulator's model."""

from __future__ import annotations

import pytest

from apps.fleetsim.fleet import SimulatedDeployment
from apps.fleetsim.profiles import A100_80GB
from apps.fleetsim.replica import Job, Replica
from apps.fleetsim.workload import Request

COLD = A100_80GB.cold_start_s
WAKE = A100_80GB.wake_s


def _deployment(replicas: int = 1, workload: list[Request] | None = None) -> SimulatedDeployment:
    return SimulatedDeployment(
        "chat", "llama-3.1-8b", "prod", A100_80GB, replicas, workload or [], seed=3
    )


def _loaded_standby(deployment: SimulatedDeployment, count: int) -> None:
    deployment.set_standby(count)
    deployment.advance(deployment.now + COLD)


def test_profiles__wake__seconds_not_a_cold_start() -> None:
    assert 0 < WAKE < 5 < COLD
    assert 0 < A100_80GB.framebuffer_asleep_mib < A100_80GB.framebuffer_used_mib


def test_set_standby__replicas_loaded_then_asleep_outside_the_spec() -> None:
    deployment = _deployment(replicas=1)

    status = deployment.set_standby(2)

    assert status["spec_replicas"] == 1
    assert status["standby_replicas"] == 2
    states = deployment.replica_states()
    assert sorted(states.values()) == ["asleep", "asleep", "ready"]
    deployment.advance(COLD)
    snapshot = deployment.snapshot()
    asleep = [r for r in snapshot.replicas if r.state == "asleep"]
    assert len(asleep) == 2
    assert {r.fb_used_mib for r in asleep} == {A100_80GB.framebuffer_asleep_mib}
    assert snapshot.ready_replicas == 1
    assert (snapshot.standby_replicas, snapshot.standby_target) == (2, 2)


def test_scale_up__standby_ready__serves_within_wake_s_not_cold_start() -> None:
    deployment = _deployment(replicas=1)
    _loaded_standby(deployment, 1)
    standby = next(p for p, s in deployment.replica_states().items() if s == "asleep")
    t0 = deployment.now

    deployment.scale(2)

    assert deployment.replica_states()[standby] == "starting"
    states = {r.pod: r.state for r in deployment.snapshot().replicas}
    assert states[standby] == "waking"
    deployment.advance(t0 + WAKE)
    assert deployment.ready_replicas == 2
    assert deployment.replica_states()[standby] == "ready"
    # The pool is refilled by a cold start that is still loading.
    assert deployment.standby_replicas == 1
    refill = next(p for p, s in deployment.replica_states().items() if s == "asleep")
    assert refill != standby
    assert deployment.find_replica(refill).ready_at_s == pytest.approx(t0 + COLD)  # type: ignore[union-attr]


def test_scale_up__more_than_standby__rest_cold_start() -> None:
    deployment = _deployment(replicas=1)
    _loaded_standby(deployment, 1)
    t0 = deployment.now

    deployment.scale(3)
    deployment.advance(t0 + WAKE)

    assert deployment.ready_replicas == 2
    assert deployment.starting_replicas == 1
    deployment.advance(t0 + COLD)
    assert deployment.ready_replicas == 3


def test_scale_up__without_standby__cold_start() -> None:
    deployment = _deployment(replicas=1)
    deployment.advance(COLD)

    deployment.scale(2)
    deployment.advance(COLD + WAKE)

    assert deployment.ready_replicas == 1


def test_scale_up__request_waiting__served_after_wake_not_after_cold_start() -> None:
    request = Request(arrival_s=COLD + 1.0, prompt_tokens=100, output_tokens=10)
    deployment = _deployment(replicas=0, workload=[request])
    _loaded_standby(deployment, 1)

    deployment.advance(COLD + 1.0)
    deployment.scale(1)
    deployment.advance(COLD + 1.0 + WAKE + 5.0)

    records = deployment.completed()
    assert len(records) == 1
    assert records[0].completed
    assert records[0].e2e_s < WAKE + 5.0


def test_scale_down__standby_still_loading__removed_ready_replica_sleeps_in_its_place() -> None:
    deployment = _deployment(replicas=3)
    deployment.advance(10.0)
    deployment.set_standby(1)
    loading = next(p for p, s in deployment.replica_states().items() if s == "asleep")

    deployment.scale(2)

    states = deployment.replica_states()
    assert loading not in states  # its cold start is cancelled
    assert list(states.values()).count("asleep") == 1
    assert deployment.spec_replicas == 2
    # The pool is usable at once: the next scale-up is a wake, not a cold start.
    deployment.scale(3)
    deployment.advance(10.0 + WAKE)
    assert deployment.ready_replicas == 3


def test_scale_down__standby_loaded__removed_replica_goes() -> None:
    deployment = _deployment(replicas=3)
    _loaded_standby(deployment, 1)
    standby = next(p for p, s in deployment.replica_states().items() if s == "asleep")

    deployment.scale(2)

    assert deployment.spec_replicas == 2
    assert [p for p, s in deployment.replica_states().items() if s == "asleep"] == [standby]
    assert len(deployment.replica_states()) == 3


def test_sleep_and_wake__named_replica__leaves_and_rejoins_the_spec() -> None:
    deployment = _deployment(replicas=2)
    pod = deployment.replicas[0].pod

    deployment.sleep(pod)

    assert deployment.spec_replicas == 1
    assert deployment.replica_states()[pod] == "asleep"
    assert deployment.find_replica(pod).kv_cache_usage == 0.0  # type: ignore[union-attr]
    ready_at = deployment.wake(pod)
    assert ready_at == pytest.approx(deployment.now + WAKE)
    assert deployment.spec_replicas == 2
    deployment.advance(ready_at)
    assert deployment.replica_states()[pod] == "ready"


def test_sleep__busy_replica__its_requests_requeued_not_lost() -> None:
    workload = [Request(arrival_s=0.0, prompt_tokens=100, output_tokens=200) for _ in range(4)]
    deployment = _deployment(replicas=2, workload=workload)
    deployment.advance(0.05)
    busy = max(deployment.replicas, key=lambda r: r.outstanding)

    deployment.sleep(busy.pod)
    deployment.advance(60.0)

    finished = [r for r in deployment.completed() if r.completed]
    assert len(finished) == 4
    assert {r.pod for r in finished} == {deployment.replicas[0].pod}


def test_sleep_and_wake__unknown_or_wrong_state__key_error() -> None:
    deployment = _deployment(replicas=1)
    with pytest.raises(KeyError):
        deployment.sleep("chat-99")
    with pytest.raises(KeyError):
        deployment.wake("chat-99")
    with pytest.raises(ValueError, match="standby"):
        deployment.set_standby(-1)


def test_replica_sleep__holding_requests__refused() -> None:
    replica = Replica(A100_80GB, pod="r")
    replica.submit(Job(0, 0.0, 100, 100), 0.0)

    with pytest.raises(ValueError, match="drain it first"):
        replica.sleep(0.01)


def test_replica_wake__while_still_loading__ready_when_loaded() -> None:
    replica = Replica(A100_80GB, pod="r", ready_at_s=COLD, created_at_s=0.0)
    replica.asleep = True

    assert replica.wake(10.0) == COLD
    assert replica.wake(11.0) == COLD  # not asleep: left alone
