"""Members of a deployment read from the real sources: a fleet simulator whose replicas
serve HTTP, the ``kubernetes`` client against the fake API server's EndpointSlices, and
boto3 against moto in server mode (Auto Scaling instances and their EC2 addresses).

The simulator runs on a paused clock (the test steps simulated time), so cold starts and
drains are observed without waiting on wall-clock time.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

from apps.autoscaling.actuators import ScaleTarget
from apps.autoscaling.actuators.simulated import SimulatedActuator
from apps.balancing.membership import (
    LABEL_PORT,
    LABEL_SERVICE,
    MembershipError,
    asg_members,
    kubernetes_members,
    members_of,
    members_to_remove,
    simulator_members,
)
from apps.fleetsim.exposition import FleetHTTPServer, serve
from apps.fleetsim.fleet import Fleet, SimulatedDeployment
from apps.fleetsim.replica_http import ReplicaHTTPServer
from apps.integrations.aws import AutoScalingClient, Ec2Client, build_session, session_client
from apps.integrations.kubernetes import KubernetesClient, build_api_client
from tests.factories.inventory import ClusterFactory, DeploymentFactory, kubeconfig_document
from tests.integration.k8s_fake_apiserver import TOKEN, FakeApiServer, SliceEndpoint
from tests.integration.moto_support import moto_reset_with_group
from tests.servers import RecordingServer

pytestmark = pytest.mark.integration

MODEL = "llama-3.1-8b"
TIMEOUT_S = 30
REGION = "us-east-1"


# ================================================================== the simulator


@dataclass
class Simulator:
    fleet: Fleet
    replicas: ReplicaHTTPServer
    api: FleetHTTPServer
    endpoints_file: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.api.port}"

    @property
    def chat(self) -> SimulatedDeployment:
        return self.fleet.get("llm", "chat")

    def step(self, seconds: float) -> None:
        self.fleet.step_to(self.fleet.now + seconds)
        self.replicas.refresh()

    def members(self) -> dict[str, str]:
        found = simulator_members(namespace="llm", name="chat", base_url=self.url)
        return {m.name: m.state for m in found.members}


@pytest.fixture
def simulator(tmp_path: Path) -> Iterator[Simulator]:
    fleet = Fleet(
        [
            SimulatedDeployment("chat", MODEL, "llm", "A100-80GB", 2, ()),
            SimulatedDeployment("code", MODEL, "llm", "A100-80GB", 1, ()),
        ]
    )
    endpoints_file = tmp_path / "replicas.json"
    replicas = ReplicaHTTPServer(fleet, tick_s=0.005, endpoints_file=endpoints_file)
    replicas.start()
    api, _ = serve(fleet, endpoints=replicas.endpoints)
    try:
        yield Simulator(fleet, replicas, api, endpoints_file)
    finally:
        api.stop()
        replicas.stop()


def _stream(url: str, done: list[str]) -> threading.Thread:
    """A streamed completion in the background; ``done`` gets its last event."""

    def consume() -> None:
        body = {"model": MODEL, "prompt": "hello", "stream": True, "max_tokens": 100}
        last = ""
        try:
            with requests.post(url, json=body, stream=True, timeout=TIMEOUT_S) as response:
                for line in response.iter_lines():
                    if line.startswith(b"data: "):
                        last = line[len(b"data: ") :].decode()
        except requests.RequestException:
            last = "connection cut"
        done.append(last)

    thread = threading.Thread(target=consume, daemon=True)
    thread.start()
    return thread


def _wait_outstanding(simulator: Simulator, pod: str) -> None:
    for _ in range(2000):
        with simulator.fleet.lock:
            replica = simulator.chat.find_replica(pod)
            if replica is not None and replica.outstanding:
                return
        threading.Event().wait(0.005)
    raise AssertionError(f"{pod} never received the request")


def test_simulator_members__two_ready_replicas__serving_at_ports_that_answer(
    simulator: Simulator,
) -> None:
    found = simulator_members(namespace="llm", name="chat", base_url=simulator.url)

    assert [(m.name, m.state) for m in found.members] == [
        ("chat-0", "serving"),
        ("chat-1", "serving"),
    ]
    assert found.serving == found.members
    assert "/endpoints" in found.source
    for member in found.members:
        response = requests.get(f"http://{member.endpoint}/health", timeout=TIMEOUT_S)
        assert response.status_code == 200
        assert response.headers["X-Replica"] == member.name


def test_simulator_members__scale_up__new_replica_loading_until_its_cold_start_ends(
    simulator: Simulator,
) -> None:
    with simulator.fleet.lock:
        simulator.chat.scale(3)
    simulator.replicas.refresh()

    assert simulator.members() == {"chat-0": "serving", "chat-1": "serving", "chat-2": "loading"}
    loading = next(
        m
        for m in simulator_members(namespace="llm", name="chat", base_url=simulator.url).members
        if m.state == "loading"
    )
    assert requests.get(f"http://{loading.endpoint}/health", timeout=TIMEOUT_S).status_code == 503

    simulator.step(simulator.chat.profile.cold_start_s)

    assert simulator.members() == {"chat-0": "serving", "chat-1": "serving", "chat-2": "serving"}


def test_simulator_members__chosen_replica_removed_with_drain__draining_then_gone(
    simulator: Simulator,
) -> None:
    done: list[str] = []
    members = simulator_members(namespace="llm", name="chat", base_url=simulator.url)
    # chat-1 serves a stream; chosen by load, chat-0 (idle) would go. Choose chat-1 on
    # purpose (as if chat-0 held more) and check the simulator removes exactly it.
    thread = _stream(f"http://{members.members[1].endpoint}/v1/completions", done)
    _wait_outstanding(simulator, "chat-1")
    chosen = members_to_remove(members.members, 1, load={"chat-0": 5.0, "chat-1": 1.0})
    assert [m.name for m in chosen] == ["chat-1"]

    SimulatedActuator(simulator.url).set_replicas(
        ScaleTarget("simulated", "llm", "chat"),
        1,
        idempotency_key="drain-1",
        remove=[m.name for m in chosen],
        drain_s=600.0,
    )
    simulator.replicas.refresh()

    assert simulator.members() == {"chat-0": "serving", "chat-1": "draining"}
    simulator.step(60.0)
    thread.join(TIMEOUT_S)
    assert done == ["[DONE]"]
    for _ in range(2000):
        if simulator.members() == {"chat-0": "serving"}:
            break
        threading.Event().wait(0.005)
    assert simulator.members() == {"chat-0": "serving"}


def test_simulator_members__endpoints_file__same_members_as_the_api(
    simulator: Simulator,
) -> None:
    with simulator.fleet.lock:
        simulator.chat.scale(3)
    simulator.replicas.refresh()

    from_file = simulator_members(
        namespace="llm", name="chat", endpoints_file=simulator.endpoints_file
    )
    from_api = simulator_members(namespace="llm", name="chat", base_url=simulator.url)

    assert from_file.members == from_api.members
    assert len(from_file.members) == 3
    assert str(simulator.endpoints_file) in from_file.source


def test_simulator_members__other_deployment__only_its_replicas(simulator: Simulator) -> None:
    found = simulator_members(namespace="llm", name="code", base_url=simulator.url)

    assert [m.name for m in found.members] == ["code-0"]


@pytest.mark.django_db
def test_members_of__simulated_deployment__read_from_the_simulator(
    simulator: Simulator,
) -> None:
    deployment = DeploymentFactory(
        name="chat", cluster=None, target_kind="simulated", target_namespace="llm"
    )

    found = members_of(deployment=deployment, fleetsim_url=simulator.url)

    assert [m.name for m in found.serving] == ["chat-0", "chat-1"]


def test_simulator_members__nothing_listening__retryable() -> None:
    with pytest.raises(MembershipError) as info:
        simulator_members(namespace="llm", name="chat", base_url="http://127.0.0.1:9", timeout_s=2)

    assert (info.value.retryable, info.value.reason) == (True, "unreachable")


def test_simulator_members__replicas_not_served_over_http__permanent() -> None:
    api, port = serve(Fleet([SimulatedDeployment("chat", MODEL, "llm", "A100-80GB", 1, ())]))
    try:
        with pytest.raises(MembershipError) as info:
            simulator_members(namespace="llm", name="chat", base_url=f"http://127.0.0.1:{port}")
    finally:
        api.stop()

    assert (info.value.retryable, info.value.reason) == (False, "not-served")


def test_simulator_members__endpoints_file_not_written_yet__retryable(tmp_path: Path) -> None:
    with pytest.raises(MembershipError) as info:
        simulator_members(namespace="llm", name="chat", endpoints_file=tmp_path / "none.json")

    assert info.value.retryable


@pytest.mark.parametrize(
    ("status", "body", "retryable", "reason"),
    [
        (503, b"busy", True, "server-error"),
        (200, b"<html>proxy</html>", True, "unexpected-response"),
        (200, b'{"replicas": []}', True, "unexpected-response"),
        (
            200,
            b'{"endpoints": [{"namespace": "llm", "deployment": "chat"}]}',
            True,
            "unexpected-response",
        ),
    ],
    ids=["5xx", "not-json", "no-endpoints-key", "endpoint-missing-fields"],
)
def test_simulator_members__odd_answer__error_says_whether_retrying_helps(
    status: int, body: bytes, retryable: bool, reason: str
) -> None:
    server = RecordingServer(lambda request: (status, {"Content-Type": "application/json"}, body))
    try:
        with pytest.raises(MembershipError) as info:
            simulator_members(namespace="llm", name="chat", base_url=server.url)
    finally:
        server.stop()

    assert (info.value.retryable, info.value.reason) == (retryable, reason)
    assert server.hits == ["/endpoints"]


# ================================================================== Kubernetes

NS = "llm"


def _kube(kubeconfig: Path, timeout_s: float = 2.0) -> KubernetesClient:
    api = build_api_client(kubeconfig_path=str(kubeconfig), kube_context="fake")
    return KubernetesClient(api, timeout_s=timeout_s)


@pytest.fixture
def kube(kubeconfig: Path) -> KubernetesClient:
    return _kube(kubeconfig)


def _chat_slices(apiserver: FakeApiServer) -> None:
    apiserver.add_endpoint_slice(
        NS,
        "chat-abc12",
        service="chat",
        endpoints=[
            SliceEndpoint("chat-7d9f-a", "10.1.0.1", zone="us-east-1a"),
            SliceEndpoint("chat-7d9f-b", "10.1.0.2", ready=None),
            SliceEndpoint("chat-7d9f-c", "10.1.0.3", ready=False, serving=False),
        ],
    )
    apiserver.add_endpoint_slice(
        NS,
        "chat-def34",
        service="chat",
        endpoints=[
            SliceEndpoint("chat-7d9f-d", "10.1.0.4", ready=False, serving=True, terminating=True),
            SliceEndpoint("chat-7d9f-e", "10.1.0.5", ready=False, serving=False, terminating=True),
        ],
    )
    # Another Service's slice in the same namespace is not read.
    apiserver.add_endpoint_slice(
        NS, "code-x", service="code", endpoints=[SliceEndpoint("code-1", "10.2.0.1")]
    )


def test_kubernetes_members__slices_of_the_service__states_from_conditions(
    apiserver: FakeApiServer, kube: KubernetesClient
) -> None:
    _chat_slices(apiserver)

    found = kubernetes_members(client=kube, namespace=NS, service="chat")

    assert [(m.name, m.endpoint, m.state) for m in found.members] == [
        ("chat-7d9f-a", "10.1.0.1:8000", "serving"),
        ("chat-7d9f-b", "10.1.0.2:8000", "serving"),
        ("chat-7d9f-c", "10.1.0.3:8000", "loading"),
        ("chat-7d9f-d", "10.1.0.4:8000", "draining"),
        ("chat-7d9f-e", "10.1.0.5:8000", "down"),
    ]
    assert found.members[0].zone == "us-east-1a"
    assert found.source == f"EndpointSlices of Service {NS}/chat"
    (request,) = apiserver.requests_to("GET", "/endpointslices")
    assert request.path == f"/apis/discovery.k8s.io/v1/namespaces/{NS}/endpointslices"
    assert request.query["labelSelector"] == ["kubernetes.io/service-name=chat"]


def test_kubernetes_members__dual_stack__one_member_per_pod_with_its_ipv4(
    apiserver: FakeApiServer, kube: KubernetesClient
) -> None:
    apiserver.add_endpoint_slice(
        NS,
        "chat-a-v6",
        service="chat",
        address_type="IPv6",
        endpoints=[SliceEndpoint("chat-a", "fd00::1"), SliceEndpoint("chat-b", "fd00::2")],
    )
    apiserver.add_endpoint_slice(
        NS, "chat-b-v4", service="chat", endpoints=[SliceEndpoint("chat-a", "10.1.0.1")]
    )

    found = kubernetes_members(client=kube, namespace=NS, service="chat")

    assert [m.endpoint for m in found.members] == ["10.1.0.1:8000", "[fd00::2]:8000"]


@pytest.mark.parametrize(
    ("ports", "wanted", "expected"),
    [
        ([("metrics", 9090), ("http", 8000)], "", 8000),
        ([("metrics", 9090), ("openai", 8080)], "openai", 8080),
        ([("metrics", 9090), ("openai", 8080)], "8080", 8080),
        ([("", 8001)], "", 8001),
    ],
)
def test_kubernetes_members__several_ports__the_chosen_one(
    apiserver: FakeApiServer,
    kube: KubernetesClient,
    ports: list[tuple[str, int]],
    wanted: str,
    expected: int,
) -> None:
    apiserver.add_endpoint_slice(
        NS, "chat-1", service="chat", ports=ports, endpoints=[SliceEndpoint("a", "10.1.0.1")]
    )

    found = kubernetes_members(client=kube, namespace=NS, service="chat", port=wanted)

    assert [m.port for m in found.members] == [expected]


def test_kubernetes_members__several_ports_none_http__permanent_misconfigured(
    apiserver: FakeApiServer, kube: KubernetesClient
) -> None:
    apiserver.add_endpoint_slice(
        NS,
        "chat-1",
        service="chat",
        ports=[("metrics", 9090), ("openai", 8080)],
        endpoints=[SliceEndpoint("a", "10.1.0.1")],
    )

    with pytest.raises(MembershipError) as info:
        kubernetes_members(client=kube, namespace=NS, service="chat")

    assert (info.value.retryable, info.value.reason) == (False, "misconfigured")
    assert LABEL_PORT in info.value.message


def test_kubernetes_members__no_slices__empty(kube: KubernetesClient) -> None:
    assert kubernetes_members(client=kube, namespace=NS, service="chat").members == ()


@pytest.mark.parametrize(
    ("status", "retryable", "reason"),
    [(500, True, "server-error"), (429, True, "throttled"), (403, False, "forbidden")],
)
def test_kubernetes_members__api_error__retryable_as_the_status_says(
    apiserver: FakeApiServer, kube: KubernetesClient, status: int, retryable: bool, reason: str
) -> None:
    apiserver.fail_next(status, path_contains="/endpointslices")

    with pytest.raises(MembershipError) as info:
        kubernetes_members(client=kube, namespace=NS, service="chat")

    assert (info.value.retryable, info.value.reason) == (retryable, reason)


def test_kubernetes_members__api_server_hangs__retryable_timeout(
    apiserver: FakeApiServer, kubeconfig: Path
) -> None:
    client = _kube(kubeconfig, timeout_s=0.3)
    apiserver.hang_next(5.0, path_contains="/endpointslices")

    with pytest.raises(MembershipError) as info:
        kubernetes_members(client=client, namespace=NS, service="chat")

    assert (info.value.retryable, info.value.reason) == (True, "timeout")


@pytest.mark.django_db
@pytest.mark.usefixtures("allow_loopback_outbound")
def test_members_of__k8s_deployment_with_service_label__that_services_slices(
    apiserver: FakeApiServer,
) -> None:
    _chat_slices(apiserver)
    apiserver.add_endpoint_slice(
        NS, "chat-gw", service="chat-vllm", endpoints=[SliceEndpoint("chat-x", "10.3.0.1")]
    )
    cluster = ClusterFactory(
        kube_context="prod",
        credentials={"kubeconfig": kubeconfig_document(server=apiserver.url, token=TOKEN)},
    )
    deployment = DeploymentFactory(
        team=cluster.team,
        cluster=cluster,
        name="chat",
        target_namespace=NS,
        labels={LABEL_SERVICE: "chat-vllm"},
    )

    found = members_of(deployment=deployment)

    assert [m.endpoint for m in found.serving] == ["10.3.0.1:8000"]


# ================================================================== AWS


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.delenv("AWS_PROFILE", raising=False)


@pytest.fixture
def moto(moto_url: str, aws_env: None) -> str:
    """moto with a 1..5 group "chat" at 2 instances."""
    moto_reset_with_group(moto_url, region=REGION, group="chat", template="gpu")
    return moto_url


@dataclass
class Aws:
    autoscaling: AutoScalingClient
    ec2: Ec2Client
    raw_autoscaling: Any
    raw_ec2: Any

    def instance_ids(self) -> list[str]:
        group = self.raw_autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=["chat"])
        return sorted(i["InstanceId"] for i in group["AutoScalingGroups"][0]["Instances"])

    def private_ips(self) -> dict[str, str]:
        answer = self.raw_ec2.describe_instances(InstanceIds=self.instance_ids())
        return {
            i["InstanceId"]: i["PrivateIpAddress"]
            for r in answer["Reservations"]
            for i in r["Instances"]
        }


@pytest.fixture
def aws(moto: str) -> Aws:
    session = build_session(region=REGION, credentials_source="environment")
    raw_autoscaling = session_client(session, "autoscaling", endpoint_url=moto)
    raw_ec2 = session_client(session, "ec2", endpoint_url=moto)
    return Aws(AutoScalingClient(raw_autoscaling), Ec2Client(raw_ec2), raw_autoscaling, raw_ec2)


def test_asg_members__two_in_service__serving_at_their_private_addresses(aws: Aws) -> None:
    found = asg_members(autoscaling=aws.autoscaling, ec2=aws.ec2, group="chat", port=8000)

    ips = aws.private_ips()
    assert len(ips) == 2
    assert [(m.name, m.address, m.port, m.state) for m in found.members] == [
        (instance, ips[instance], 8000, "serving") for instance in sorted(ips)
    ]
    assert all(m.zone == f"{REGION}a" and m.started_at is not None for m in found.members)
    assert found.source == "Auto Scaling group chat"


def test_asg_members__standby_and_unhealthy__standby_left_out_unhealthy_down(aws: Aws) -> None:
    aws.raw_autoscaling.update_auto_scaling_group(AutoScalingGroupName="chat", DesiredCapacity=3)
    standby, unhealthy, healthy = aws.instance_ids()
    aws.raw_autoscaling.enter_standby(
        AutoScalingGroupName="chat", InstanceIds=[standby], ShouldDecrementDesiredCapacity=True
    )
    aws.raw_autoscaling.set_instance_health(InstanceId=unhealthy, HealthStatus="Unhealthy")

    found = asg_members(autoscaling=aws.autoscaling, ec2=aws.ec2, group="chat", port=8000)

    states = {m.name: m.state for m in found.members}
    assert states == {unhealthy: "down", healthy: "serving"}


def test_ec2_describe_instances__an_id_ec2_no_longer_knows__left_out_not_an_error(
    aws: Aws,
) -> None:
    known = aws.instance_ids()

    found = aws.ec2.describe_instances(["i-0123456789abcdef0", *known])

    assert sorted(found) == known
    assert {i.private_ip for i in found.values()} == set(aws.private_ips().values())


def test_asg_members__unknown_group__permanent_not_found(aws: Aws) -> None:
    with pytest.raises(MembershipError) as info:
        asg_members(autoscaling=aws.autoscaling, ec2=aws.ec2, group="nope", port=8000)

    assert (info.value.retryable, info.value.reason) == (False, "not-found")


def test_asg_members__ec2_unreachable__retryable(aws: Aws) -> None:
    session = build_session(region=REGION, credentials_source="environment")
    dead_ec2 = Ec2Client(
        session_client(session, "ec2", endpoint_url="http://127.0.0.1:9", connect_timeout_s=1)
    )

    with pytest.raises(MembershipError) as info:
        asg_members(autoscaling=aws.autoscaling, ec2=dead_ec2, group="chat", port=8000)

    assert (info.value.retryable, info.value.reason) == (True, "unreachable")


def _asg_deployment(**fields: Any) -> Any:
    """Deployment "chat" of group "chat", reached with its team's access key."""
    cluster = ClusterFactory(
        kind="aws",
        kube_context="",
        aws_region=REGION,
        aws_credentials_source="access-key",
        credentials={"aws_access_key_id": "AKIATEAM", "aws_secret_access_key": "team-secret"},
    )
    return DeploymentFactory(
        team=cluster.team, cluster=cluster, name="chat", target_kind="aws-asg", **fields
    )


