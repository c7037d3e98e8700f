"""The schema says what the API does (finding 8 of issue 11): nullable fields declared
nullable, the SLO history's real shape, the prometheus-rules parameter the code reads, and
what DELETE of tokens and receivers leaves behind."""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from drf_spectacular.generators import SchemaGenerator

from apps.alerts.services import receiver_create
from tests.factories.inventory import DeploymentFactory
from tests.factories.slos import SloFactory


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    return SchemaGenerator().get_schema(request=None, public=True)


@pytest.mark.parametrize(
    ("component", "field"),
    [("Readiness", "updated_at"), ("Readiness", "updated_by"), ("Control", "pinned_by")],
)
def test_schema__fields_returned_null__declared_nullable(schema, component, field):
    assert schema["components"]["schemas"][component]["properties"][field].get("nullable")


def test_readiness_and_control__fresh_deployment__nulls_as_declared(client_for, roster):
    deployment = DeploymentFactory(team=roster.team)
    client = client_for(roster.viewer)
    readiness = client.get(f"/api/v1/deployments/{deployment.pk}/readiness/").json()
    control = client.get(f"/api/v1/autoscaling/control/{deployment.pk}/").json()
    assert (readiness["updated_at"], readiness["updated_by"], control["pinned_by"]) == (
        None,
        None,
        None,
    )


def test_slo_history__schema_and_answer__one_bare_array(schema, client_for, roster):
    operation = schema["paths"]["/api/v1/slos/{id}/history/"]["get"]
    body = operation["responses"]["200"]["content"]["application/json"]["schema"]
    assert body["type"] == "array"
    assert not {p["name"] for p in operation.get("parameters", [])} & {"limit", "offset"}
    slo = SloFactory(deployment=DeploymentFactory(team=roster.team))
    assert client_for(roster.viewer).get(f"/api/v1/slos/{slo.pk}/history/").json() == []


@pytest.mark.parametrize("param", ["format", "style"])
def test_prometheus_rules__format_or_deprecated_style__manifest(client_for, roster, param):
    slo = SloFactory(deployment=DeploymentFactory(team=roster.team, name="chat"))
    response = client_for(roster.viewer).get(
        f"/api/v1/slos/{slo.pk}/prometheus-rules/?{param}=prometheusrule&namespace=mon"
    )
    assert response.status_code == 200, response.content
    assert yaml.safe_load(response.content)["kind"] == "PrometheusRule"


def test_prometheus_rules__unknown_format__400_naming_format(client_for, roster):
    slo = SloFactory(deployment=DeploymentFactory(team=roster.team, name="chat"))
    response = client_for(roster.viewer).get(f"/api/v1/slos/{slo.pk}/prometheus-rules/?format=xml")
    assert response.status_code == 400
    assert "format" in response.json()["errors"]


def test_schema__prometheus_rules__style_deprecated(schema):
    operation = schema["paths"]["/api/v1/slos/{id}/prometheus-rules/"]["get"]
    params = {p["name"]: p for p in operation["parameters"]}
    assert params["style"].get("deprecated") is True
    assert not params["format"].get("deprecated")


def test_receiver_delete__then_get__404(client_for, roster):
    receiver, _ = receiver_create(team=roster.team, name="am", actor=roster.admin)
    client = client_for(roster.admin)
    url = f"/api/v1/alerts/receivers/{receiver.pk}/"
    assert client.get(url).status_code == 200
    assert client.delete(url).status_code == 204
    assert client.get(url).status_code == 404


@pytest.mark.parametrize("path", ["/api/v1/tokens/{id}/", "/api/v1/alerts/receivers/{id}/"])
def test_schema__delete_of_tokens_and_receivers__says_404_afterwards(schema, path):
    assert "404 afterwards" in schema["paths"][path]["delete"]["description"]


@pytest.mark.parametrize(
    "path", ["/api/v1/slos/{id}/openslo/", "/api/v1/slos/{id}/prometheus-rules/"]
)
def test_schema__yaml_documents__described_as_the_object_they_hold(schema, path):
    # The body is a YAML mapping; "type: string" made every parsed answer a violation.
    content = schema["paths"][path]["get"]["responses"]["200"]["content"]["application/yaml"]
    assert content["schema"]["type"] == "object"
