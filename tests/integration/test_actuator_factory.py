"""``actuator_for`` builds clients only from the cluster team's credentials, or from the
control plane's own identity where a superuser approved it; everything else is refused
before any request leaves.

Kubernetes runs against the local fake API server, which accepts only the bearer token
it was started with; AWS against moto in server mode, where the ``Authorization`` header
botocore signs shows whose access key a request carries.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from apps.autoscaling.actuators import ActuatorError
from apps.autoscaling.actuators.factory import actuator_for, scale_target_of
from tests.certificates import self_signed_certificate
from tests.factories.inventory import (
    INTERNAL_SERVERS,
    ClusterFactory,
    DeploymentFactory,
    kubeconfig_document,
)
from tests.integration.k8s_fake_apiserver import FakeApiServer
from tests.integration.moto_support import moto_reset_with_group

pytestmark = pytest.mark.django_db

TEAM_TOKEN = "alpha-team-token"
TEAM_KEY_ID = "AKIAALPHATEAMKEY0001"
REGION = "us-east-1"


@pytest.fixture
def apiserver() -> Iterator[FakeApiServer]:
    server = FakeApiServer(token=TEAM_TOKEN).start()
    server.add_workload("deployment", "llm", "chat", replicas=3, ready_replicas=2)
    try:
        yield server
    finally:
        server.stop()


def _k8s_deployment(**cluster_fields: Any) -> Any:
    cluster = ClusterFactory(**{"kube_context": "prod", **cluster_fields})
    return DeploymentFactory(
        team=cluster.team, cluster=cluster, name="chat", target_namespace="llm"
    )


def _refused(deployment: Any) -> ActuatorError:
    with pytest.raises(ActuatorError) as info:
        actuator_for(deployment)
    assert not info.value.retryable
    return info.value


# ------------------------------------------------------------------------ Kubernetes


# The fake API server listens on 127.0.0.1: opt in to loopback destinations.
@pytest.mark.usefixtures("allow_loopback_outbound")
def test_actuator_for__team_kubeconfig_secret__reads_scale_with_the_team_token(
    apiserver: FakeApiServer,
) -> None:
    deployment = _k8s_deployment(
        credentials={"kubeconfig": kubeconfig_document(server=apiserver.url, token=TEAM_TOKEN)}
    )

    status = actuator_for(deployment).get_scale(scale_target_of(deployment))

    assert (status.spec_replicas, status.ready_replicas) == (3, 2)
    assert apiserver.requests_to("GET", "/deployments/chat/scale")[0].status == 200


def _with_team_directory_kubeconfig(apiserver: FakeApiServer, tmp_path: Path, settings: Any):
    """A deployment whose cluster reads its kubeconfig (for the fake API server) from the
    team's directory under KUBECONFIG_ALLOWED_DIRS."""
    settings.KUBECONFIG_ALLOWED_DIRS = [str(tmp_path)]
    deployment = _k8s_deployment(credentials={})
    team_dir = tmp_path / deployment.team.slug
    team_dir.mkdir()
    (team_dir / "config").write_text(kubeconfig_document(server=apiserver.url, token=TEAM_TOKEN))
    deployment.cluster.kubeconfig_path = str(team_dir / "config")
    deployment.cluster.save()
    return deployment


# The fake API server listens on 127.0.0.1: opt in to loopback destinations.
@pytest.mark.usefixtures("allow_loopback_outbound")
def test_actuator_for__kubeconfig_file_in_team_directory__read_and_used(
    apiserver: FakeApiServer, tmp_path: Path, settings: Any
) -> None:
    deployment = _with_team_directory_kubeconfig(apiserver, tmp_path, settings)

    status = actuator_for(deployment).get_scale(scale_target_of(deployment))

    assert status.spec_replicas == 3


def test_actuator_for__team_file_replaced_by_symlink_out__refused_without_requests(
    apiserver: FakeApiServer, tmp_path: Path, settings: Any
) -> None:
    settings.KUBECONFIG_ALLOWED_DIRS = [str(tmp_path)]
    deployment = _k8s_deployment(credentials={})
    team_dir, elsewhere = tmp_path / deployment.team.slug, tmp_path / "other-team"
    team_dir.mkdir()
    elsewhere.mkdir()
    (elsewhere / "config").write_text(kubeconfig_document(server=apiserver.url, token=TEAM_TOKEN))
    (team_dir / "config").symlink_to(elsewhere / "config")
    deployment.cluster.kubeconfig_path = str(team_dir / "config")
    deployment.cluster.save()

    error = _refused(deployment)

    assert error.permanent_reason == "credentials-refused"
    assert apiserver.requests == []


