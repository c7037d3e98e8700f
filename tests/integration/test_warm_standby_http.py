"""Standby replicas of the fleet simulator over real HTTP: vLLM's /sleep and /wake_up on
each replica's own server, the simulator API's /standby, and what membership sees.

The fleet's clock is paused and stepped by the test, so "served within wake_s, not the
cold start" is a statement about simulated time, not about wall-clock timing."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from apps.autoscaling.actuators import ActuatorError, ScaleTarget
from apps.autoscaling.actuators.warm import (
    LABEL_WARM_POOL_SIZE,
    ensure_deployment_warm_pool,
    ensure_simulator_standby,
)
from apps.balancing.membership import simulator_members
from apps.fleetsim.exposition import serve
from apps.fleetsim.fleet import Fleet, SimulatedDeployment
from apps.fleetsim.inventory import deployment_standby
from apps.fleetsim.profiles import A100_80GB
from apps.fleetsim.replica_http import ReplicaHTTPServer

pytestmark = pytest.mark.integration

MODEL = "llama-3.1-8b"
TIMEOUT_S = 30
COLD = A100_80GB.cold_start_s
WAKE = A100_80GB.wake_s


class Sim:
    def __init__(self, tmp_path: Path) -> None:
        self.deployment = SimulatedDeployment("chat", MODEL, "llm", A100_80GB, 1, ())
        self.fleet = Fleet([self.deployment])
        self.server = ReplicaHTTPServer(
            self.fleet, tick_s=0.005, endpoints_file=tmp_path / "replicas.json"
        )
        self.server.start()
        self.api, port = serve(self.fleet, endpoints=self.server.endpoints)
        self.api_url = f"http://127.0.0.1:{port}"

    def stop(self) -> None:
        self.api.stop()
        self.server.stop()

    def step(self, seconds: float) -> None:
        self.fleet.step_to(self.fleet.now + seconds)
        self.server.refresh()

    def port(self, pod: str) -> int:
        listed = [*self.server.endpoints(), *self.server.standby_endpoints()]
        return int(next(e["port"] for e in listed if e["pod"] == pod))

    def url(self, pod: str, path: str) -> str:
        return f"http://127.0.0.1:{self.port(pod)}{path}"

    def standby_pod(self) -> str:
        return str(self.server.standby_endpoints()[0]["pod"])

    def complete(self, pod: str) -> requests.Response:
        """One completion at ``pod``; simulated time is stepped until it is answered."""
        body = {"model": MODEL, "prompt": "hello", "max_tokens": 4}
        url = self.url(pod, "/v1/completions")
        with ThreadPoolExecutor(1) as pool:
            answer = pool.submit(requests.post, url, json=body, timeout=TIMEOUT_S)
            for _ in range(2000):
                if answer.done():
                    break
                threading.Event().wait(0.005)
                self.step(0.05)
            return answer.result()


@pytest.fixture
def sim(tmp_path: Path) -> Iterator[Sim]:
    sim = Sim(tmp_path)
    try:
        yield sim
    finally:
        sim.stop()


def _state_series(text: str) -> dict[str, str]:
    return {
        s.labels["pod"]: s.labels["state"]
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == "llmcp_sim_replica_state" and s.value == 1
    }


def _put_standby(sim: Sim, count: int) -> dict[str, Any]:
    answer = requests.put(
        f"{sim.api_url}/standby/llm/chat", json={"replicas": count}, timeout=TIMEOUT_S
    )
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def test_standby__asleep__503_not_a_member_and_state_in_metrics(sim: Sim, tmp_path: Path) -> None:
    assert _put_standby(sim, 1)["standby_replicas"] == 1
    sim.step(COLD)
    pod = sim.standby_pod()

    health = requests.get(sim.url(pod, "/health"), timeout=TIMEOUT_S)
    assert (health.status_code, health.text) == (503, "asleep")
    inference = sim.complete(pod)
    assert inference.status_code == 503
    assert "asleep" in inference.json()["error"]["message"]
    sleeping = requests.get(sim.url(pod, "/is_sleeping"), timeout=TIMEOUT_S).json()
    assert sleeping == {"is_sleeping": True}
    own = requests.get(sim.url(pod, "/metrics"), timeout=TIMEOUT_S).text
    assert _state_series(own) == {pod: "asleep"}
    fleet_metrics = requests.get(f"{sim.api_url}/metrics", timeout=TIMEOUT_S).text
    assert _state_series(fleet_metrics) == {"chat-0": "ready", pod: "asleep"}
    assert "llmcp_sim_standby_replicas" in fleet_metrics
    standby = requests.get(f"{sim.api_url}/standby/llm/chat", timeout=TIMEOUT_S).json()
    assert standby == {
        "standby_target": 1,
        "standby_replicas": 1,
        "asleep_replicas": 1,
        "pods": [pod],
    }
    # Membership, from the API and from the endpoints file: the standby is not a member.
    for members in (
        simulator_members(namespace="llm", name="chat", base_url=sim.api_url),
        simulator_members(namespace="llm", name="chat", endpoints_file=tmp_path / "replicas.json"),
    ):
        assert [(m.name, m.state) for m in members] == [("chat-0", "serving")]


def test_scale_up__standby_ready__serves_after_wake_s_not_cold_start(sim: Sim) -> None:
    _put_standby(sim, 1)
    sim.step(COLD)
    pod = sim.standby_pod()

    scaled = requests.put(f"{sim.api_url}/scale/llm/chat", json={"replicas": 2}, timeout=30)
    assert scaled.json()["spec_replicas"] == 2
    sim.step(0.0)
    members = simulator_members(namespace="llm", name="chat", base_url=sim.api_url)
    assert {m.name: m.state for m in members}[pod] == "loading"  # waking
    assert requests.get(sim.url(pod, "/health"), timeout=TIMEOUT_S).status_code == 503
    sim.step(WAKE)

    assert requests.get(sim.url(pod, "/health"), timeout=TIMEOUT_S).status_code == 200
    served = sim.complete(pod)
    assert served.status_code == 200, served.text
    members = simulator_members(namespace="llm", name="chat", base_url=sim.api_url)
    assert {m.name: m.state for m in members} == {"chat-0": "serving", pod: "serving"}
    # The pool was refilled by a cold start, which still loads.
    assert len(sim.server.standby_endpoints()) == 1
    assert sim.standby_pod() != pod


def test_sleep_then_wake_up__replica_endpoints__leaves_and_rejoins(sim: Sim) -> None:
    requests.put(f"{sim.api_url}/scale/llm/chat", json={"replicas": 2}, timeout=30)
    sim.step(COLD)

    slept = requests.post(sim.url("chat-1", "/sleep"), timeout=TIMEOUT_S)

    assert slept.status_code == 200
    assert slept.json() == {"pod": "chat-1", "is_sleeping": True, "state": "asleep"}
    assert sim.deployment.spec_replicas == 1
    assert [e["pod"] for e in sim.server.endpoints()] == ["chat-0"]
    again = requests.post(sim.url("chat-1", "/sleep"), timeout=TIMEOUT_S)
    assert again.json()["is_sleeping"] is True
    woken = requests.post(sim.url("chat-1", "/wake_up"), timeout=TIMEOUT_S)
    assert woken.json() == {"pod": "chat-1", "is_sleeping": False, "state": "starting"}
    assert sim.deployment.spec_replicas == 2
    sim.step(WAKE)
    assert sim.complete("chat-1").status_code == 200


def test_sleep__replica_cold_starting__409_with_reason(sim: Sim) -> None:
    requests.put(f"{sim.api_url}/scale/llm/chat", json={"replicas": 2}, timeout=30)
    sim.step(1.0)

    answer = requests.post(sim.url("chat-1", "/sleep"), timeout=TIMEOUT_S)
    woken = requests.post(sim.url("chat-1", "/wake_up"), timeout=TIMEOUT_S)

    assert answer.status_code == 409
    assert "only a ready replica can sleep" in answer.json()["error"]["message"]
    assert woken.status_code == 409


@pytest.mark.parametrize(
    "body", [{}, {"replicas": -1}, {"replicas": "2"}, {"replicas": True}, {"count": 1}]
)
def test_put_standby__bad_body__400_json(sim: Sim, body: dict[str, Any]) -> None:
    answer = requests.put(f"{sim.api_url}/standby/llm/chat", json=body, timeout=TIMEOUT_S)

    assert answer.status_code == 400
    assert "replicas" in answer.json()["error"]


def test_standby__unknown_deployment__404(sim: Sim) -> None:
    answer = requests.get(f"{sim.api_url}/standby/llm/nope", timeout=TIMEOUT_S)

    assert answer.status_code == 404
    assert "llm/nope" in answer.json()["error"]


def test_ensure_deployment_warm_pool__simulated__standby_set_then_unchanged(
    sim: Sim, settings: Any
) -> None:
    settings.FLEETSIM_URL = sim.api_url
    deployment = SimpleNamespace(
        labels={LABEL_WARM_POOL_SIZE: "2"},
        target_kind="simulated",
        scale_target_namespace="llm",
        scale_target_name="chat",
    )

    assert ensure_deployment_warm_pool(deployment) is True
    assert sim.deployment.standby_target == 2
    assert ensure_deployment_warm_pool(deployment) is False
    deployment.labels = {LABEL_WARM_POOL_SIZE: "0"}
    assert ensure_deployment_warm_pool(deployment) is True
    assert sim.deployment.standby_replicas == 0


def test_ensure_simulator_standby__unknown_deployment__permanent_not_found(sim: Sim) -> None:
    with pytest.raises(ActuatorError) as caught:
        ensure_simulator_standby(sim.api_url, ScaleTarget("simulated", "llm", "nope"), 1)

    assert caught.value.permanent_reason == "not-found"
    assert "llm/nope" in str(caught.value)


def test_deployment_standby__label__size_or_zero_when_malformed() -> None:
    assert deployment_standby(SimpleNamespace(pk=1, labels={LABEL_WARM_POOL_SIZE: "3"})) == 3  # type: ignore[arg-type]
    assert deployment_standby(SimpleNamespace(pk=1, labels={LABEL_WARM_POOL_SIZE: "x"})) == 0  # type: ignore[arg-type]
    assert deployment_standby(SimpleNamespace(pk=1, labels={})) == 0  # type: ignore[arg-type]


@pytest.mark.django_db
def test_warm_capacity_sync_task__labelled_active_deployments__standby_set_failures_isolated(
    sim: Sim, settings: Any
) -> None:
    from apps.autoscaling.tasks import warm_capacity_sync
    from apps.inventory.models import DeploymentStatus
    from tests.factories.inventory import SimulatedDeploymentFactory

    settings.FLEETSIM_URL = sim.api_url
    active = DeploymentStatus.ACTIVE
    chat = SimulatedDeploymentFactory(
        name="chat", labels={LABEL_WARM_POOL_SIZE: "2"}, status=active
    )
    broken = SimulatedDeploymentFactory(
        name="nope", labels={LABEL_WARM_POOL_SIZE: "1"}, status=active
    )
    SimulatedDeploymentFactory(name="plain", status=active)  # no label: not managed
    SimulatedDeploymentFactory(
        name="retired", labels={LABEL_WARM_POOL_SIZE: "3"}, status=DeploymentStatus.RETIRED
    )

    first = warm_capacity_sync.apply().get()
    assert first == {"changed": [chat.pk], "unchanged": [], "failed": [broken.pk]}
    assert sim.deployment.standby_target == 2
    again = warm_capacity_sync.apply().get()
    assert again == {"changed": [], "unchanged": [chat.pk], "failed": [broken.pk]}
