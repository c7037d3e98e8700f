"""The Kubernetes actuator with the real ``kubernetes`` client against a fake API server.

The client is built from a kubeconfig file through the production factory, so each test
exercises kubeconfig loading, URL building, (de)serialization, timeouts and error
mapping of the real SDK; only the API server is a stand-in (k8s_fake_apiserver).
"""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest

from apps.autoscaling.actuators import ActuatorError, ScaleStatus, ScaleTarget, apply_with_retry
from apps.autoscaling.actuators.kubernetes import (
    POD_DELETION_COST,
    KubernetesActuator,
    pod_deletion_costs,
)
from apps.integrations.kubernetes import KubernetesClient, KubernetesError, build_api_client
from tests.integration.k8s_fake_apiserver import FakeApiServer

NS = "llm"
CHAT = ScaleTarget("k8s-deployment", NS, "chat")
BASE = 0.01  # retry base delay: small, the backoff shape is what matters here


class Sleeps(list[float]):
    def __call__(self, seconds: float) -> None:
        self.append(seconds)
        time.sleep(seconds)


def make_actuator(kubeconfig: Path, *, timeout_s: float = 2.0) -> KubernetesActuator:
    api_client = build_api_client(kubeconfig_path=str(kubeconfig), kube_context="fake")
    return KubernetesActuator(KubernetesClient(api_client, timeout_s=timeout_s))


@pytest.fixture
def actuator(kubeconfig: Path) -> KubernetesActuator:
    return make_actuator(kubeconfig)


@pytest.fixture
def chat(apiserver: FakeApiServer) -> None:
    apiserver.add_workload("deployment", NS, "chat", replicas=3, ready_replicas=2)


# ------------------------------------------------------------------------ reads


@pytest.mark.usefixtures("chat")
def test_get_scale__deployment__spec_from_scale_and_ready_from_deployment(
    actuator: KubernetesActuator, apiserver: FakeApiServer
) -> None:
    status = actuator.get_scale(CHAT)

    assert status == ScaleStatus(spec_replicas=3, ready_replicas=2)
    paths = [(r.method, r.path) for r in apiserver.requests]
    assert ("GET", f"/apis/apps/v1/namespaces/{NS}/deployments/chat/scale") in paths
    assert ("GET", f"/apis/apps/v1/namespaces/{NS}/deployments/chat") in paths


def test_get_scale__statefulset__reads_statefulset_scale(
    actuator: KubernetesActuator, apiserver: FakeApiServer
) -> None:
    apiserver.add_workload("statefulset", NS, "embed", replicas=4, ready_replicas=4)

    status = actuator.get_scale(ScaleTarget("k8s-statefulset", NS, "embed"))

    assert status == ScaleStatus(spec_replicas=4, ready_replicas=4)
    assert apiserver.requests_to("GET", "/statefulsets/embed/scale")


@pytest.mark.usefixtures("chat")
def test_get_scale__hpa_targets_same_deployment__warning(
    actuator: KubernetesActuator, apiserver: FakeApiServer
) -> None:
    apiserver.add_hpa(NS, "chat-hpa", target_kind="Deployment", target_name="chat", max_replicas=8)
    apiserver.add_hpa(NS, "code-hpa", target_kind="Deployment", target_name="code")
    apiserver.add_hpa(NS, "chat-sts", target_kind="StatefulSet", target_name="chat")

    status = actuator.get_scale(CHAT)

    (warning,) = status.warnings
    assert "HorizontalPodAutoscaler llm/chat-hpa also scales Deployment llm/chat" in warning
    assert "max 8" in warning
    assert apiserver.requests_to("GET", f"/apis/autoscaling/v2/namespaces/{NS}/")


@pytest.mark.usefixtures("chat")
def test_apply_with_retry__hpa_present__warning_in_result(
    actuator: KubernetesActuator, apiserver: FakeApiServer
) -> None:
    apiserver.add_hpa(NS, "chat-hpa", target_kind="Deployment", target_name="chat")

    status = apply_with_retry(actuator, CHAT, 4, idempotency_key="k", sleep=Sleeps())

    assert status.spec_replicas == 4
    assert any("chat-hpa" in w for w in status.warnings)


