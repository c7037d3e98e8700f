"""CRUD, pagination, filters, ordering and search of clusters, models and deployments."""

from __future__ import annotations

import pytest

from apps.inventory.models import Cluster, Deployment, DeploymentStatus, LLMModel
from tests.factories.golive import checks_recorded
from tests.factories.inventory import (
    ClusterFactory,
    DeploymentFactory,
    LLMModelFactory,
    kubeconfig_document,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def operator_client(roster, client_for):
    return client_for(roster.operator)


def _names(response):
    assert response.status_code == 200, response.json()
    return [row["name"] for row in response.json()["results"]]


# --- clusters -----------------------------------------------------------------------------


# The kubeconfig's server is on 127.0.0.1: opt in to loopback destinations.
@pytest.mark.usefixtures("allow_loopback_outbound")
def test_cluster__create_read_update_delete__round_trip(roster, operator_client):
    created = operator_client.post(
        "/api/v1/clusters/",
        {
            "team": roster.team.pk,
            "name": "gke-prod",
            "kind": "kubernetes",
            "kubeconfig": kubeconfig_document(context="prod"),
            "kube_context": "prod",
            "default_namespace": "llm",
            "labels": {"env": "prod"},
        },
    )
    assert created.status_code == 201, created.json()
    body = created.json()
    assert body["team"] == roster.team.pk
    assert body["labels"] == {"env": "prod"}
    url = f"/api/v1/clusters/{body['id']}/"

    assert operator_client.get(url).json()["kube_context"] == "prod"

    patched = operator_client.patch(url, {"description": "primary GPU pool"})
    assert patched.status_code == 200, patched.json()
    assert Cluster.objects.get(pk=body["id"]).description == "primary GPU pool"

    assert operator_client.delete(url).status_code == 204
    assert not Cluster.objects.filter(pk=body["id"]).exists()


def test_cluster__aws_kind_without_credentials_source__stored_as_default_chain(roster, client_for):
    # The default chain is the control plane's own identity: a superuser's choice.
    response = client_for(roster.superuser).post(
        "/api/v1/clusters/",
        {"team": roster.team.pk, "name": "aws-east", "kind": "aws", "aws_region": "us-east-1"},
    )
    assert response.status_code == 201, response.json()
    assert response.json()["aws_credentials_source"] == "default-chain"
    assert Cluster.objects.get(name="aws-east").aws_credentials_source == "default-chain"


def test_cluster__delete_while_deployments_use_it__409_and_kept(roster, operator_client):
    deployment = DeploymentFactory(team=roster.team)
    response = operator_client.delete(f"/api/v1/clusters/{deployment.cluster_id}/")
    assert response.status_code == 409
    assert deployment.name in response.json()["detail"]
    assert Cluster.objects.filter(pk=deployment.cluster_id).exists()


def test_cluster_list__kind_filter_and_search__narrow_results(roster, operator_client):
    ClusterFactory(team=roster.team, name="gke-a", description="tokyo")
    ClusterFactory(
        team=roster.team,
        name="aws-b",
        kind="aws",
        kubeconfig_path="",
        kube_context="",
        aws_region="eu-west-1",
    )
    assert _names(operator_client.get("/api/v1/clusters/?kind=aws")) == ["aws-b"]
    assert _names(operator_client.get("/api/v1/clusters/?search=tokyo")) == ["gke-a"]
    assert _names(operator_client.get("/api/v1/clusters/?name__icontains=GKE")) == ["gke-a"]


# --- models -------------------------------------------------------------------------------


def test_model__create_read_update_delete__round_trip(roster, operator_client):
    created = operator_client.post(
        "/api/v1/models/",
        {
            "team": roster.team.pk,
            "name": "meta-llama/Llama-3.1-8B-Instruct",
            "version": "v1",
            "parameter_count": 8030000000,
            "checksum": "sha256:" + "a" * 64,
            "source_uri": "hf://meta-llama/Llama-3.1-8B-Instruct",
        },
    )
    assert created.status_code == 201, created.json()
    url = f"/api/v1/models/{created.json()['id']}/"
    assert operator_client.get(url).json()["parameter_count"] == 8030000000

    put = operator_client.put(
        url, {"team": roster.team.pk, "name": "meta-llama/Llama-3.1-8B-Instruct", "version": "v2"}
    )
    assert put.status_code == 200, put.json()
    assert LLMModel.objects.get(pk=created.json()["id"]).version == "v2"

    assert operator_client.delete(url).status_code == 204
    assert not LLMModel.objects.exists()


def test_model__same_name_and_version_twice__400_not_500(roster, operator_client):
    LLMModelFactory(team=roster.team, name="org/m", version="v1")
    response = operator_client.post(
        "/api/v1/models/", {"team": roster.team.pk, "name": "org/m", "version": "v1"}
    )
    assert response.status_code == 400
    assert response.json()["errors"]["non_field_errors"]


def test_model_list__ordering_by_name_descending__reversed(roster, operator_client):
    for name in ("org/b", "org/a", "org/c"):
        LLMModelFactory(team=roster.team, name=name)
    assert _names(operator_client.get("/api/v1/models/?ordering=-name")) == [
        "org/c",
        "org/b",
        "org/a",
    ]
    assert _names(operator_client.get("/api/v1/models/?ordering=name")) == [
        "org/a",
        "org/b",
        "org/c",
    ]


# --- deployments --------------------------------------------------------------------------


def _deployment_payload(team, **overrides):
    cluster = ClusterFactory(team=team)
    model = LLMModelFactory(team=team)
    body = {
        "team": team.pk,
        "name": "chat",
        "model": model.pk,
        "cluster": cluster.pk,
        "framework": "vllm",
        "target_kind": "k8s-deployment",
        "gpu_type": "h100-80gb",
        "min_replicas": 1,
        "max_replicas": 4,
        "prometheus_selector": '{namespace="llm",deployment="chat"}',
        "labels": {"env": "prod"},
    }
    body.update(overrides)
    return body


def test_deployment__create__selector_normalised_and_readiness_summary_included(
    roster, operator_client
):
    response = operator_client.post("/api/v1/deployments/", _deployment_payload(roster.team))
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["prometheus_selector"] == '{namespace="llm", deployment="chat"}'
    assert body["status"] == DeploymentStatus.PROVISIONING
    assert body["readiness"]["ready"] is False
    assert len(body["readiness"]["missing"]) == 5


def test_deployment__patch_then_put_then_delete__stored(roster, operator_client):
    payload = _deployment_payload(roster.team)
    created = operator_client.post("/api/v1/deployments/", payload).json()
    url = f"/api/v1/deployments/{created['id']}/"

    assert operator_client.patch(url, {"max_replicas": 8}).status_code == 200
    assert Deployment.objects.get(pk=created["id"]).max_replicas == 8

    payload.update(status="active", min_replicas=2, max_replicas=6)
    # Activation is gated by the go-live checks (docs/golive.md): refused until they pass.
    refused = operator_client.put(url, payload)
    assert refused.status_code == 400
    assert "model.served_version" in refused.json()["errors"]["status"][0]
    assert Deployment.objects.get(pk=created["id"]).status == DeploymentStatus.PROVISIONING
    checks_recorded(Deployment.objects.get(pk=created["id"]))
    put = operator_client.put(url, payload)
    assert put.status_code == 200, put.json()
    stored = Deployment.objects.get(pk=created["id"])
    assert (stored.status, stored.min_replicas, stored.max_replicas) == ("active", 2, 6)

    assert operator_client.delete(url).status_code == 204
    assert not Deployment.objects.filter(pk=created["id"]).exists()


def test_deployment__same_name_in_team__400_with_message(roster, operator_client):
    DeploymentFactory(team=roster.team, name="chat")
    response = operator_client.post("/api/v1/deployments/", _deployment_payload(roster.team))
    assert response.status_code == 400
    assert response.json()["errors"]["non_field_errors"]


def test_deployment_list__limit_and_offset__pages_through_in_order(roster, operator_client):
    for i in range(5):
        DeploymentFactory(team=roster.team, name=f"d{i}")
    first = operator_client.get("/api/v1/deployments/?limit=2").json()
    assert first["count"] == 5
    assert [r["name"] for r in first["results"]] == ["d0", "d1"]
    assert "offset=2" in first["next"]
    assert first["previous"] is None
    last = operator_client.get("/api/v1/deployments/?limit=2&offset=4").json()
    assert [r["name"] for r in last["results"]] == ["d4"]
    assert last["next"] is None


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("framework=vllm", ["a-vllm", "c-vllm"]),
        ("framework=tgi", ["b-tgi"]),
        ("status=active", ["c-vllm"]),
        ("label=env=prod", ["a-vllm", "b-tgi"]),
        ("label=env=prod,tier=gold", ["b-tgi"]),
        ("search=batch", ["c-vllm"]),
        ("ordering=-name", ["c-vllm", "b-tgi", "a-vllm"]),
        ("ordering=-max_replicas", ["c-vllm", "b-tgi", "a-vllm"]),
        ("name__icontains=TGI", ["b-tgi"]),
    ],
)
def test_deployment_list__filters_search_ordering__select_expected(
    roster, operator_client, query, expected
):
    DeploymentFactory(team=roster.team, name="a-vllm", labels={"env": "prod"}, max_replicas=2)
    DeploymentFactory(
        team=roster.team,
        name="b-tgi",
        framework="tgi",
        labels={"env": "prod", "tier": "gold"},
        max_replicas=3,
    )
    DeploymentFactory(
        team=roster.team,
        name="c-vllm",
        status="active",
        description="batch jobs",
        labels={"env": "staging"},
        max_replicas=9,
    )
    assert _names(operator_client.get(f"/api/v1/deployments/?{query}")) == expected


@pytest.mark.parametrize("query", ["label=envprod", "label==prod", "framework=nope"])
def test_deployment_list__malformed_filter__400_with_field_message(roster, operator_client, query):
    response = operator_client.get(f"/api/v1/deployments/?{query}")
    assert response.status_code == 400
    field = query.split("=", 1)[0]
    assert response.json()["errors"][field]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("label=env__contains=prod", ["literal-key"]),
        ("label=a__regex=(", []),
        ("label=team.io/tier=gold", ["dotted-key"]),
        ("label=env=prod", []),
    ],
)
def test_deployment_list__label_key_with_lookup_syntax__matched_literally(
    roster, operator_client, query, expected
):
    DeploymentFactory(team=roster.team, name="literal-key", labels={"env__contains": "prod"})
    DeploymentFactory(team=roster.team, name="dotted-key", labels={"team.io/tier": "gold"})
    DeploymentFactory(team=roster.team, name="plain", labels={"env": "production"})
    assert _names(operator_client.get(f"/api/v1/deployments/?{query}")) == expected
