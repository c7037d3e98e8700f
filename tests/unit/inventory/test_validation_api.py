"""Bad input answers 400 with a message per field, never 500 and never a half-saved row."""

from __future__ import annotations

import pytest

from apps.inventory.models import Cluster, Deployment, LLMModel
from tests.assertions import nothing_stored
from tests.factories.inventory import (
    ClusterFactory,
    DeploymentFactory,
    deployment_payload,
    kubeconfig_document,
)

pytestmark = pytest.mark.django_db

DOC = kubeconfig_document(context="prod")
KEY = {"aws_access_key_id": "AKIAIOSFODNN7EXAMPLE", "aws_secret_access_key": "wJalrXUtnFEMI"}


@pytest.fixture
def operator(roster, client_for):
    return client_for(roster.operator)


def _errors(response, field):
    assert response.status_code == 400, response.content
    body = response.json()
    assert body["detail"] == "Invalid input."
    messages = body["errors"][field]
    assert messages
    assert all(isinstance(m, str) and m for m in messages)
    return " ".join(messages)


def _deployment(team, **overrides):
    return deployment_payload(team, **overrides)


@pytest.mark.parametrize(
    ("selector", "fragment"),
    [
        ('{namespace="llm"', "missing closing '}'"),
        ('{namespace="llm}', "unterminated string"),
        ('{a=~"("}', "invalid regular expression"),
        ('{a=""}', "must not match the empty string"),
        ('{a=~".*"}', "must not match the empty string"),
        ("{}", "at least one label matcher"),
        ("", "This field may not be blank"),
        ('{a="x", a="y"}', "two equality matchers"),
        ('{1a="x"}', "expected a label name"),
        ('{a=="x"}', "expected a quoted value"),
        ('{a "x"}', "expected one of"),
        ('{a="x" b="y"}', "expected ','"),
    ],
)
def test_deployment__bad_label_matchers__400_on_prometheus_selector(
    roster, operator, selector, fragment
):
    response = operator.post(
        "/api/v1/deployments/", _deployment(roster.team, prometheus_selector=selector)
    )
    assert fragment in _errors(response, "prometheus_selector")
    assert not Deployment.objects.exists()


def test_deployment__patch_bad_selector__400_and_unchanged(roster, operator):
    deployment = DeploymentFactory(team=roster.team)
    before = deployment.prometheus_selector
    response = operator.patch(
        f"/api/v1/deployments/{deployment.pk}/", {"prometheus_selector": '{a=~"["}'}
    )
    assert "invalid regular expression" in _errors(response, "prometheus_selector")
    deployment.refresh_from_db()
    assert deployment.prometheus_selector == before


def test_deployment__selector_too_long_once_normalised__400_on_prometheus_selector(
    roster, operator
):
    selector = "{" + ",".join(f'l{i:03d}="v"' for i in range(110)) + "}"
    assert len(selector) <= 1000
    response = operator.post(
        "/api/v1/deployments/", _deployment(roster.team, prometheus_selector=selector)
    )
    assert "at most 1000" in _errors(response, "prometheus_selector")
    assert not Deployment.objects.exists()


@pytest.mark.parametrize(
    ("overrides", "field", "fragment"),
    [
        ({"min_replicas": 5, "max_replicas": 2}, "min_replicas", "greater than max_replicas"),
        ({"max_replicas": 0, "min_replicas": 0}, "max_replicas", "greater than or equal to 1"),
        ({"min_replicas": -1}, "min_replicas", "greater than or equal to 0"),
        ({"framework": "llamafile"}, "framework", "not a valid choice"),
        ({"gpu_type": "tpu"}, "gpu_type", "not a valid choice"),
        ({"status": "exploded"}, "status", "not a valid choice"),
        ({"target_kind": "aws-asg"}, "target_kind", "cluster of kind aws"),
        ({"cluster": None}, "cluster", "required unless the scale target is simulated"),
        ({"target_namespace": "Bad_NS"}, "target_namespace", "namespace"),
        ({"gpus_per_replica": 0}, "gpus_per_replica", "greater than or equal to 1"),
        ({"name": "Chat Bot"}, "name", "lowercase"),
        ({"labels": ["env", "prod"]}, "labels", "object"),
        ({"labels": "env=prod"}, "labels", "object"),
        ({"labels": {"env": 3}}, "labels", "string value"),
        ({"labels": {"bad key!": "x"}}, "labels", "not a valid label name"),
        ({"endpoint_url": "not a url"}, "endpoint_url", "valid URL"),
        ({"max_replicas": "many"}, "max_replicas", "valid integer"),
        ({"model": 999999}, "model", "does not exist"),
    ],
)
def test_deployment__invalid_field__400_with_field_message(
    roster, operator, overrides, field, fragment
):
    response = operator.post("/api/v1/deployments/", _deployment(roster.team, **overrides))
    assert fragment in _errors(response, field)
    assert not Deployment.objects.exists()