@pytest.mark.usefixtures("chat")
def test_get_scale__hpa_listing_forbidden__warning_not_error(
    actuator: KubernetesActuator, apiserver: FakeApiServer
) -> None:
    apiserver.fail_next(403, path_contains="horizontalpodautoscalers")

    status = actuator.get_scale(CHAT)

    assert status.spec_replicas == 3
    (warning,) = status.warnings
    assert "could not check for HorizontalPodAutoscalers" in warning


# ----------------------------------------------------------------------- writes


@pytest.mark.usefixtures("chat")
def test_apply_with_retry__new_count__merge_patch_with_read_resource_version(
    actuator: KubernetesActuator, apiserver: FakeApiServer
) -> None:
    status = apply_with_retry(actuator, CHAT, 5, idempotency_key="d-1", sleep=Sleeps())

    assert status.spec_replicas == 5
    (patch,) = apiserver.requests_to("PATCH")
    assert patch.path == f"/apis/apps/v1/namespaces/{NS}/deployments/chat/scale"
    assert patch.content_type == "application/merge-patch+json"
    assert patch.body == {"spec": {"replicas": 5}, "metadata": {"resourceVersion": "1"}}
    assert apiserver.workload("deployment", NS, "chat").replicas == 5


@pytest.mark.usefixtures("chat")
def test_apply_with_retry__applied_again__noop_without_patch(
    actuator: KubernetesActuator, apiserver: FakeApiServer
) -> None:
    apply_with_retry(actuator, CHAT, 5, idempotency_key="d-1", sleep=Sleeps())
    apiserver.clear_requests()

    status = apply_with_retry(actuator, CHAT, 5, idempotency_key="d-1", sleep=Sleeps())

    assert status.spec_replicas == 5
    assert apiserver.requests_to("PATCH") == []


def test_apply_with_retry__statefulset__patches_statefulset_scale(
    actuator: KubernetesActuator, apiserver: FakeApiServer
) -> None:
    apiserver.add_workload("statefulset", NS, "embed", replicas=2)

    apply_with_retry(actuator, ScaleTarget("k8s-statefulset", NS, "embed"), 3, idempotency_key="k")

    (patch,) = apiserver.requests_to("PATCH")
    assert patch.path.endswith("/statefulsets/embed/scale")
    assert apiserver.workload("statefulset", NS, "embed").replicas == 3


@pytest.mark.usefixtures("chat")
def test_apply_with_retry__concurrent_write__conflict_then_reread_and_succeed(
    actuator: KubernetesActuator, apiserver: FakeApiServer
) -> None:
    apiserver.write_concurrently_before_next_patch("deployment", NS, "chat", replicas=7)
    sleeps = Sleeps()

    status = apply_with_retry(
        actuator, CHAT, 5, idempotency_key="k", base_delay_s=BASE, sleep=sleeps
    )

    assert status.spec_replicas == 5
    first, second = apiserver.requests_to("PATCH")
    assert first.status == 409
    assert first.body["metadata"]["resourceVersion"] == "1"
    # The re-read saw the other writer's version and wrote against it.
    assert second.status == 200
    assert second.body["metadata"]["resourceVersion"] == "2"
    assert len(sleeps) == 1


@pytest.mark.usefixtures("chat")
def test_apply_with_retry__injected_409__reread_and_succeed(
    actuator: KubernetesActuator, apiserver: FakeApiServer
) -> None:
    apiserver.fail_next(409, method="PATCH")

    status = apply_with_retry(
        actuator, CHAT, 6, idempotency_key="k", base_delay_s=BASE, sleep=Sleeps()
    )

    assert status.spec_replicas == 6
    assert [r.status for r in apiserver.requests_to("PATCH")] == [409, 200]
    # Attempt two started from a fresh read of the scale.
    assert len(apiserver.requests_to("GET", "/deployments/chat/scale")) >= 3


