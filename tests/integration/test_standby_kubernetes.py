"""Standby pods of a Kubernetes workload through vLLM's sleep mode.

The official ``kubernetes`` client talks to the fake API server (k8s_fake_apiserver), whose
pods point at the fleet simulator's real replica HTTP servers: each answers vLLM's
``POST /sleep``, ``POST /wake_up`` and ``GET /is_sleeping``. The test plays the ReplicaSet
controller's part where it matters (a pod appears once the workload asks for one)."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import pytest
import requests

from apps.autoscaling.actuators import ActuatorError, ScaleTarget, apply_with_retry
from apps.autoscaling.actuators.kubernetes import POD_DELETION_COST
from apps.autoscaling.actuators.standby import (
    STANDBY_REPLICAS_ANNOTATION,
    StandbyKubernetesActuator,
    VllmSleep,
)
from apps.balancing.membership import kubernetes_members
from apps.integrations.kubernetes import (
    STANDBY_POD_LABEL,
    KubernetesClient,
    build_api_client,
)
from tests.integration.k8s_fake_apiserver import FakeApiServer, SliceEndpoint
from tests.integration.test_warm_standby_http import (  # the simulator and its fixture
    COLD,
    TIMEOUT_S,
    Sim,
    sim,  # noqa: F401
)

pytestmark = pytest.mark.integration

NS = "llm"
CHAT = ScaleTarget("k8s-deployment", NS, "chat")
LABELS = {"app.kubernetes.io/name": "chat"}


class Sleeps(list[float]):
    """Backoff pauses asked for, without waiting them out."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


class Cluster:
    """The fake API server with one Deployment whose pods are simulator replicas."""

    def __init__(self, apiserver: FakeApiServer, kubeconfig: Path, simulator: Sim) -> None:
        self.apiserver, self.sim = apiserver, simulator
        self.sleeps = Sleeps()
        client = KubernetesClient(
            build_api_client(kubeconfig_path=str(kubeconfig), kube_context="fake"), timeout_s=5
        )
        self.client = client
        self.actuator = StandbyKubernetesActuator(
            client, standby=1, sleeper=VllmSleep(timeout_s=TIMEOUT_S, sleep=self.sleeps)
        )
        requests.put(f"{simulator.api_url}/scale/llm/chat", json={"replicas": 3}, timeout=TIMEOUT_S)
        simulator.step(COLD)
        apiserver.add_workload("deployment", NS, "chat", replicas=3, labels=LABELS)
        for pod in ("chat-0", "chat-1", "chat-2"):
            self.add_pod(pod)

    def add_pod(self, name: str, *, ip: str = "127.0.0.1", port: int | None = None) -> None:
        port = self.sim.port(name) if port is None else port
        self.apiserver.add_pod(NS, name, LABELS, ip=ip, ports=[("http", port)])

    def controller_adds(self, name: str) -> None:
        """The ReplicaSet controller's new pod: one more simulator replica, loaded."""
        replicas = self.sim.deployment.spec_replicas + 1
        requests.put(
            f"{self.sim.api_url}/scale/llm/chat", json={"replicas": replicas}, timeout=TIMEOUT_S
        )
        self.sim.step(COLD)
        self.add_pod(name)

    def sleeping(self, pod: str) -> bool:
        answer = requests.get(self.sim.url(pod, "/is_sleeping"), timeout=TIMEOUT_S)
        return bool(answer.json()["is_sleeping"])

    def labelled_asleep(self) -> list[str]:
        return sorted(
            name
            for (_, name), pod in self.apiserver.pods.items()
            if STANDBY_POD_LABEL in pod.labels
        )

    def standby_established(self) -> None:
        """One pod asleep beside three serving: the first reconcile asks for a fourth pod,
        the second (once it is ready) puts it to sleep."""
        self.actuator.reconcile(CHAT)
        self.controller_adds("chat-3")
        self.actuator.reconcile(CHAT)


