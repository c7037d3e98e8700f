from __future__ import annotations

import shutil
import subprocess

import pytest
import yaml

from apps.accounts.models import Role
from apps.slos.models import Slo
from tests.assertions import nothing_stored
from tests.factories.accounts import MembershipFactory, UserFactory
from tests.factories.inventory import DeploymentFactory
from tests.factories.slos import SloFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def operator(client_for):
    deployment = DeploymentFactory(name="chat")
    user = UserFactory()
    MembershipFactory(user=user, team=deployment.team, role=Role.OPERATOR)
    return deployment, client_for(user)


def _payload(deployment, **overrides):
    body = {
        "team": deployment.team_id,
        "name": "chat-ttft",
        "deployment": deployment.pk,
        "sli_kind": "latency",
        "latency_metric": "ttft",
        "threshold_seconds": 0.5,
        "objective_percent": "99.5",
        "window": "28d",
    }
    body.update(overrides)
    return body


def test_create__valid_latency_slo__201(operator):
    deployment, client = operator
    response = client.post("/api/v1/slos/", _payload(deployment), format="json")
    assert response.status_code == 201, response.json()
    assert response.json()["status"] is None


@pytest.mark.parametrize(
    ("overrides", "field", "fragment"),
    [
        ({"objective_percent": "100"}, "objective_percent", "strictly between 0 and 100"),
        ({"objective_percent": "0"}, "objective_percent", "strictly between"),
        ({"objective_percent": "-5"}, "objective_percent", "strictly between"),
        ({"sli_kind": "happiness"}, "sli_kind", "not a valid choice"),
        ({"window": "1h"}, "window", "not a valid choice"),
        ({"threshold_seconds": 0.3}, "threshold_seconds", "nearest are 0.25 and 0.5"),
        ({"latency_metric": ""}, "latency_metric", "ttft, itl or e2e"),
        (
            {
                "sli_kind": "custom_ratio",
                "latency_metric": "",
                "threshold_seconds": None,
                "good_query": "sum(x)",
                "total_query": "sum(y[$window])",
            },
            "good_query",
            "$window",
        ),
    ],
)
def test_create__bad_input__400_with_field_message(operator, overrides, field, fragment):
    deployment, client = operator
    with nothing_stored():
        response = client.post("/api/v1/slos/", _payload(deployment, **overrides), format="json")
    assert response.status_code == 400
    messages = " ".join(response.json()["errors"][field])
    assert fragment in messages
    assert not Slo.objects.exists()


def test_openslo__export_then_import__same_definition(operator):
    deployment, client = operator
    slo = SloFactory(
        deployment=deployment,
        name="chat-e2e",
        latency_metric="e2e",
        threshold_seconds=10.0,
        objective_percent="99.9",
        window="7d",
        min_requests=42,
    )
    doc = client.get(f"/api/v1/slos/{slo.pk}/openslo/").content.decode()
    parsed = yaml.safe_load(doc)
    assert parsed["apiVersion"] == "openslo/v1"
    assert parsed["kind"] == "SLO"
    assert parsed["spec"]["objectives"][0]["target"] == pytest.approx(0.999)
    ratio = parsed["spec"]["indicator"]["spec"]["ratioMetric"]
    assert 'le="10.0"' in ratio["good"]["metricSource"]["spec"]["query"]
    slo.delete()
    response = client.post(
        "/api/v1/slos/import-openslo/", {"team": deployment.team_id, "document": doc}, format="json"
    )
    assert response.status_code == 201, response.json()
    body = response.json()
    assert (body["name"], body["deployment"], body["latency_metric"]) == (
        "chat-e2e",
        deployment.pk,
        "e2e",
    )
    assert (body["threshold_seconds"], body["window"], body["min_requests"]) == (10.0, "7d", 42)
    assert body["objective_percent"] == "99.9000"