@pytest.mark.usefixtures("chat")
def test_apply_with_retry__two_500s__retried_with_growing_backoff_then_succeeds(
    actuator: KubernetesActuator, apiserver: FakeApiServer
) -> None:
    apiserver.fail_next(500, 2)
    sleeps = Sleeps()

    status = apply_with_retry(
        actuator, CHAT, 4, idempotency_key="k", base_delay_s=BASE, sleep=sleeps
    )

    assert status.spec_replicas == 4
    assert [r.status for r in apiserver.requests[:3]] == [500, 500, 200]
    assert len(sleeps) == 2
    assert sleeps[0] < sleeps[1]


@pytest.mark.usefixtures("chat")
def test_apply_with_retry__request_hangs__times_out_and_retries(
    kubeconfig: Path, apiserver: FakeApiServer
) -> None:
    actuator = make_actuator(kubeconfig, timeout_s=0.3)
    # The server holds the read far longer than the client's timeout (stop() releases it).
    apiserver.hang_next(120.0, method="GET", path_contains="/scale")
    sleeps = Sleeps()

    status = apply_with_retry(
        actuator, CHAT, 4, idempotency_key="k", base_delay_s=BASE, sleep=sleeps
    )

    assert status.spec_replicas == 4
    # The retry succeeded while the server still held the first read: the client gave up
    # on its own timeout instead of waiting for the server.
    assert apiserver.hanging == 1
    assert len(sleeps) == 1
    reads = apiserver.requests_to("GET", "/deployments/chat/scale")
    # The hung read was sent once: no hidden retries inside urllib3.
    assert [r.status for r in reads][:2] == [0, 200]


@pytest.mark.usefixtures("chat")
def test_get_scale__request_hangs__retryable_timeout_error(
    kubeconfig: Path, apiserver: FakeApiServer
) -> None:
    actuator = make_actuator(kubeconfig, timeout_s=0.3)
    apiserver.hang_next(3.0)

    with pytest.raises(ActuatorError) as info:
        actuator.get_scale(CHAT)

    assert info.value.retryable
    assert "did not answer within 0.3s" in str(info.value)
    assert len(apiserver.requests) == 1


@pytest.mark.usefixtures("chat")
def test_apply_with_retry__persistent_500__fails_retryable_after_attempts(
    actuator: KubernetesActuator, apiserver: FakeApiServer
) -> None:
    apiserver.fail_next(500, 100)

    with pytest.raises(ActuatorError) as info:
        apply_with_retry(
            actuator, CHAT, 4, idempotency_key="k", attempts=3, base_delay_s=BASE, sleep=Sleeps()
        )

    assert info.value.retryable
    assert not info.value.conflict
    assert "API server error (500)" in str(info.value)
    assert "gave up after 3 attempts" in str(info.value)
    assert len(apiserver.requests) == 3
    assert apiserver.workload("deployment", NS, "chat").replicas == 3


@pytest.mark.usefixtures("chat")
def test_apply_with_retry__403__permanent_at_once(
    actuator: KubernetesActuator, apiserver: FakeApiServer
) -> None:
    apiserver.fail_next(403)
    sleeps = Sleeps()

    with pytest.raises(ActuatorError) as info:
        apply_with_retry(actuator, CHAT, 4, idempotency_key="k", sleep=sleeps)

    assert info.value.permanent
    assert info.value.permanent_reason == "forbidden"
    assert "RBAC" in str(info.value)
    assert len(apiserver.requests) == 1
    assert sleeps == []


def test_apply_with_retry__unknown_deployment__404_permanent_at_once(
    actuator: KubernetesActuator, apiserver: FakeApiServer
) -> None:
    with pytest.raises(ActuatorError) as info:
        apply_with_retry(
            actuator, ScaleTarget("k8s-deployment", NS, "ghost"), 2, idempotency_key="k"
        )

    assert info.value.permanent_reason == "not-found"
    assert 'deployments.apps "ghost" not found' in str(info.value)
    assert len(apiserver.requests) == 1


