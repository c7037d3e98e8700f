"""Team-supplied URLs in the inventory: a cluster's Prometheus may not point at internal
addresses; a deployment's endpoint (never called by the server) must be a plain URL."""

from __future__ import annotations

from typing import Any

import pytest

from apps.inventory.models import Cluster
from tests.factories.inventory import ClusterFactory, LLMModelFactory

pytestmark = pytest.mark.django_db

INTERNAL = [
    "http://127.0.0.1:9090",
    "http://169.254.169.254/latest/meta-data/",
    "http://[::1]:9090",
    "http://localhost:5432",
    "http://0x7f000001:9090",
    "http://10.0.0.5:9090",
]


@pytest.fixture
def operator(roster: Any, client_for: Any) -> Any:
    return client_for(roster.operator)


@pytest.mark.parametrize("url", INTERNAL)
def test_cluster_create__internal_prometheus_url__400_on_the_field(
    roster: Any, operator: Any, url: str
) -> None:
    body = {
        "team": roster.team.pk,
        "name": "c1",
        "kind": "kubernetes",
        "in_cluster": True,
        "prometheus_url": url,
    }
    response = operator.post("/api/v1/clusters/", body, format="json")
    assert response.status_code == 400, response.content
    assert response.json()["errors"]["prometheus_url"]
    assert not Cluster.objects.exists()


def test_cluster_update__internal_prometheus_url__400(roster: Any, operator: Any) -> None:
    cluster = ClusterFactory(team=roster.team)
    response = operator.patch(
        f"/api/v1/clusters/{cluster.pk}/",
        {"prometheus_url": "http://localhost:9090/"},
        format="json",
    )
    assert response.status_code == 400, response.content
    assert "loopback" in " ".join(response.json()["errors"]["prometheus_url"])


def test_cluster_create__allowed_network__accepted(
    roster: Any, operator: Any, settings: Any
) -> None:
    settings.OUTBOUND_ALLOWED_NETWORKS = ["10.0.0.0/24"]
    body = {
        "team": roster.team.pk,
        "name": "c1",
        "kind": "kubernetes",
        "in_cluster": True,
        "prometheus_url": "http://10.0.0.5:9090",
    }
    response = operator.post("/api/v1/clusters/", body, format="json")
    assert "prometheus_url" not in response.json().get("errors", {})


@pytest.mark.parametrize(
    "url", ["http://0x7f000001/", "http://user:pw@chat.example.com/", "http://2130706433/"]
)
def test_deployment_create__odd_endpoint_url__400(roster: Any, operator: Any, url: str) -> None:
    body = {
        "team": roster.team.pk,
        "name": "chat",
        "model": LLMModelFactory(team=roster.team).pk,
        "framework": "vllm",
        "target_kind": "simulated",
        "gpu_type": "a100-80gb",
        "min_replicas": 1,
        "max_replicas": 4,
        "prometheus_selector": '{deployment="chat"}',
        "endpoint_url": url,
    }
    response = operator.post("/api/v1/deployments/", body, format="json")
    assert response.status_code == 400, response.content
    assert "endpoint_url" in response.json()["errors"]