def test_openslo__foreign_ratio_and_threshold__imported_as_custom_ratio(operator):
    deployment, client = operator
    ratio = """
apiVersion: openslo/v1
kind: SLO
metadata: {name: gw-errors}
spec:
  service: chat
  indicator:
    metadata: {name: gw}
    spec:
      ratioMetric:
        counter: true
        good: {metricSource: {type: Prometheus, spec: {query: 'http_requests_total{code!~"5.."}'}}}
        total: {metricSource: {type: Prometheus, spec: {query: 'http_requests_total'}}}
  timeWindow: [{duration: 28d, isRolling: true}]
  budgetingMethod: Occurrences
  objectives: [{target: 0.999}]
"""
    response = client.post(
        "/api/v1/slos/import-openslo/",
        {"team": deployment.team_id, "document": ratio},
        format="json",
    )
    assert response.status_code == 201, response.json()
    assert response.json()["sli_kind"] == "custom_ratio"
    assert "increase((http_requests_total)[$window:1m])" in response.json()["total_query"]

    threshold = """
apiVersion: openslo/v1
kind: SLO
metadata: {name: gw-p95}
spec:
  service: chat
  indicator:
    metadata: {name: p95}
    spec:
      thresholdMetric:
        metricSource: {type: Prometheus, spec: {query: 'p95_latency'}}
  timeWindow: [{duration: 28d, isRolling: true}]
  budgetingMethod: Timeslices
  objectives: [{target: 0.99, op: lte, value: 0.5}]
"""
    response = client.post(
        "/api/v1/slos/import-openslo/",
        {"team": deployment.team_id, "document": threshold},
        format="json",
    )
    assert response.status_code == 201, response.json()
    assert "(p95_latency) <= bool 0.5" in response.json()["good_query"]


@pytest.mark.parametrize(
    ("document", "fragment"),
    [
        ("{not yaml: [", "not valid YAML"),
        ("apiVersion: openslo/v2\nkind: SLO", "apiVersion must be openslo/v1"),
        ("apiVersion: openslo/v1\nkind: Service\nmetadata: {name: x}", "kind must be SLO"),
        (
            "apiVersion: openslo/v1\nkind: SLO\nmetadata: {name: x}\nspec: {timeWindow: "
            "[{duration: 28d}], objectives: [{target: 1.5}]}",
            "strictly between 0 and 1",
        ),
        (
            "apiVersion: openslo/v1\nkind: SLO\nmetadata: {name: x}\nspec: {timeWindow: "
            "[{duration: 90d}], objectives: [{target: 0.9}]}",
            "use 7d, 28d or 30d",
        ),
    ],
)
def test_openslo__malformed__400(operator, document, fragment):
    deployment, client = operator
    with nothing_stored():
        response = client.post(
            "/api/v1/slos/import-openslo/",
            {"team": deployment.team_id, "document": document},
            format="json",
        )
    assert response.status_code == 400
    assert fragment in " ".join(response.json()["errors"]["document"])
    assert not Slo.objects.exists()


def test_prometheus_rules__pass_promtool_check(operator, tmp_path):
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool not installed (Debian package 'prometheus')")
    deployment, client = operator
    slo = SloFactory(deployment=deployment)
    body = client.get(f"/api/v1/slos/{slo.pk}/prometheus-rules/").content.decode()
    path = tmp_path / "rules.yml"
    path.write_text(body)
    result = subprocess.run([promtool, "check", "rules", str(path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 20 rules found" in result.stdout
    manifest = yaml.safe_load(
        client.get(
            f"/api/v1/slos/{slo.pk}/prometheus-rules/?style=prometheusrule&namespace=mon"
        ).content
    )
    assert manifest["kind"] == "PrometheusRule"
    assert manifest["metadata"]["namespace"] == "mon"
    assert manifest["spec"]["groups"] == yaml.safe_load(body)["groups"]
    assert client.get(f"/api/v1/slos/{slo.pk}/prometheus-rules/?style=xml").status_code == 400