@pytest.mark.usefixtures("chat")
def test_apply_with_retry__422_on_patch__permanent_at_once(
    actuator: KubernetesActuator, apiserver: FakeApiServer
) -> None:
    apiserver.fail_next(422, method="PATCH")

    with pytest.raises(ActuatorError) as info:
        apply_with_retry(actuator, CHAT, 4, idempotency_key="k", sleep=Sleeps())

    assert info.value.permanent_reason == "invalid"
    assert len(apiserver.requests_to("PATCH")) == 1


def test_set_replicas__wrong_target_kind__permanent(actuator: KubernetesActuator) -> None:
    with pytest.raises(ActuatorError) as info:
        actuator.set_replicas(ScaleTarget("aws-asg", "", "group"), 2, idempotency_key="k")

    assert info.value.permanent_reason == "unsupported-target"


# --------------------------------------------------------- choosing the victims


def test_apply_with_retry__scale_down_with_pod_load__least_busy_pods_get_lowest_cost(
    actuator: KubernetesActuator, apiserver: FakeApiServer
) -> None:
    labels = {"app.kubernetes.io/name": "chat", "tier": "inference"}
    apiserver.add_workload("deployment", NS, "chat", replicas=4, labels=labels)
    for pod in ("chat-a", "chat-b", "chat-c", "chat-d"):
        apiserver.add_pod(NS, pod, labels)
    other = apiserver.add_pod(NS, "code-a", {"app.kubernetes.io/name": "code"})
    load = {"chat-a": 5.0, "chat-b": 1.0, "chat-c": 3.0, "chat-d": 0.0, "code-a": 0.0}

    status = apply_with_retry(actuator, CHAT, 2, idempotency_key="k", sleep=Sleeps(), pod_load=load)

    assert status.spec_replicas == 2
    costs = {
        name: pod.annotations.get(POD_DELETION_COST) for (_, name), pod in apiserver.pods.items()
    }
    # The two idlest get negative costs (the idlest lowest), so only they rank below a
    # pod without the annotation; the others rank by load from 0 up.
    assert costs == {"chat-a": "1", "chat-b": "-1", "chat-c": "0", "chat-d": "-2", "code-a": None}
    assert other.annotations == {}
    (pod_list,) = apiserver.requests_to("GET", f"/api/v1/namespaces/{NS}/pods")
    assert pod_list.query["labelSelector"] == ["app.kubernetes.io/name=chat,tier=inference"]
    # Every pod annotation was written before the scale-down itself.
    patches = apiserver.requests_to("PATCH")
    assert patches[-1].path.endswith("/deployments/chat/scale")
    annotated = {r.path.rsplit("/", 1)[1]: r.body for r in patches[:-1]}
    assert annotated == {
        pod: {"metadata": {"annotations": {POD_DELETION_COST: costs[pod]}}}
        for pod in ("chat-a", "chat-b", "chat-c", "chat-d")
    }
    assert {r.content_type for r in patches[:-1]} == {"application/merge-patch+json"}


def test_prepare_scale_down__annotations_already_right__no_pod_patches(
    actuator: KubernetesActuator, apiserver: FakeApiServer
) -> None:
    labels = {"app.kubernetes.io/name": "chat"}
    apiserver.add_workload("deployment", NS, "chat", replicas=2, labels=labels)
    apiserver.add_pod(NS, "chat-a", labels)
    apiserver.add_pod(NS, "chat-b", labels)
    load = {"chat-a": 2.0, "chat-b": 1.0}
    actuator.prepare_scale_down(CHAT, 1, load)
    apiserver.clear_requests()

    actuator.prepare_scale_down(CHAT, 1, load)

    assert apiserver.requests_to("PATCH") == []


def test_prepare_scale_down__statefulset__leaves_pods_alone(
    actuator: KubernetesActuator, apiserver: FakeApiServer
) -> None:
    labels = {"app.kubernetes.io/name": "embed"}
    apiserver.add_workload("statefulset", NS, "embed", replicas=2, labels=labels)
    apiserver.add_pod(NS, "embed-0", labels)
    apiserver.add_pod(NS, "embed-1", labels)

    actuator.prepare_scale_down(
        ScaleTarget("k8s-statefulset", NS, "embed"), 1, {"embed-0": 0.0, "embed-1": 9.0}
    )

    assert apiserver.requests == []