def test_actuator_for__kubeconfig_paths_turned_off_after_save__refused(
    apiserver: FakeApiServer, tmp_path: Path, settings: Any
) -> None:
    settings.KUBECONFIG_ALLOWED_DIRS = []
    deployment = _k8s_deployment(credentials={}, kubeconfig_path=str(tmp_path / "alpha" / "c"))

    error = _refused(deployment)

    assert "no superuser approved" in error.message
    assert apiserver.requests == []


@pytest.mark.parametrize(
    "fields",
    [
        {"in_cluster": True, "kube_context": ""},
        {"kubeconfig_path": "/proc/self/environ"},
        {"kubeconfig_path": "/etc/controlplane/kubeconfig"},
    ],
)
def test_actuator_for__process_identity_without_approval__refused(fields: dict[str, Any]) -> None:
    deployment = _k8s_deployment(credentials={}, **fields)

    error = _refused(deployment)

    assert error.permanent_reason == "credentials-refused"
    assert "no superuser approved" in error.message


def test_actuator_for__stored_kubeconfig_with_exec_plugin__refused_and_command_never_run(
    apiserver: FakeApiServer, tmp_path: Path
) -> None:
    marker = tmp_path / "ran"
    document = kubeconfig_document(server=apiserver.url).replace(
        '{"token": "team-token"}',
        '{"exec": {"apiVersion": "client.authentication.k8s.io/v1", "command": "touch", '
        f'"args": ["{marker}"]}}}}',
    )
    assert '"exec"' in document
    # Written behind the API's back, e.g. by a database restore: the actuator checks again.
    deployment = _k8s_deployment(credentials={"kubeconfig": document})

    error = _refused(deployment)

    assert "exec" in error.message
    assert error.permanent_reason == "misconfigured"
    assert not marker.exists()
    assert apiserver.requests == []


def test_actuator_for__in_cluster_approved_outside_a_pod__misconfigured_not_raised_raw() -> None:
    deployment = _k8s_deployment(
        credentials={}, in_cluster=True, kube_context="", process_identity_approved=True
    )

    error = _refused(deployment)

    assert error.permanent_reason == "misconfigured"
    assert "in-cluster service account" in error.message


# ------------------------------------------------- the kubeconfig's server: outbound policy


@pytest.mark.parametrize(("server", "named"), INTERNAL_SERVERS)
def test_actuator_for__stored_kubeconfig_server_internal__refused_before_a_client_is_built(
    server: str, named: str
) -> None:
    # Stored behind the API's back (before the check existed, or by a database restore).
    deployment = _k8s_deployment(credentials={"kubeconfig": kubeconfig_document(server=server)})

    error = _refused(deployment)

    assert error.permanent_reason == "misconfigured"
    assert named in error.message


def test_actuator_for__api_server_on_loopback_not_allowed__nothing_reaches_it(
    apiserver: FakeApiServer,
) -> None:
    deployment = _k8s_deployment(
        credentials={"kubeconfig": kubeconfig_document(server=apiserver.url, token=TEAM_TOKEN)}
    )

    error = _refused(deployment)

    assert "OUTBOUND_ALLOWED_NETWORKS" in error.message
    assert apiserver.requests == []


def test_actuator_for__team_directory_file_with_loopback_server__refused(
    apiserver: FakeApiServer, tmp_path: Path, settings: Any
) -> None:
    deployment = _with_team_directory_kubeconfig(apiserver, tmp_path, settings)

    error = _refused(deployment)

    assert error.permanent_reason == "misconfigured"
    assert "127.0.0.1, a loopback" in error.message
    assert apiserver.requests == []


