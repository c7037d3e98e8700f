"""A team's kubeconfig names a server the control plane calls: on save its URL goes through
the outbound policy (apps/core/netguard.py) like chat webhooks and Prometheus URLs, so the
metadata service, loopback and other internal addresses are refused unless the operator
allows the network in OUTBOUND_ALLOWED_NETWORKS."""

from __future__ import annotations

import json
from typing import Any

import pytest

from apps.inventory.models import Cluster
from tests.factories.inventory import INTERNAL_SERVERS, ClusterFactory, kubeconfig_document

pytestmark = pytest.mark.django_db

URL = "/api/v1/clusters/"


@pytest.fixture
def operator(roster: Any, client_for: Any) -> Any:
    return client_for(roster.operator)


def _two_contexts(*, allowed: str, internal: str) -> str:
    """A kubeconfig whose context "prod" names ``allowed`` and "meta" ``internal``."""
    document = json.loads(kubeconfig_document(server=allowed, context="prod"))
    document["clusters"].append({"name": "m", "cluster": {"server": internal}})
    document["contexts"].append({"name": "meta", "context": {"cluster": "m", "user": "u"}})
    return json.dumps(document)


@pytest.mark.parametrize(("server", "named"), INTERNAL_SERVERS)
def test_cluster_create__kubeconfig_server_internal__400_naming_the_address(
    roster: Any, operator: Any, server: str, named: str
) -> None:
    body = {
        "team": roster.team.pk,
        "name": "gpu-pool",
        "kind": "kubernetes",
        "kube_context": "prod",
        "kubeconfig": kubeconfig_document(server=server),
    }

    response = operator.post(URL, body, format="json")

    assert response.status_code == 400, response.content
    message = " ".join(response.json()["errors"]["kubeconfig"])
    assert named in message
    if "0x7f000001" not in server:  # that form is refused outright, allowed nowhere
        assert "OUTBOUND_ALLOWED_NETWORKS" in message
    assert not Cluster.objects.exists()


@pytest.mark.parametrize(("server", "named"), INTERNAL_SERVERS)
def test_cluster_update__kubeconfig_server_internal__400_and_stored_document_kept(
    roster: Any, operator: Any, server: str, named: str
) -> None:
    cluster = ClusterFactory(team=roster.team, credentials={"kubeconfig": "kept"})

    response = operator.patch(
        f"{URL}{cluster.pk}/", {"kubeconfig": kubeconfig_document(server=server)}, format="json"
    )

    assert response.status_code == 400, response.content
    assert named in " ".join(response.json()["errors"]["kubeconfig"])
    cluster.refresh_from_db()
    assert cluster.credentials == {"kubeconfig": "kept"}


def test_cluster_update__context_switched_to_internal_server__400_on_kube_context(
    roster: Any, operator: Any, settings: Any
) -> None:
    settings.OUTBOUND_ALLOWED_NETWORKS = ["10.20.0.0/16"]
    document = _two_contexts(allowed="https://10.20.0.1:6443", internal="https://169.254.169.254")
    cluster = ClusterFactory(team=roster.team, credentials={"kubeconfig": document})

    response = operator.patch(f"{URL}{cluster.pk}/", {"kube_context": "meta"}, format="json")

    assert response.status_code == 400, response.content
    assert "169.254.169.254, a link-local" in " ".join(response.json()["errors"]["kube_context"])


def test_cluster_create__server_in_an_allowed_network__201(
    roster: Any, operator: Any, settings: Any
) -> None:
    settings.OUTBOUND_ALLOWED_NETWORKS = ["10.20.0.0/16"]
    body = {
        "team": roster.team.pk,
        "name": "gpu-pool",
        "kind": "kubernetes",
        "kube_context": "prod",
        "kubeconfig": kubeconfig_document(server="https://10.20.0.1:6443"),
    }

    response = operator.post(URL, body, format="json")

    assert response.status_code == 201, response.content
    assert response.json()["credentials_problem"] == ""


def test_cluster_create__kubeconfig_with_proxy_url__400(
    roster: Any, operator: Any, settings: Any
) -> None:
    settings.OUTBOUND_ALLOWED_NETWORKS = ["10.20.0.0/16"]
    document = json.loads(kubeconfig_document(server="https://10.20.0.1:6443"))
    document["clusters"][0]["cluster"]["proxy-url"] = "http://169.254.169.254:3128"
    body = {
        "team": roster.team.pk,
        "name": "gpu-pool",
        "kind": "kubernetes",
        "kube_context": "prod",
        "kubeconfig": json.dumps(document),
    }

    response = operator.post(URL, body, format="json")

    assert response.status_code == 400, response.content
    assert "proxy-url is not accepted" in " ".join(response.json()["errors"]["kubeconfig"])