@pytest.fixture
def cluster(
    apiserver: FakeApiServer, kubeconfig: Path, request: pytest.FixtureRequest, settings: Any
) -> Cluster:
    settings.OUTBOUND_ALLOWED_NETWORKS = ["127.0.0.1/32"]  # the replicas listen on loopback
    return Cluster(apiserver, kubeconfig, request.getfixturevalue("sim"))


def test_reconcile__standby_1__workload_grows_then_the_new_pod_sleeps_and_leaves_membership(
    cluster: Cluster, apiserver: FakeApiServer
) -> None:
    first = cluster.actuator.reconcile(CHAT)

    workload = apiserver.workload("deployment", NS, "chat")
    assert (workload.replicas, workload.annotations) == (4, {STANDBY_REPLICAS_ANNOTATION: "1"})
    assert first == ["scaled k8s-deployment:llm/chat from 3 to 4 pods (3 serving + 1 standby)"]
    assert cluster.actuator.get_scale(CHAT).spec_replicas == 3  # the engine sees serving pods

    cluster.controller_adds("chat-3")
    second = cluster.actuator.reconcile(CHAT)

    assert second == ["put pod chat-3 to sleep (standby)"]
    assert cluster.labelled_asleep() == ["chat-3"]
    assert cluster.sleeping("chat-3")
    assert not cluster.sleeping("chat-2")
    status = cluster.actuator.get_scale(CHAT)
    assert (status.spec_replicas, status.ready_replicas) == (3, 3)
    assert apiserver.workload("deployment", NS, "chat").replicas == 4
    # The Service's EndpointSlice still lists chat-3 as ready (its probe passes asleep).
    apiserver.add_endpoint_slice(
        NS,
        "chat-abc",
        service="chat",
        endpoints=[SliceEndpoint(f"chat-{i}", "127.0.0.1") for i in range(4)],
    )
    members = kubernetes_members(client=cluster.client, namespace=NS, service="chat")
    assert [m.name for m in members] == ["chat-0", "chat-1", "chat-2"]
    # Idempotent: nothing more to do, nothing written.
    apiserver.clear_requests()
    assert cluster.actuator.reconcile(CHAT) == []
    assert not apiserver.requests_to("PATCH")


def test_scale_up__standby_asleep__woken_first_then_the_workload_refills(
    cluster: Cluster, apiserver: FakeApiServer
) -> None:
    cluster.standby_established()

    result = apply_with_retry(cluster.actuator, CHAT, 4, idempotency_key="k-up", sleep=Sleeps())

    assert result.spec_replicas == 4
    assert result.warnings == (
        "woke standby pod chat-3",
        "scaled k8s-deployment:llm/chat from 4 to 5 pods (4 serving + 1 standby)",
    )
    assert not cluster.sleeping("chat-3")
    assert cluster.labelled_asleep() == []
    assert apiserver.workload("deployment", NS, "chat").replicas == 5
    # Applied twice: nothing more happens.
    again = apply_with_retry(cluster.actuator, CHAT, 4, idempotency_key="k-up", sleep=Sleeps())
    assert again.spec_replicas == 4
    assert apiserver.workload("deployment", NS, "chat").replicas == 5


def test_scale_down__sleeps_the_least_busy_up_to_the_standby_count_before_removing(
    cluster: Cluster, apiserver: FakeApiServer
) -> None:
    cluster.standby_established()
    apply_with_retry(cluster.actuator, CHAT, 4, idempotency_key="k-up", sleep=Sleeps())
    load = {"chat-0": 5.0, "chat-1": 0.0, "chat-2": 3.0, "chat-3": 2.0}

    down = apply_with_retry(
        cluster.actuator, CHAT, 3, idempotency_key="k-d1", sleep=Sleeps(), pod_load=load
    )

    assert down.warnings[0] == "put pod chat-1 to sleep (standby)"
    assert cluster.sleeping("chat-1")
    assert cluster.labelled_asleep() == ["chat-1"]
    assert apiserver.workload("deployment", NS, "chat").replicas == 4  # no pod removed

    # The standby count is reached: this scale-down removes a pod, the least busy serving
    # one first and the sleeping one last.
    apply_with_retry(
        cluster.actuator, CHAT, 2, idempotency_key="k-d2", sleep=Sleeps(), pod_load=load
    )

    costs = {n: int(p.annotations[POD_DELETION_COST]) for (_, n), p in apiserver.pods.items()}
    assert min(costs, key=lambda n: costs[n]) == "chat-3"
    assert max(costs, key=lambda n: costs[n]) == "chat-1"
    assert apiserver.workload("deployment", NS, "chat").replicas == 3
    assert cluster.labelled_asleep() == ["chat-1"]
    assert cluster.sleeping("chat-1")