def test_actuator_for__name_refused_after_the_client_was_built__connection_not_made(
    apiserver: FakeApiServer, settings: Any
) -> None:
    """The client's connections check the address themselves (as when a name is re-pointed
    at an internal address after the check): allowed when the client is built, refused
    when it connects, and nothing reaches the server."""
    settings.OUTBOUND_ALLOWED_NETWORKS = ["127.0.0.1/32", "::1/128"]
    port = apiserver.url.rsplit(":", 1)[1]
    document = kubeconfig_document(server=f"http://localhost:{port}", token=TEAM_TOKEN)
    deployment = _k8s_deployment(credentials={"kubeconfig": document})
    actuator = actuator_for(deployment)
    settings.OUTBOUND_ALLOWED_NETWORKS = []

    with pytest.raises(ActuatorError) as info:
        actuator.get_scale(scale_target_of(deployment))

    assert info.value.permanent_reason == "misconfigured"
    assert not info.value.retryable
    assert "localhost resolves to" in info.value.message
    assert apiserver.requests == []


@pytest.mark.usefixtures("allow_loopback_outbound")
def test_actuator_for__https_server_with_tls_server_name__verified_through_guarded_connection(
    apiserver: FakeApiServer, tmp_path: Path
) -> None:
    """The guarded pools keep the kubeconfig's TLS settings: the CA data and the server
    name the certificate is checked against (tls-server-name), not the address dialled."""
    import base64
    import json

    cert, key = self_signed_certificate("apiserver.cluster.test", tmp_path, "apiserver")
    apiserver.serve_tls(cert, key)
    document = json.loads(kubeconfig_document(server=apiserver.url, token=TEAM_TOKEN))
    document["clusters"][0]["cluster"].update(
        {
            "certificate-authority-data": base64.b64encode(Path(cert).read_bytes()).decode(),
            "tls-server-name": "apiserver.cluster.test",
        }
    )
    deployment = _k8s_deployment(credentials={"kubeconfig": json.dumps(document)})

    status = actuator_for(deployment).get_scale(scale_target_of(deployment))

    assert status.spec_replicas == 3
    document["clusters"][0]["cluster"]["tls-server-name"] = "another.cluster.test"
    deployment.cluster.credentials = {"kubeconfig": json.dumps(document)}
    deployment.cluster.save()
    with pytest.raises(ActuatorError) as info:
        actuator_for(deployment).get_scale(scale_target_of(deployment))
    assert "TLS failure" in info.value.message
    assert info.value.permanent_reason == "misconfigured"


class _Proxy(BaseHTTPRequestHandler):
    """Stands in for an HTTP proxy from the environment: records what it is asked."""

    seen: list[str] = []

    def do_GET(self) -> None:
        self.seen.append(self.path)
        self.send_response(502)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.mark.usefixtures("allow_loopback_outbound")
def test_actuator_for__environment_proxy__not_used_for_a_team_kubeconfig(
    apiserver: FakeApiServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    proxy = ThreadingHTTPServer(("127.0.0.1", 0), _Proxy)
    threading.Thread(target=proxy.serve_forever, daemon=True).start()
    _Proxy.seen = []
    try:
        proxy_url = f"http://127.0.0.1:{proxy.server_address[1]}"
        for name in ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy"):
            monkeypatch.setenv(name, proxy_url)
        for name in ("NO_PROXY", "no_proxy"):
            monkeypatch.delenv(name, raising=False)
        deployment = _k8s_deployment(
            credentials={"kubeconfig": kubeconfig_document(server=apiserver.url, token=TEAM_TOKEN)}
        )

        status = actuator_for(deployment).get_scale(scale_target_of(deployment))
    finally:
        proxy.shutdown()
        proxy.server_close()

    assert status.spec_replicas == 3
    assert _Proxy.seen == []


def test_actuator_for__approved_host_kubeconfig_on_loopback__operator_trusted_not_guarded(
    apiserver: FakeApiServer, tmp_path: Path
) -> None:
    """The control plane's own identity (a host file a superuser chose) is the operator's:
    its server is not held to the outbound policy of team-supplied URLs."""
    path = tmp_path / "controlplane-kubeconfig"
    path.write_text(kubeconfig_document(server=apiserver.url, token=TEAM_TOKEN))
    deployment = _k8s_deployment(
        credentials={}, kubeconfig_path=str(path), process_identity_approved=True
    )

    status = actuator_for(deployment).get_scale(scale_target_of(deployment))

    assert status.spec_replicas == 3


# ------------------------------------------------------------------------------- AWS


@pytest.fixture
def moto(moto_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> str:
    """moto with one Auto Scaling group; the process's own credentials are "process-key"."""

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "process-key")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "process-secret")
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    # botocore's own setting for a custom endpoint: every client built here goes to moto.
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_url)
    moto_reset_with_group(moto_url, region=REGION, group="chat", template="gpu")
    return moto_url


