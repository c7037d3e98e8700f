"""The simulator actuator against the fleet simulator's real HTTP server.

Simulated time is stepped with ``fleet.step_to`` (the real-time driver is not running),
so cold starts take no wall-clock time.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from apps.autoscaling.actuators import ActuatorError, ScaleStatus, ScaleTarget, apply_with_retry
from apps.autoscaling.actuators.simulated import SimulatedActuator
from apps.fleetsim.exposition import serve
from apps.fleetsim.fleet import Fleet
from tests.integration.fleets import steady_deployment

CHAT = ScaleTarget("simulated", "llm", "chat")


@pytest.fixture
def fleet() -> Fleet:
    return Fleet(
        [
            steady_deployment(
                "chat", "llama-8b", "A100-80GB", replicas=2, rate=4.0, seed=1, duration_s=600
            )
        ]
    )


@pytest.fixture
def simulator_url(fleet: Fleet) -> Iterator[str]:
    server, port = serve(fleet)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


@pytest.fixture
def actuator(simulator_url: str) -> SimulatedActuator:
    return SimulatedActuator(simulator_url, connect_timeout_s=1.0, read_timeout_s=2.0)


def test_get_scale__two_ready_replicas__counts(actuator: SimulatedActuator) -> None:
    assert actuator.get_scale(CHAT) == ScaleStatus(spec_replicas=2, ready_replicas=2)


def test_apply_with_retry__scale_up__new_replicas_start_then_become_ready(
    actuator: SimulatedActuator, fleet: Fleet
) -> None:
    deployment = fleet.get("llm", "chat")

    status = apply_with_retry(actuator, CHAT, 4, idempotency_key="d-1")

    assert status == ScaleStatus(spec_replicas=4, ready_replicas=2)
    assert deployment.starting_replicas == 2
    fleet.step_to(fleet.now + deployment.profile.cold_start_s / 2)
    assert actuator.get_scale(CHAT) == ScaleStatus(spec_replicas=4, ready_replicas=2)
    fleet.step_to(fleet.now + deployment.profile.cold_start_s)
    assert actuator.get_scale(CHAT) == ScaleStatus(spec_replicas=4, ready_replicas=4)
    assert deployment.starting_replicas == 0


def test_apply_with_retry__scale_down__replicas_removed_at_once(
    actuator: SimulatedActuator, fleet: Fleet
) -> None:
    fleet.step_to(30.0)

    status = apply_with_retry(actuator, CHAT, 1, idempotency_key="d-1")

    assert status == ScaleStatus(spec_replicas=1, ready_replicas=1)
    assert fleet.get("llm", "chat").spec_replicas == 1


def test_apply_with_retry__applied_twice__second_is_noop(
    actuator: SimulatedActuator, fleet: Fleet
) -> None:
    apply_with_retry(actuator, CHAT, 3, idempotency_key="d-1")
    pods_before = [r.pod for r in fleet.get("llm", "chat").replicas]

    status = apply_with_retry(actuator, CHAT, 3, idempotency_key="d-1")

    assert status.spec_replicas == 3
    assert [r.pod for r in fleet.get("llm", "chat").replicas] == pods_before


def test_apply_with_retry__unknown_deployment__permanent_not_found(
    actuator: SimulatedActuator,
) -> None:
    with pytest.raises(ActuatorError) as info:
        apply_with_retry(actuator, ScaleTarget("simulated", "llm", "ghost"), 2, idempotency_key="k")

    assert info.value.permanent_reason == "not-found"
    assert "unknown deployment llm/ghost" in str(info.value)


def test_set_replicas__above_simulator_limit__permanent_invalid(
    actuator: SimulatedActuator,
) -> None:
    with pytest.raises(ActuatorError) as info:
        actuator.set_replicas(CHAT, 5000, idempotency_key="k")

    assert info.value.permanent_reason == "invalid"
    assert "between 0 and 1000" in str(info.value)


def test_get_scale__nothing_listening__retryable() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    actuator = SimulatedActuator(f"http://127.0.0.1:{port}", connect_timeout_s=0.5)

    with pytest.raises(ActuatorError) as info:
        actuator.get_scale(CHAT)

    assert info.value.retryable
    assert "unreachable" in str(info.value)


def test_get_scale__wrong_target_kind__permanent(actuator: SimulatedActuator) -> None:
    with pytest.raises(ActuatorError) as info:
        actuator.get_scale(ScaleTarget("k8s-deployment", "llm", "chat"))

    assert info.value.permanent_reason == "unsupported-target"


def test_set_replicas__remove_named__that_replica_goes(
    actuator: SimulatedActuator, fleet: Fleet
) -> None:
    fleet.step_to(60.0)

    status = actuator.set_replicas(CHAT, 1, idempotency_key="d-1", remove=["chat-0"], drain_s=30)

    assert status.spec_replicas == 1
    assert [r.pod for r in fleet.get("llm", "chat").replicas] == ["chat-1"]


def test_set_replicas__remove_unknown_replica__permanent_invalid(
    actuator: SimulatedActuator, fleet: Fleet
) -> None:
    with pytest.raises(ActuatorError) as info:
        actuator.set_replicas(CHAT, 1, idempotency_key="d-1", remove=["chat-9"])

    assert (info.value.retryable, info.value.permanent_reason) == (False, "invalid")
    assert "chat-9" in info.value.message
    assert fleet.get("llm", "chat").spec_replicas == 2