@pytest.mark.parametrize(
    ("ip", "allowed", "why"),
    [
        ("169.254.169.254", ["127.0.0.1/32"], "link-local"),
        ("127.0.0.1", [], "loopback"),
        ("pod.example", ["127.0.0.1/32"], "not an IP address"),
    ],
)
def test_sleep__pod_address_refused__permanent_and_nothing_called(
    cluster: Cluster, apiserver: FakeApiServer, settings: Any, ip: str, allowed: list[str], why: str
) -> None:
    cluster.actuator.reconcile(CHAT)
    cluster.controller_adds("chat-3")
    apiserver.pods[(NS, "chat-3")].ip = ip
    settings.OUTBOUND_ALLOWED_NETWORKS = allowed

    with pytest.raises(ActuatorError) as caught:
        cluster.actuator.reconcile(CHAT)

    assert caught.value.permanent_reason == "misconfigured"
    assert why in caught.value.message
    assert not cluster.sleeping("chat-3")  # never called
    assert cluster.sleeps == []  # and not retried


def test_wake__pod_unreachable__retried_with_backoff_then_retryable_and_still_standby(
    cluster: Cluster, apiserver: FakeApiServer
) -> None:
    cluster.standby_established()
    apiserver.pods[(NS, "chat-3")].ports = [("http", closed_port())]

    with pytest.raises(ActuatorError) as caught:
        cluster.actuator.reconcile(CHAT, serving=4)

    assert caught.value.retryable
    assert len(cluster.sleeps) == 2  # three attempts, two pauses, growing
    assert cluster.sleeps[1] > cluster.sleeps[0]
    assert cluster.labelled_asleep() == ["chat-3"]  # not back in membership
    assert apiserver.workload("deployment", NS, "chat").replicas == 4


def closed_port() -> int:
    """A port on 127.0.0.1 nothing listens on (bound, then closed)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.django_db
@pytest.mark.usefixtures("allow_loopback_outbound")
def test_warm_capacity_sync__k8s_deployment_with_label__standby_reconciled(
    cluster: Cluster, apiserver: FakeApiServer, settings: Any
) -> None:
    from apps.autoscaling.actuators.warm import LABEL_WARM_POOL_SIZE, ensure_deployment_warm_pool
    from tests.factories.inventory import ClusterFactory, DeploymentFactory, kubeconfig_document

    settings.OUTBOUND_ALLOWED_NETWORKS = ["127.0.0.1/32"]
    team_cluster = ClusterFactory(
        kube_context="prod",
        credentials={
            "kubeconfig": kubeconfig_document(server=apiserver.url, token=apiserver.token)
        },
    )
    deployment = DeploymentFactory(
        team=team_cluster.team,
        cluster=team_cluster,
        name="chat",
        target_namespace=NS,
        labels={LABEL_WARM_POOL_SIZE: "1"},
    )

    assert ensure_deployment_warm_pool(deployment) is True
    assert apiserver.workload("deployment", NS, "chat").replicas == 4
    cluster.controller_adds("chat-3")
    assert ensure_deployment_warm_pool(deployment) is True
    assert cluster.labelled_asleep() == ["chat-3"]
    assert cluster.sleeping("chat-3")
    assert ensure_deployment_warm_pool(deployment) is False