def test_deployment__patch_min_above_existing_max__400(roster, operator):
    deployment = DeploymentFactory(team=roster.team, min_replicas=1, max_replicas=4)
    with nothing_stored():
        response = operator.patch(f"/api/v1/deployments/{deployment.pk}/", {"min_replicas": 5})
    assert "greater than max_replicas" in _errors(response, "min_replicas")
    deployment.refresh_from_db()
    assert deployment.min_replicas == 1


def test_deployment__aws_asg_on_aws_cluster_with_namespace__400_on_target_namespace(
    roster, operator
):
    aws = ClusterFactory(
        team=roster.team, kind="aws", kubeconfig_path="", kube_context="", aws_region="us-east-1"
    )
    response = operator.post(
        "/api/v1/deployments/",
        _deployment(roster.team, cluster=aws.pk, target_kind="aws-asg", target_namespace="llm"),
    )
    assert "no namespace" in _errors(response, "target_namespace")


@pytest.mark.parametrize(
    ("overrides", "field", "fragment"),
    [
        ({}, "kubeconfig_path", "the team's kubeconfig"),
        ({"in_cluster": True, "kubeconfig_path": "/k"}, "in_cluster", "excludes"),
        ({"kubeconfig": DOC, "aws_region": "us-east-1"}, "aws_region", "kind aws"),
        ({"kind": "aws", **KEY}, "aws_region", "needs a region"),
        ({"kind": "aws", "aws_region": "mars-1"}, "aws_region", "Not an AWS region"),
        (
            {"kind": "aws", "aws_region": "us-east-1", "in_cluster": True, **KEY},
            "kind",
            "Kubernetes",
        ),
        (
            {"kind": "aws", "aws_region": "us-east-1", "aws_credentials_source": "profile"},
            "aws_profile",
            "Name the profile",
        ),
        (
            {"kind": "aws", "aws_region": "us-east-1", "aws_credentials_source": "assume-role"},
            "aws_role_arn",
            "ARN",
        ),
        (
            {"kind": "aws", "aws_region": "us-east-1", "aws_role_arn": "arn:nope"},
            "aws_role_arn",
            "IAM role ARN",
        ),
        (
            {"kind": "aws", "aws_region": "us-east-1", "aws_account_id": "12"},
            "aws_account_id",
            "12",
        ),
        ({"kind": "openstack"}, "kind", "not a valid choice"),
        ({"kubeconfig": DOC, "prometheus_url": "ftp:/x"}, "prometheus_url", "valid URL"),
        ({"kubeconfig": DOC, "labels": [1]}, "labels", "object"),
    ],
)
def test_cluster__invalid_configuration__400_with_field_message(
    roster, operator, overrides, field, fragment
):
    body = {"team": roster.team.pk, "name": "c1", "kind": "kubernetes", **overrides}
    response = operator.post("/api/v1/clusters/", body)
    assert fragment in _errors(response, field)
    assert not Cluster.objects.exists()


def test_cluster__duplicate_name_in_team__400(roster, operator):
    ClusterFactory(team=roster.team, name="c1")
    body = {"team": roster.team.pk, "name": "c1", "kind": "kubernetes", "kubeconfig": DOC}
    with nothing_stored():
        response = operator.post("/api/v1/clusters/", body)
    assert _errors(response, "non_field_errors")


@pytest.mark.parametrize(
    ("overrides", "field", "fragment"),
    [
        ({"checksum": "md5:abc"}, "checksum", "sha256:"),
        ({"checksum": "sha256:" + "A" * 64}, "checksum", "lowercase"),
        ({"parameter_count": -5}, "parameter_count", "greater than or equal to 0"),
        ({"name": ""}, "name", "blank"),
        ({"version": "v" * 101}, "version", "no more than 100"),
    ],
)
def test_model__invalid_field__400_with_field_message(roster, operator, overrides, field, fragment):
    body = {"team": roster.team.pk, "name": "org/m", "version": "v1", **overrides}
    assert fragment in _errors(operator.post("/api/v1/models/", body), field)
    assert not LLMModel.objects.exists()


@pytest.mark.parametrize("path", ["/api/v1/deployments/", "/api/v1/clusters/", "/api/v1/models/"])
def test_malformed_json_body__400_says_json(roster, operator, path):
    with nothing_stored():
        response = operator.generic(
            "POST", path, '{"team": 1, "name": ', content_type="application/json"
        )
    assert response.status_code == 400
    assert "JSON parse error" in response.json()["detail"]


@pytest.mark.parametrize("body", ["[1, 2]", '"a string"', "null"])
def test_json_body_not_an_object__400_non_field_errors(roster, operator, body):
    with nothing_stored():
        response = operator.generic(
            "POST", "/api/v1/deployments/", body, content_type="application/json"
        )
    assert response.status_code == 400
    assert response.json()["errors"]["non_field_errors"]


def test_unknown_pk__404_not_500(roster, operator):
    assert operator.get("/api/v1/deployments/999999/").status_code == 404
    assert operator.get("/api/v1/deployments/not-a-number/").status_code == 404