def _asg_deployment(**cluster_fields: Any) -> Any:
    cluster = ClusterFactory(
        **{"kind": "aws", "kube_context": "", "credentials": {}, "aws_region": REGION}
        | cluster_fields
    )
    return DeploymentFactory(team=cluster.team, cluster=cluster, name="chat", target_kind="aws-asg")


def _signed_key_ids(actuator: Any) -> list[str]:
    """The access key id of every request the actuator's boto3 client signs."""
    seen: list[str] = []

    def record(request: Any, **_: Any) -> None:
        header = request.headers.get("Authorization", b"")
        text = header.decode() if isinstance(header, bytes) else header
        seen.append(text.split("Credential=", 1)[1].split("/", 1)[0])

    actuator.client.client.meta.events.register("before-send.auto-scaling.*", record)
    return seen


def _read_scale_signed(deployment: Any) -> tuple[Any, list[str]]:
    """The group's scale read by the deployment's actuator, and the key ids that signed it."""
    actuator = actuator_for(deployment)
    signed = _signed_key_ids(actuator)
    status = actuator.get_scale(scale_target_of(deployment))
    return status, signed


def test_actuator_for__team_access_key__requests_signed_with_it(moto: str) -> None:
    deployment = _asg_deployment(
        aws_credentials_source="access-key",
        credentials={"aws_access_key_id": TEAM_KEY_ID, "aws_secret_access_key": "team-secret"},
    )
    status, signed = _read_scale_signed(deployment)

    assert status.spec_replicas == 2
    assert signed == [TEAM_KEY_ID]


def test_actuator_for__assume_role_with_team_key__works_without_process_credentials(
    moto: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    deployment = _asg_deployment(
        aws_credentials_source="assume-role",
        aws_role_arn="arn:aws:iam::123456789012:role/llm-scaler",
        credentials={"aws_access_key_id": TEAM_KEY_ID, "aws_secret_access_key": "team-secret"},
    )
    status, signed = _read_scale_signed(deployment)

    assert status.spec_replicas == 2
    # moto's AssumeRole hands out ASIA... temporary keys.
    assert len(signed) == 1
    assert signed[0].startswith("ASIA")


@pytest.mark.parametrize(
    "fields",
    [
        {"aws_credentials_source": "default-chain"},
        {"aws_credentials_source": "environment"},
        {"aws_credentials_source": "profile", "aws_profile": "admin"},
        {
            "aws_credentials_source": "assume-role",
            "aws_role_arn": "arn:aws:iam::123456789012:role/anything",
        },
    ],
)
def test_actuator_for__aws_process_identity_without_approval__refused(
    moto: str, fields: dict[str, Any]
) -> None:
    error = _refused(_asg_deployment(**fields))

    assert error.permanent_reason == "credentials-refused"
    assert "no superuser approved" in error.message


def test_actuator_for__default_chain_approved_by_superuser__process_key_used(moto: str) -> None:
    deployment = _asg_deployment(
        aws_credentials_source="default-chain", process_identity_approved=True
    )
    _, signed = _read_scale_signed(deployment)

    assert signed == ["process-key"]


class _NotKubernetes(BaseHTTPRequestHandler):
    """Some other service on the network: answers every request with its own text."""

    def do_GET(self) -> None:
        body = b"internal-service-secret: hunter2"
        self.send_response(404)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


# That service listens on 127.0.0.1: opt in to loopback destinations.
@pytest.mark.usefixtures("allow_loopback_outbound")
def test_actuator_for__kubeconfig_server_is_another_service__its_answer_not_echoed() -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _NotKubernetes)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        deployment = _k8s_deployment(credentials={"kubeconfig": kubeconfig_document(server=url)})

        with pytest.raises(ActuatorError) as info:
            actuator_for(deployment).get_scale(scale_target_of(deployment))
    finally:
        server.shutdown()
        server.server_close()

    assert info.value.permanent_reason == "not-found"
    assert "hunter2" not in info.value.message
    assert "not a Status" in info.value.message