def test_pod_deletion_costs__unmeasured_pods__rank_after_measured() -> None:
    costs = pod_deletion_costs(["new", "busy", "idle"], {"busy": 9.0, "idle": 0.5}, 1)

    assert costs == {"idle": -1, "busy": 0, "new": 1}


# --------------------------------------------------------- client construction


@pytest.mark.usefixtures("chat")
def test_build_api_client__context_not_given__kubeconfig_current_context_used(
    kubeconfig: Path,
) -> None:
    # The kubeconfig's current context ("other") has a user the server rejects.
    api_client = build_api_client(kubeconfig_path=str(kubeconfig))
    actuator = KubernetesActuator(KubernetesClient(api_client, timeout_s=2.0))

    with pytest.raises(ActuatorError) as info:
        actuator.get_scale(CHAT)

    assert info.value.permanent_reason == "unauthorized"


def test_build_api_client__unknown_context__misconfigured_error(kubeconfig: Path) -> None:
    with pytest.raises(KubernetesError) as info:
        build_api_client(kubeconfig_path=str(kubeconfig), kube_context="prod")

    assert not info.value.retryable
    assert info.value.reason == "misconfigured"
    assert "prod" in str(info.value)


def test_build_api_client__missing_kubeconfig__misconfigured_error(tmp_path: Path) -> None:
    with pytest.raises(KubernetesError) as info:
        build_api_client(kubeconfig_path=str(tmp_path / "nope"), kube_context="fake")

    assert info.value.reason == "misconfigured"


def test_build_api_client__in_cluster_outside_a_pod__misconfigured_error() -> None:
    with pytest.raises(KubernetesError) as info:
        build_api_client(in_cluster=True)

    assert info.value.reason == "misconfigured"
    assert "in-cluster service account" in str(info.value)


def test_get_scale__nothing_listening__retryable_unreachable(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = FakeApiServer()
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        '{"apiVersion": "v1", "kind": "Config",'
        f' "clusters": [{{"name": "c", "cluster": {{"server": "http://127.0.0.1:{port}"}}}}],'
        f' "users": [{{"name": "u", "user": {{"token": "{server.token}"}}}}],'
        ' "contexts": [{"name": "fake", "context": {"cluster": "c", "user": "u"}}],'
        ' "current-context": "fake"}'
    )

    with pytest.raises(ActuatorError) as info:
        make_actuator(kubeconfig).get_scale(CHAT)

    assert info.value.retryable
    assert "unreachable" in str(info.value)


@pytest.mark.parametrize(
    "content",
    [
        "clusters: [unclosed\n",  # not YAML
        "contexts: 5\ncurrent-context: fake\n",  # YAML, but a number where a list belongs
        "- just\n- a list\n",
    ],
)
def test_build_api_client__malformed_kubeconfig_file__misconfigured_error(
    tmp_path: Path, content: str
) -> None:
    path = tmp_path / "kubeconfig"
    path.write_text(content)

    with pytest.raises(KubernetesError) as info:
        build_api_client(kubeconfig_path=str(path), kube_context="fake")

    assert not info.value.retryable
    assert info.value.reason == "misconfigured"
    assert str(path) in str(info.value)


# The fake API server listens on 127.0.0.1: opt in to loopback destinations.
@pytest.mark.usefixtures("allow_loopback_outbound", "chat")
def test_build_api_client__kubeconfig_document__checked_then_used(
    apiserver: FakeApiServer, kubeconfig: Path
) -> None:
    api_client = build_api_client(kubeconfig=kubeconfig.read_text(), kube_context="fake")

    status = KubernetesActuator(KubernetesClient(api_client, timeout_s=2.0)).get_scale(CHAT)

    assert status.spec_replicas == 3


def test_build_api_client__two_sources__misconfigured_error(kubeconfig: Path) -> None:
    with pytest.raises(KubernetesError) as info:
        build_api_client(kubeconfig=kubeconfig.read_text(), kubeconfig_path=str(kubeconfig))

    assert info.value.reason == "misconfigured"
    assert "exactly one" in str(info.value)
