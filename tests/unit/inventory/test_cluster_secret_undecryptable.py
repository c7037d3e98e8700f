"""A cluster whose stored secret no longer decrypts (FIELD_ENCRYPTION_KEY changed): reads
answer 200 and say so, a change that would keep using the secret answers 400 asking for it
again, and nothing rewrites the stored text behind the operator's back."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import override_settings

from apps.inventory.models import Cluster
from tests.assertions import stored_text
from tests.factories.inventory import ClusterFactory, kubeconfig_document

pytestmark = pytest.mark.django_db

URL = "/api/v1/clusters/"
ROTATED = override_settings(FIELD_ENCRYPTION_KEY="a-key-the-secrets-were-not-stored-with")


@pytest.fixture
def operator(roster: Any, client_for: Any) -> Any:
    return client_for(roster.operator)


@pytest.fixture
def kube_cluster(roster: Any) -> Cluster:
    return ClusterFactory(team=roster.team, name="gpu-pool")


@pytest.fixture
def aws_cluster(roster: Any) -> Cluster:
    return ClusterFactory(
        team=roster.team,
        name="aws-east",
        kind="aws",
        kube_context="",
        aws_region="us-east-1",
        aws_credentials_source="access-key",
        credentials={
            "aws_access_key_id": "AKIAIOSFODNN7EXAMPLE",
            "aws_secret_access_key": "team-secret",
        },
    )


def test_cluster_list__secret_undecryptable__200_with_the_problem(
    operator: Any, kube_cluster: Cluster, aws_cluster: Cluster
) -> None:
    with ROTATED:
        response = operator.get(URL)

    assert response.status_code == 200, response.content
    rows = {row["name"]: row for row in response.json()["results"]}
    for name, what in (("gpu-pool", "kubeconfig"), ("aws-east", "AWS access key")):
        assert rows[name]["credentials_configured"] is True
        assert f"stored {what} cannot be decrypted" in rows[name]["credentials_problem"]
        assert "set again" in rows[name]["credentials_problem"]


def test_cluster_detail__secret_undecryptable__200_with_the_problem(
    operator: Any, kube_cluster: Cluster
) -> None:
    with ROTATED:
        response = operator.get(f"{URL}{kube_cluster.pk}/")

    assert response.status_code == 200, response.content
    assert response.json()["credentials_configured"] is True
    assert "cannot be decrypted" in response.json()["credentials_problem"]


@pytest.mark.parametrize("change", [{"description": "moved racks"}, {"kube_context": "other"}])
def test_cluster_patch__kubernetes_secret_undecryptable__400_and_stored_text_unchanged(
    operator: Any, kube_cluster: Cluster, change: dict[str, str]
) -> None:
    before = stored_text(kube_cluster, "credentials")

    with ROTATED:
        response = operator.patch(f"{URL}{kube_cluster.pk}/", change, format="json")

    assert response.status_code == 400, response.content
    message = " ".join(response.json()["errors"]["kubeconfig"])
    assert "cannot be decrypted" in message
    assert "send kubeconfig" in message
    assert stored_text(kube_cluster, "credentials") == before
    kube_cluster.refresh_from_db()  # with the original key: still readable
    assert kube_cluster.credentials["kubeconfig"] == kubeconfig_document()


def test_cluster_patch__aws_key_undecryptable__400_on_the_access_key(
    operator: Any, aws_cluster: Cluster
) -> None:
    with ROTATED:
        response = operator.patch(f"{URL}{aws_cluster.pk}/", {"labels": {"a": "b"}}, format="json")

    assert response.status_code == 400, response.content
    assert "cannot be decrypted" in " ".join(response.json()["errors"]["aws_access_key_id"])


@pytest.mark.usefixtures("allow_loopback_outbound")  # the document's server is 127.0.0.1
def test_cluster_patch__secret_sent_again__200_and_readable(
    operator: Any, kube_cluster: Cluster
) -> None:
    with ROTATED:
        response = operator.patch(
            f"{URL}{kube_cluster.pk}/",
            {"kubeconfig": kubeconfig_document(), "description": "re-keyed"},
            format="json",
        )
        again = operator.get(f"{URL}{kube_cluster.pk}/")

    assert response.status_code == 200, response.content
    assert again.json()["credentials_problem"] == ""
    assert again.json()["credentials_configured"] is True


def test_cluster_delete__secret_undecryptable__204(operator: Any, kube_cluster: Cluster) -> None:
    with ROTATED:
        response = operator.delete(f"{URL}{kube_cluster.pk}/")

    assert response.status_code == 204, response.content
    assert not Cluster.objects.exists()


def test_cluster_patch__superuser_moves_to_in_cluster__200_and_secret_dropped(
    roster: Any, client_for: Any, kube_cluster: Cluster
) -> None:
    with ROTATED:
        response = client_for(roster.superuser).patch(
            f"{URL}{kube_cluster.pk}/", {"in_cluster": True, "kube_context": ""}, format="json"
        )

    assert response.status_code == 200, response.content
    assert response.json()["credentials_configured"] is False
    assert response.json()["credentials_problem"] == ""


def test_deployment_list__cluster_secret_undecryptable__200(
    roster: Any, operator: Any, kube_cluster: Cluster
) -> None:
    from tests.factories.inventory import DeploymentFactory

    DeploymentFactory(team=roster.team, cluster=kube_cluster)  # listed with its cluster joined

    with ROTATED:
        response = operator.get("/api/v1/deployments/")

    assert response.status_code == 200, response.content
    assert response.json()["results"][0]["cluster"] == kube_cluster.pk