@pytest.mark.django_db
def test_members_of__asg_deployment_with_port_label__members_on_that_port(
    aws: Aws, moto: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # botocore's own setting for a custom endpoint: every client built here goes to moto.
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto)
    deployment = _asg_deployment(labels={LABEL_PORT: "8080"})

    found = members_of(deployment=deployment)

    assert sorted(m.endpoint for m in found.serving) == sorted(
        f"{ip}:8080" for ip in aws.private_ips().values()
    )


@pytest.mark.django_db
@pytest.mark.parametrize("port", ["http", "²", "80²", "0", "65536", "9" * 5000])
def test_members_of__asg_deployment_with_bad_port_label__permanent_misconfigured(
    moto: str, port: str
) -> None:
    # "²" passed str.isdigit() and int() refused it: a gateway's configuration answered 500.
    deployment = _asg_deployment(labels={LABEL_PORT: port})

    with pytest.raises(MembershipError) as info:
        members_of(deployment=deployment)

    assert (info.value.retryable, info.value.reason) == (False, "misconfigured")


@pytest.mark.django_db
def test_members_of__process_identity_not_approved__refused_before_any_call(
    aws: Aws, moto: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto)
    deployment = _asg_deployment()
    deployment.cluster.aws_credentials_source = "default-chain"
    deployment.cluster.credentials = {}
    deployment.cluster.save()

    with pytest.raises(MembershipError) as info:
        members_of(deployment=deployment)

    assert (info.value.retryable, info.value.reason) == (False, "credentials-refused")
    assert "no superuser approved" in info.value.message
